#!/usr/bin/env python3
"""Recall of the ground truth by object proposals as a function of the IoU threshold, for the
top 300, 1000 and 2000 proposals per image: the paper's Fig. 4. Prints the recalls and saves the
plot as a PNG; the recalls also go to --result as JSON (default: the PNG's name with .json).

  tools/eval_recall.py --imdb voc_2007_test \
      --rpn-file output/.../ZF_rpn_proposals.npz --label 'RPN ZF' \
      --method selective_search --label SS --out recall.png
"""
import argparse
import os
import sys

import _common

import numpy as np

from datasets import proposals_file

PROPOSAL_COUNTS = (300, 1000, 2000)


def parse_args(argv=None):
    parser = _common.ArgumentParser(description='Recall vs IoU of object proposals (Fig. 4)')
    _common.add_imdb_arg(parser, 'voc_2007_test', 'dataset')
    parser.add_argument('--method', dest='methods', action='append', default=[],
                        help="a proposal method of the dataset, e.g. selective_search "
                             "(repeatable)")
    parser.add_argument('--rpn-file', dest='rpn_files', action='append', default=[],
                        help='a proposals file from tools/rpn_generate.py (.npz, or the '
                             "release's .pkl) (repeatable)")
    parser.add_argument('--label', dest='labels', action='append', default=[],
                        help='legend labels, in the order --method then --rpn-file sources')
    parser.add_argument('--counts', dest='counts', default=','.join(map(str, PROPOSAL_COUNTS)),
                        help='proposals per image, one plot each (default: %(default)s)')
    parser.add_argument('--out', dest='out', default=None,
                        help='PNG to write (default: output/<EXP_DIR>/<imdb>/recall.png)')
    return _common.parse_tool_args(parser, argv, '<the PNG\'s name>.json')


def load_proposals(path, num_images):
    """The first four columns of each image's proposals in path (datasets.proposals_file: the
    .npz that rpn_generate.py writes, or the release's .pkl)."""
    return [np.asarray(b[:, :4], dtype=np.float64)
            for b in proposals_file.load_proposals(path, num_images)]


def recall_curves(imdb, candidates, counts, thresholds):
    """{count: recalls at thresholds}; candidates is None for the roidb's own proposals."""
    curves = {}
    for count in counts:
        res = imdb.evaluate_recall(candidate_boxes=candidates, thresholds=thresholds,
                                   limit=count)
        curves[count] = res['recalls']
    return curves


def plot(curves_by_source, thresholds, counts, out):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from fast_rcnn.vis import save_figure
    fig, axes = plt.subplots(1, len(counts), figsize=(4.5 * len(counts), 4), squeeze=False)
    for ax, count in zip(axes[0], counts):
        for label, curves in curves_by_source:
            ax.plot(thresholds, curves[count], label=label)
        ax.set_title('%d proposals' % count)
        ax.set_xlabel('IoU overlap ratio')
        ax.set_ylabel('Recall')
        ax.set_xlim(thresholds[0], thresholds[-1])
        ax.set_ylim(0, 1)
        ax.grid(True, alpha=0.3)
        ax.legend(loc='lower left', fontsize=8)
    fig.tight_layout()
    save_figure(fig, out)


def main(argv=None):
    args = parse_args(argv)
    experiment = _common.load_cfg(args.cfg_files, args.set_cfgs)
    if not args.methods and not args.rpn_files:
        _common.fail('give proposals: --rpn-file FILE and/or --method NAME')
    try:
        counts = tuple(int(c) for c in args.counts.split(','))
    except ValueError:
        _common.fail('--counts expects integers like 300,1000,2000, got %r' % args.counts)
    sources = [('method', m) for m in args.methods] + [('file', f) for f in args.rpn_files]
    if args.labels and len(args.labels) != len(sources):
        _common.fail('%d --label values for %d proposal sources'
                     % (len(args.labels), len(sources)))
    labels = args.labels or [os.path.basename(s) for _, s in sources]
    # Fig. 4's x axis: IoU from 0.5 to 1.
    thresholds = np.arange(0.5, 1.0 + 1e-5, 0.05)

    curves_by_source = []
    for (kind, source), label in zip(sources, labels):
        imdb = experiment.imdb(args.imdb_name)
        if kind == 'method':
            imdb.set_proposal_method(source)
            candidates = None
        else:
            _common.require_file(source, 'proposals file')
            imdb.set_proposal_method('gt')
            candidates = load_proposals(source, imdb.num_images)
        curves = recall_curves(imdb, candidates, counts, thresholds)
        curves_by_source.append((label, curves))
        for count in counts:
            print('%s, %d proposals: recall %s (IoU %s); average recall %.3f'
                  % (label, count, np.array2string(curves[count], precision=3),
                     np.array2string(thresholds, precision=2), float(curves[count].mean())),
                  flush=True)

    out = args.out or os.path.join(experiment.output_dir(args.imdb_name), 'recall.png')
    plot(curves_by_source, thresholds, counts, out)
    print('Wrote %s' % out, flush=True)
    _common.write_result(
        args.result or os.path.splitext(out)[0] + '.json', imdb=args.imdb_name,
        thresholds=thresholds, counts=counts, plot=out,
        sources=[{'label': label, 'kind': kind, 'source': source,
                  'recalls': {str(n): curves[n] for n in counts},
                  'average_recall': {str(n): float(curves[n].mean()) for n in counts}}
                 for ((kind, source), label), (_, curves)
                 in zip(zip(sources, labels), curves_by_source)])


if __name__ == '__main__':
    sys.exit(_common.run_tool(main))
