#!/usr/bin/env python3
"""Draws the loss curves of one or more training runs on one figure, as the paper's ablations
compare runs, from the JSON-lines logs that training writes beside its snapshots.

  tools/plot_training.py output/faster_rcnn_end2end/voc_2007_trainval/train.jsonl -o curves.png
  tools/plot_training.py lambda1.jsonl lambda10.jsonl --labels 'lambda 1,lambda 10' \\
      --smooth 100 -o lambda.png

A log line is one iteration:
  {"iter": 20, "lr": 0.001, "losses": {"rpn_cls_loss": 0.31, "loss_bbox": 0.2}, "sec_per_iter": 0.12}
Any key but "iter" may be missing. A line that is not a JSON object with a numeric "iter" (the
half-written last line of a run that crashed, say) is skipped, with one warning per file naming
its line numbers. When a resumed run logs an iteration again, its later line wins.

The figure has one panel per loss name (the union over the runs), one for the total (the sum of
a line's losses, drawn where the line has every loss of its run), and a small one for the
learning rate.
"""
import io
import json
import math
import os
import sys

import _common

import numpy as np

from caffe.io import atomic_write


def _number(value):
    """value as a float if it is a JSON number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def parse_line(text):
    """(record, None) for a usable log line, else (None, why it was skipped). A record is
    {'iter': int, 'lr': float or None, 'losses': {name: float}, 'sec_per_iter': float or None};
    non-numeric values count as missing."""
    try:
        obj = json.loads(text)
    except ValueError:
        return None, 'not valid JSON'
    if not isinstance(obj, dict):
        return None, 'not a JSON object'
    it = _number(obj.get('iter'))
    if it is None or not math.isfinite(it) or it != int(it):
        return None, 'no integer "iter"'
    losses = obj.get('losses')
    numbers = {}
    for name, value in (losses.items() if isinstance(losses, dict) else ()):
        if _number(value) is not None:
            numbers[name] = _number(value)
    return {'iter': int(it), 'lr': _number(obj.get('lr')), 'losses': numbers,
            'sec_per_iter': _number(obj.get('sec_per_iter'))}, None


def read_log(path):
    """(records in iteration order, [(line number, why skipped), ...]) of a .jsonl training log.
    An iteration logged twice (a run resumed from an earlier snapshot) keeps its last line.
    Raises OSError for a file that cannot be read, ValueError for one without a usable line."""
    by_iter, skipped = {}, []
    with open(path, encoding='utf-8', errors='replace') as f:
        for number, text in enumerate(f, 1):
            if not text.strip():
                continue
            record, why = parse_line(text)
            if record is None:
                skipped.append((number, why))
            else:
                by_iter[record['iter']] = record
    if not by_iter:
        raise ValueError('%s: no training log line (one JSON object per line, e.g. '
                         '{"iter": 20, "lr": 0.001, "losses": {"loss_cls": 0.7}})' % path)
    return [by_iter[it] for it in sorted(by_iter)], skipped


def skipped_warning(path, skipped, shown=5):
    """One warning line for the lines read_log skipped in path (the first `shown` named)."""
    lines = ', '.join('%d (%s)' % item for item in skipped[:shown])
    more = ', ... (%d lines in all)' % len(skipped) if len(skipped) > shown else ''
    return 'warning: %s: skipped line%s %s%s' % (path, 's' if len(skipped) > 1 else '', lines,
                                                  more)


def moving_average(iters, values, n):
    """Trailing mean over n iterations: point i is the mean of the finite values logged at
    iterations in (iters[i] - n, iters[i]]; NaN where there is none. iters ascending. With one
    line per iteration this is the mean of the last n lines (fewer at the start)."""
    iters = np.asarray(iters, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if n <= 1 or not len(values):
        return values.copy()
    finite = np.isfinite(values)
    counts = np.concatenate(([0], np.cumsum(finite)))
    lo = np.searchsorted(iters, iters - n, side='right')
    hi = np.arange(1, len(values) + 1)
    # Each window summed on its own (reduceat over the pairs lo, hi; a 0 appended so hi may be
    # the end), not as a difference of running sums, and of the deviations from one reference
    # value: rounding then scales with the deviations, and a flat loss stays exactly flat
    # (matplotlib would otherwise zoom its axis onto the last bits).
    ref = float(np.median(values[finite])) if finite.any() else 0.0
    padded = np.append(np.where(finite, values - ref, 0.0), 0.0)
    sums = np.add.reduceat(padded, np.stack([lo, hi], axis=1).ravel())[::2]
    count = counts[hi] - counts[lo]
    out = np.full(len(values), np.nan)
    np.divide(sums, count, out=out, where=count > 0)
    out += ref
    return out


def _series(records, value_of, smooth):
    points = [(r['iter'], v) for r in records for v in (value_of(r),) if v is not None]
    iters = np.array([p[0] for p in points], dtype=np.float64)
    values = np.array([p[1] for p in points], dtype=np.float64)
    return iters, moving_average(iters, values, smooth)


def loss_names(records):
    """The loss names of a run, in the order they first appear."""
    return list(dict.fromkeys(name for r in records for name in r['losses']))


def run_series(records, smooth=1):
    """What the figure draws for one run: {'losses': {name: (iters, values)}, 'total': (iters,
    values), 'lr': (iters, values)}, float64 arrays. Losses and total are smoothed over `smooth`
    iterations (moving_average); the learning rate is drawn as logged."""
    names = loss_names(records)

    def total(r):
        if not names or any(name not in r['losses'] for name in names):
            return None
        return math.fsum(r['losses'][name] for name in names)

    return {'losses': {name: _series(records, lambda r, k=name: r['losses'].get(k), smooth)
                       for name in names},
            'total': _series(records, total, smooth),
            'lr': _series(records, lambda r: r['lr'], 1)}


def default_labels(paths):
    """The file names, or the paths as given where two runs share a file name."""
    names = [os.path.basename(p) for p in paths]
    return names if len(set(names)) == len(names) else list(paths)


def _finite_or_nan(values):
    return np.where(np.isfinite(values), values, np.nan)


def _draw(ax, curves, colours):
    """Draws curves = [(run index, label, (iters, values)), ...] in the runs' colours."""
    for j, label, (iters, values) in curves:
        if len(iters):
            ax.plot(iters, _finite_or_nan(values), color=colours[j % len(colours)],
                    label=label, linewidth=1.0)
    ax.grid(True, alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)


