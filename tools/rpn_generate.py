#!/usr/bin/env python3
"""Runs a trained RPN over a dataset and saves its proposals: one (N, 5) array
[x1, y1, x2, y2, score] per image, best first, pickled to
output/<EXP_DIR>/<imdb>/<net>/<net>_rpn_proposals.pkl. These are the proposals a Fast R-CNN
detector trains and tests on in alternating training (paper Sec. 3.2), and what
tools/eval_recall.py measures.
"""
import argparse
import os
import pprint
import sys
import time

import _common

from datasets.factory import get_imdb
from fast_rcnn.config import cfg, get_output_dir
from fast_rcnn.test import save_pickle
from rpn.generate import imdb_proposals


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Generate RPN proposals for a dataset')
    _common.add_device_arg(parser)
    parser.add_argument('--def', dest='prototxt', required=True, help='RPN test prototxt')
    parser.add_argument('--net', dest='caffemodel', required=True, help='RPN model')
    parser.add_argument('--wait', dest='wait', action='store_true',
                        help='wait until the model file exists')
    parser.add_argument('--imdb', dest='imdb_name', default='voc_2007_test',
                        help='dataset to make proposals for (default: %(default)s)')
    _common.add_cfg_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    print('Called with args:\n%s' % pprint.pformat(vars(args)), flush=True)
    _common.load_cfg(args.cfg_files, args.set_cfgs)
    # The release's proposal settings for training Fast R-CNN, whatever the config says for
    # testing: no top-N cut before NMS, the best 2000 after it.
    cfg.TEST.RPN_PRE_NMS_TOP_N = -1
    cfg.TEST.RPN_POST_NMS_TOP_N = 2000
    # ... unless --set asks otherwise (the paper's Tables 2 and 3 vary the test-time count).
    _common.load_cfg([], args.set_cfgs)
    _common.require_file(args.prototxt, 'net definition')
    while args.wait and not os.path.exists(args.caffemodel):
        print('Waiting for %s to exist...' % args.caffemodel, flush=True)
        time.sleep(10)
    _common.require_weights(args.caffemodel)
    print('Using config:\n%s' % pprint.pformat(cfg), flush=True)

    import caffe
    _common.setup_caffe(args.gpu)
    name = os.path.splitext(os.path.basename(args.caffemodel))[0]
    imdb = get_imdb(args.imdb_name)
    # Anchors of cfg.RPN_ANCHOR_SCALES / RATIOS reach the net through an adapted copy.
    prototxt = _common.fit_net_to_classes(args.prototxt, imdb.num_classes,
                                          get_output_dir(imdb, name))
    net = caffe.Net(prototxt, args.caffemodel, caffe.TEST)
    net.name = name
    output_dir = get_output_dir(imdb, net)
    proposals = imdb_proposals(net, imdb)
    path = os.path.join(output_dir, net.name + '_rpn_proposals.pkl')
    save_pickle(proposals, path)
    print('Wrote RPN proposals to %s' % path, flush=True)


if __name__ == '__main__':
    sys.exit(_common.run_tool(main))
