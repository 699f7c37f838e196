#!/usr/bin/env python3
"""Tests a Fast R-CNN or Faster R-CNN network on a dataset: detections and their evaluation
(per-class AP and mAP for PASCAL VOC style datasets).

  tools/test_net.py --gpu 0 --def models/pascal_voc/VGG16/faster_rcnn_end2end/test.prototxt \
      --net output/faster_rcnn_end2end/voc_2007_trainval/vgg16_faster_rcnn_iter_70000.caffemodel \
      --imdb voc_2007_test --cfg experiments/cfgs/faster_rcnn_end2end.yml
"""
import argparse
import os
import pprint
import sys
import time

import _common

from datasets.factory import get_imdb
from fast_rcnn.config import cfg, get_output_dir
from fast_rcnn.test import test_net


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test a Fast R-CNN / Faster R-CNN network')
    _common.add_device_arg(parser)
    parser.add_argument('--def', dest='prototxt', required=True, help='test prototxt')
    parser.add_argument('--net', dest='caffemodel', required=True, help='model to test')
    parser.add_argument('--wait', dest='wait', action='store_true',
                        help='wait until the model file exists (e.g. while training runs)')
    parser.add_argument('--imdb', dest='imdb_name', default='voc_2007_test',
                        help='dataset to test (default: %(default)s)')
    parser.add_argument('--comp', dest='comp_mode', action='store_true',
                        help='competition mode (keep the result files under fixed names)')
    parser.add_argument('--vis', dest='vis', action='store_true',
                        help='write a PNG of each image with its detections')
    parser.add_argument('--num_dets', dest='max_per_image', type=int, default=None,
                        help='at most this many detections per image '
                             '(default: cfg.TEST.MAX_PER_IMAGE)')
    parser.add_argument('--proposals', dest='proposals', default=None,
                        help='test the detector on these proposals instead of its RPN: a '
                             'pickle of per-image boxes (tools/rpn_generate.py); for .mat '
                             'files (selective search, EdgeBoxes) use --set '
                             'TEST.HAS_RPN False TEST.PROPOSAL_METHOD selective_search|edge_boxes')
    _common.add_cfg_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    print('Called with args:\n%s' % pprint.pformat(vars(args)), flush=True)
    _common.load_cfg(args.cfg_files, args.set_cfgs)
    _common.require_file(args.prototxt, 'net definition')
    while args.wait and not os.path.exists(args.caffemodel):
        print('Waiting for %s to exist...' % args.caffemodel, flush=True)
        time.sleep(10)
    _common.require_weights(args.caffemodel)
    print('Using config:\n%s' % pprint.pformat(cfg), flush=True)

    import caffe
    _common.setup_caffe(args.gpu)
    imdb = get_imdb(args.imdb_name)
    imdb.competition_mode(args.comp_mode)
    if args.proposals:
        _common.require_file(args.proposals, 'proposals file')
        cfg.TEST.HAS_RPN = False
        cfg.TEST.PROPOSAL_METHOD = 'rpn'
        imdb.config['rpn_file'] = args.proposals
    if not cfg.TEST.HAS_RPN and cfg.TEST.PROPOSAL_METHOD != 'dense':
        imdb.set_proposal_method(cfg.TEST.PROPOSAL_METHOD)
    name = os.path.splitext(os.path.basename(args.caffemodel))[0]
    prototxt = _common.fit_net_to_classes(args.prototxt, imdb.num_classes,
                                          get_output_dir(imdb, name))
    if not cfg.TEST.HAS_RPN:
        prototxt = _common.detector_net(prototxt, get_output_dir(imdb, name))
    net = caffe.Net(prototxt, args.caffemodel, caffe.TEST)
    net.name = name
    max_per_image = (cfg.TEST.MAX_PER_IMAGE if args.max_per_image is None
                     else args.max_per_image)
    test_net(net, imdb, max_per_image=max_per_image, thresh=cfg.TEST.SCORE_THRESH,
             vis=args.vis)


if __name__ == '__main__':
    sys.exit(_common.run_tool(main))