def build_figure(runs, smooth=1):
    """A matplotlib Figure (Agg canvas, no display) for runs = [(label, records), ...]: one
    panel per loss name (union over runs), one for the total, a small one for the learning rate.
    Every run keeps its colour in every panel."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    import matplotlib

    series = [(label, run_series(records, smooth)) for label, records in runs]
    names = list(dict.fromkeys(n for _, s in series for n in s['losses']))
    panels = [(name, name) for name in names] + [(None, 'total (sum of the losses)')]
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    colours = matplotlib.rcParams['axes.prop_cycle'].by_key()['color']
    empty = (np.zeros(0), np.zeros(0))

    fig = Figure(figsize=(5.0 * cols, 3.2 * rows + 2.0))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(rows + 1, cols, height_ratios=[3.0] * rows + [1.5])
    first = None
    for k, (name, title) in enumerate(panels):
        ax = fig.add_subplot(grid[k // cols, k % cols], sharex=first)
        first = first or ax
        _draw(ax, [(j, label, s['total'] if name is None else s['losses'].get(name, empty))
                   for j, (label, s) in enumerate(series)], colours)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel('loss')
        ax.yaxis.get_major_formatter().set_useOffset(False)
    lr_ax = fig.add_subplot(grid[rows, :], sharex=first)
    _draw(lr_ax, [(j, label, s['lr']) for j, (label, s) in enumerate(series)], colours)
    if lr_ax.lines and all(np.all(s['lr'][1] > 0) for _, s in series):
        lr_ax.set_yscale('log')  # step schedules: each drop is one equal step down
    lr_ax.set_title('learning rate', fontsize=10)
    lr_ax.set_xlabel('iteration')
    if smooth > 1:
        fig.suptitle('losses: mean over the last %d iterations' % smooth, fontsize=10)
    fig.tight_layout()
    return fig


def png_bytes(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=100)
    return buf.getvalue()


def parse_args(argv=None):
    parser = _common.ArgumentParser(
        prog='plot_training.py',
        description='Loss curves of training runs (their .jsonl logs) on one figure')
    parser.add_argument('logs', nargs='+', metavar='LOG.jsonl', help='training logs, one per run')
    parser.add_argument('-o', '--out', dest='out', required=True, help='PNG to write')
    parser.add_argument('--smooth', dest='smooth', type=int, default=1, metavar='N',
                        help='draw the mean of the losses over the last N iterations '
                             '(default: %(default)s, as logged)')
    parser.add_argument('--labels', dest='labels', default=None,
                        help='comma-separated legend labels, one per log (default: file names)')
    parser.add_argument('--debug', action='store_true', help='show the Python traceback of an error')
    args = parser.parse_args(argv)
    if args.smooth < 1:
        parser.error('--smooth expects a number of iterations >= 1, got %d' % args.smooth)
    if not args.out.lower().endswith('.png'):
        parser.error('-o expects a .png file name, got %s' % args.out)
    if args.labels is None:
        args.labels = default_labels(args.logs)
    else:
        args.labels = args.labels.split(',')
        if len(args.labels) != len(args.logs):
            parser.error('--labels has %d labels for %d logs' % (len(args.labels), len(args.logs)))
    return args


def main(argv=None):
    args = parse_args(argv)
    runs = []
    for path, label in zip(args.logs, args.labels):
        _common.require_file(path, 'training log')
        records, skipped = read_log(path)
        if skipped:
            print(skipped_warning(path, skipped), file=sys.stderr, flush=True)
        times = [r['sec_per_iter'] for r in records if r['sec_per_iter'] is not None]
        print('%s: iterations %d-%d (%d lines), losses %s%s'
              % (label, records[0]['iter'], records[-1]['iter'], len(records),
                 ', '.join(loss_names(records)) or 'none',
                 ', median %.3f s/iter' % float(np.median(times)) if times else ''), flush=True)
        runs.append((label, records))
    atomic_write(args.out, png_bytes(build_figure(runs, args.smooth)))
    print('Wrote %s' % args.out, flush=True)


if __name__ == '__main__':
    sys.exit(_common.run_tool(main))
