"""tools/plot_training.py: loss curves from JSON-lines training logs. The logs are written here
from the test's own numbers; what the tool plots is checked against those numbers (and against a
brute-force moving average), the PNG is decoded, and bad input ends with one 'error:' line."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, 'tools')

LOSSES_A = ('rpn_cls_loss', 'rpn_loss_bbox', 'loss_cls', 'loss_bbox')
LOSSES_B = ('loss_cls', 'loss_bbox', 'loss_extra')


@pytest.fixture(scope='module')
def tool():
    sys.path.insert(0, TOOLS)
    try:
        import _common
        import plot_training
    finally:
        sys.path.remove(TOOLS)
    return plot_training, _common


def lines_a():
    """Run A: one line per iteration 1..60; iteration 17 lacks loss_bbox, 23 lacks lr, 31 has
    no losses at all; lr drops tenfold at 40."""
    out = []
    for it in range(1, 61):
        losses = {name: round(1.0 / (k + 1) + 0.5 * math.sin(0.37 * it * (k + 1)), 6)
                  for k, name in enumerate(LOSSES_A)}
        line = {'iter': it, 'lr': 0.001 if it < 40 else 0.0001, 'losses': losses,
                'sec_per_iter': 0.1 + 0.001 * it}
        if it == 17:
            del losses['loss_bbox']
        if it == 23:
            del line['lr']
        if it == 31:
            del line['losses']
        out.append(line)
    return out


def lines_b():
    """Run B: another loss set, logged every 3rd iteration, a NaN at iteration 30."""
    out = []
    for it in range(3, 91, 3):
        losses = {name: round(2.0 - 0.01 * it * (k + 1) + 0.1 * (it % 7), 6)
                  for k, name in enumerate(LOSSES_B)}
        if it == 30:
            losses['loss_cls'] = float('nan')
        out.append({'iter': it, 'lr': 0.002, 'losses': losses})
    return out


def write_log(path, lines, tail=''):
    with open(path, 'w') as f:
        for line in lines:
            f.write(json.dumps(line) + '\n')
        f.write(tail)
    return str(path)


@pytest.fixture
def logs(tmp_path):
    a = write_log(tmp_path / 'run_a.jsonl', lines_a(),
                  tail='{"iter": 61, "lr": 0.0001, "losses": {"rpn_cls_l')  # crashed mid-line
    b = write_log(tmp_path / 'run_b.jsonl', lines_b())
    return a, b


# The test's own view of the numbers ------------------------------------------------------------

def own_series(lines, name):
    pts = [(l['iter'], l['losses'][name]) for l in lines if name in l.get('losses', {})]
    return np.array([p[0] for p in pts], float), np.array([p[1] for p in pts], float)


def own_total(lines, names):
    pts = [(l['iter'], sum(l['losses'][n] for n in names)) for l in lines
           if all(n in l.get('losses', {}) for n in names)]
    return np.array([p[0] for p in pts], float), np.array([p[1] for p in pts], float)


def own_lr(lines):
    pts = [(l['iter'], l['lr']) for l in lines if 'lr' in l]
    return np.array([p[0] for p in pts], float), np.array([p[1] for p in pts], float)


def brute_moving_average(iters, values, n):
    """Mean of the finite values logged in the n iterations up to each point, by a plain loop."""
    out = []
    for it in iters:
        window = [v for i, v in zip(iters, values) if it - n < i <= it and math.isfinite(v)]
        out.append(sum(window) / len(window) if window else float('nan'))
    return np.array(out)


def assert_series(got, expected, **tol):
    np.testing.assert_array_equal(got[0], expected[0])
    if tol:
        np.testing.assert_allclose(got[1], expected[1], **tol)
    else:
        np.testing.assert_array_equal(got[1], expected[1])


# Reading ---------------------------------------------------------------------------------------

def test_read_log_skips_the_broken_line_and_keeps_the_rest(tool, logs):
    plot_training, _ = tool
    records, skipped = plot_training.read_log(logs[0])
    assert [r['iter'] for r in records] == list(range(1, 61))
    assert skipped == [(61, 'not valid JSON')]
    assert records[16]['losses'] == {k: v for k, v in lines_a()[16]['losses'].items()}
    assert 'loss_bbox' not in records[16]['losses']
    assert records[22]['lr'] is None and records[30]['losses'] == {}
    assert records[59]['sec_per_iter'] == pytest.approx(0.16)


def test_read_log_a_resumed_run_keeps_the_later_lines(tool, tmp_path):
    plot_training, _ = tool
    first = [{'iter': i, 'losses': {'loss': float(i)}} for i in (1, 2, 3, 4)]
    resumed = [{'iter': i, 'losses': {'loss': 10.0 * i}} for i in (3, 4, 5)]
    path = write_log(tmp_path / 'resumed.jsonl', first + resumed)
    records, skipped = plot_training.read_log(path)
    assert skipped == []
    assert [(r['iter'], r['losses']['loss']) for r in records] == [
        (1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0), (5, 50.0)]


def test_read_log_names_each_kind_of_bad_line(tool, tmp_path):
    plot_training, _ = tool
    path = tmp_path / 'mixed.jsonl'
    path.write_text('[1, 2]\n{"lr": 0.1}\n{"iter": 2.5}\n{"iter": true}\n\n'
                    '{"iter": 7, "losses": {"a": "x", "b": 1}}\nnot json\n')
    records, skipped = plot_training.read_log(str(path))
    assert [(r['iter'], r['losses']) for r in records] == [(7, {'b': 1.0})]
    assert skipped == [(1, 'not a JSON object'), (2, 'no integer "iter"'),
                       (3, 'no integer "iter"'), (4, 'no integer "iter"'), (7, 'not valid JSON')]
    warning = plot_training.skipped_warning(str(path), skipped, shown=2)
    assert warning == ('warning: %s: skipped lines 1 (not a JSON object), 2 (no integer "iter"), '
                       '... (5 lines in all)' % path)


# What is plotted -------------------------------------------------------------------------------

def test_series_are_the_logged_numbers(tool, logs):
    plot_training, _ = tool
    for path, lines, names in ((logs[0], lines_a(), LOSSES_A), (logs[1], lines_b(), LOSSES_B)):
        series = plot_training.run_series(plot_training.read_log(path)[0])
        assert list(series['losses']) == list(names)
        for name in names:
            assert_series(series['losses'][name], own_series(lines, name))
        assert_series(series['total'], own_total(lines, names), rtol=1e-12)
        assert_series(series['lr'], own_lr(lines))
    # run A's total leaves out iteration 17 (no loss_bbox) and 31 (no losses)
    total_iters = plot_training.run_series(plot_training.read_log(logs[0])[0])['total'][0]
    assert 17 not in total_iters and 31 not in total_iters and len(total_iters) == 58


@pytest.mark.parametrize('n', [2, 5, 7, 100])
def test_smoothing_is_the_moving_average_over_n_iterations(tool, logs, n):
    plot_training, _ = tool
    for path, lines, names in ((logs[0], lines_a(), LOSSES_A), (logs[1], lines_b(), LOSSES_B)):
        series = plot_training.run_series(plot_training.read_log(path)[0], smooth=n)
        for name in names:
            iters, values = own_series(lines, name)
            assert_series(series['losses'][name],
                          (iters, brute_moving_average(iters, values, n)), rtol=1e-12)
        iters, values = own_total(lines, names)
        assert_series(series['total'], (iters, brute_moving_average(iters, values, n)),
                      rtol=1e-12)
        assert_series(series['lr'], own_lr(lines))  # the learning rate is never smoothed


def test_a_flat_loss_stays_flat_when_smoothed(tool):
    plot_training, _ = tool
    iters = np.arange(1, 2001, dtype=float)
    for n in (50, 1000):
        np.testing.assert_array_equal(
            plot_training.moving_average(iters, np.full(2000, 0.1), n), np.full(2000, 0.1))


def test_figure_draws_every_series_with_its_label(tool, logs):
    plot_training, _ = tool
    runs = [('A', plot_training.read_log(logs[0])[0]), ('B', plot_training.read_log(logs[1])[0])]
    fig = plot_training.build_figure(runs, smooth=3)
    panels = {ax.get_title(): ax for ax in fig.axes}
    union = ['rpn_cls_loss', 'rpn_loss_bbox', 'loss_cls', 'loss_bbox', 'loss_extra']
    assert sorted(panels) == sorted(union + ['total (sum of the losses)', 'learning rate'])
    expected = {label: plot_training.run_series(records, smooth=3) for label, records in runs}
    for title, ax in panels.items():
        drawn = {line.get_label(): line for line in ax.get_lines()}
        if title == 'learning rate':
            want = {label: s['lr'] for label, s in expected.items()}
        elif title.startswith('total'):
            want = {label: s['total'] for label, s in expected.items()}
        else:
            want = {label: s['losses'][title] for label, s in expected.items()
                    if title in s['losses']}
        assert sorted(drawn) == sorted(want), title
        for label, (iters, values) in want.items():
            np.testing.assert_array_equal(drawn[label].get_xdata(), iters)
            np.testing.assert_array_equal(drawn[label].get_ydata(), values)
        legend = ax.get_legend()
        assert sorted(t.get_text() for t in legend.get_texts()) == sorted(want)
    # one colour per run in every panel
    colours = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            assert colours.setdefault(line.get_label(), line.get_color()) == line.get_color()
    assert len(set(colours.values())) == 2


def test_default_labels_are_file_names(tool):
    plot_training, _ = tool
    assert plot_training.default_labels(['x/a.jsonl', 'y/b.jsonl']) == ['a.jsonl', 'b.jsonl']
    assert plot_training.default_labels(['x/log.jsonl', 'y/log.jsonl']) == ['x/log.jsonl',
                                                                            'y/log.jsonl']


# The command line ------------------------------------------------------------------------------

def test_command_writes_a_png(logs, tmp_path):
    out = tmp_path / 'plots' / 'curves.png'
    proc = subprocess.run([sys.executable, os.path.join(TOOLS, 'plot_training.py'), logs[0],
                           logs[1], '-o', str(out), '--smooth', '5', '--labels', 'lambda 1,B'],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert 'Traceback' not in proc.stderr
    warnings = [l for l in proc.stderr.splitlines() if l.startswith('warning:')]
    assert warnings == ['warning: %s: skipped line 61 (not valid JSON)' % logs[0]]
    assert 'lambda 1: iterations 1-60' in proc.stdout and 'B: iterations 3-90' in proc.stdout
    data = out.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n'
    # IHDR: width and height, big-endian, after the 8-byte signature and the chunk header
    width, height = int.from_bytes(data[16:20], 'big'), int.from_bytes(data[20:24], 'big')
    assert width > 0 and height > 0
    import cv2
    image = cv2.imread(str(out))
    assert image is not None and image.shape[:2] == (height, width)
    assert image.std() > 0  # something is drawn
    assert os.listdir(out.parent) == ['curves.png']  # no temporary file left


def run_cli(tool, capsys, argv):
    plot_training, common = tool
    with pytest.raises(SystemExit) as e:
        common.run_tool(plot_training.main, argv)
    err = capsys.readouterr().err
    errors = [l for l in err.splitlines() if l.startswith('error:')]
    return e.value.code, errors


@pytest.mark.parametrize('case', ['missing', 'no_valid_line', 'empty', 'unknown_option',
                                  'no_output', 'labels', 'smooth', 'not_png'])
def test_bad_input_is_one_error_line(tool, capsys, logs, tmp_path, case):
    out = str(tmp_path / 'curves.png')
    broken = tmp_path / 'broken.jsonl'
    broken.write_text('{"iter": 1, "losses": {"loss_cls": 0.\n')
    empty = tmp_path / 'empty.jsonl'
    empty.write_text('')
    argv, needle = {
        'missing': ([str(tmp_path / 'nope.jsonl'), '-o', out], 'nope.jsonl not found'),
        'no_valid_line': ([logs[0], str(broken), '-o', out], '%s: no training log line' % broken),
        'empty': ([str(empty), '-o', out], '%s: no training log line' % empty),
        'unknown_option': ([logs[0], '-o', out, '--bogus'], 'unrecognized arguments: --bogus'),
        'no_output': ([logs[0]], '-o/--out'),
        'labels': ([logs[0], logs[1], '-o', out, '--labels', 'one'], '--labels has 1 labels'),
        'smooth': ([logs[0], '-o', out, '--smooth', '0'], '--smooth'),
        'not_png': ([logs[0], '-o', str(tmp_path / 'curves.pdf')], '.png'),
    }[case]
    code, errors = run_cli(tool, capsys, argv)
    assert code == 1
    assert len(errors) == 1 and needle in errors[0], errors
    assert not os.path.exists(out)
