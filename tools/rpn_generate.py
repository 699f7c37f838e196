#!/usr/bin/env python3
"""Runs a trained RPN over a dataset and saves its proposals: one (N, 4) array
[x1, y1, x2, y2] per image, best first, to output/<EXP_DIR>/<imdb>/<net>/<net>_rpn_proposals.npz
(datasets.proposals_file: an archive of arrays, read without running code). These are the proposals a Fast R-CNN
detector trains and tests on in alternating training (paper Sec. 3.2), and what
tools/eval_recall.py measures. The results (the proposals file, images, time) go to --result as
JSON (default: rpn_generate_result.json beside the proposals).
"""
import argparse
import os
import sys
import time

import _common

from datasets.proposals_file import save_proposals
from fast_rcnn import net_surgery
from rpn.generate import imdb_proposals

# The release's proposal settings for training Fast R-CNN, whatever the config says for testing:
# no top-N cut before NMS, the best 2000 after it; --set may still change them (the paper's
# Tables 2 and 3 vary the test-time count).
PROPOSAL_DEFAULTS = {'TEST': {'RPN_PRE_NMS_TOP_N': -1, 'RPN_POST_NMS_TOP_N': 2000}}


def parse_args(argv=None):
    parser = _common.ArgumentParser(description='Generate RPN proposals for a dataset')
    _common.add_device_arg(parser)
    _common.add_model_args(parser, 'RPN test prototxt (rpn_test.pt), or a Faster R-CNN test '
                           'prototxt whose RPN part is used', 'RPN model', wait=True)
    _common.add_imdb_arg(parser, 'voc_2007_test', 'dataset to make proposals for')
    return _common.parse_tool_args(parser, argv, 'rpn_generate_result.json')


def main(argv=None):
    args = parse_args(argv)
    experiment = _common.start(args, defaults=PROPOSAL_DEFAULTS)
    _common.require_model(args)

    import caffe
    _common.setup_caffe(args.gpu)
    name = os.path.splitext(os.path.basename(args.caffemodel))[0]
    imdb = experiment.imdb(args.imdb_name)
    output_dir = experiment.output_dir(imdb, name)
    # The net with the run's settings (its anchors, proposal limits, test scale) in a copy.
    prototxt = experiment.net_file(args.prototxt, imdb.num_classes, output_dir, caffe.TEST)
    prototxt = net_surgery.rpn_net_file(prototxt, output_dir)
    net = caffe.Net(prototxt, args.caffemodel, caffe.TEST)
    net.name = name
    start = time.time()
    proposals = imdb_proposals(net, imdb)
    seconds = time.time() - start
    path = os.path.join(output_dir, net.name + '_rpn_proposals.npz')
    save_proposals(path, proposals)
    print('Wrote RPN proposals to %s' % path, flush=True)
    _common.write_result(args.result or os.path.join(output_dir, 'rpn_generate_result.json'),
                         proposals=path, model=args.caffemodel, prototxt=prototxt,
                         imdb=imdb.name, num_images=imdb.num_images,
                         seconds_per_image=seconds / max(imdb.num_images, 1))


if __name__ == '__main__':
    sys.exit(_common.run_tool(main))
