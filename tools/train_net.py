#!/usr/bin/env python3
"""Trains a Fast R-CNN or Faster R-CNN (end-to-end) network on a dataset.

  tools/train_net.py --gpu 0 --solver models/pascal_voc/VGG16/faster_rcnn_end2end/solver.prototxt \
      --weights data/imagenet_models/VGG16.v2.caffemodel --imdb voc_2007_trainval \
      --iters 70000 --cfg experiments/cfgs/faster_rcnn_end2end.yml
"""
import argparse
import pprint
import sys

import _common

from datasets.factory import get_imdb
from fast_rcnn.config import cfg, get_output_dir
from fast_rcnn.train import get_training_roidb, train_net


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a Fast R-CNN / Faster R-CNN network')
    _common.add_device_arg(parser)
    parser.add_argument('--solver', dest='solver', required=True, help='solver prototxt')
    parser.add_argument('--iters', dest='max_iters', type=int, default=40000,
                        help='number of iterations to train (default: %(default)s)')
    parser.add_argument('--weights', dest='pretrained_model', default=None,
                        help='initialize with these weights (.caffemodel)')
    parser.add_argument('--imdb', dest='imdb_name', default='voc_2007_trainval',
                        help="dataset to train on; join several with '+' (default: %(default)s)")
    parser.add_argument('--rand', dest='randomize', action='store_true',
                        help='do not seed the random number generators')
    parser.add_argument('--restore', dest='restore', default=None,
                        help='resume from this .solverstate (a snapshot of an earlier run)')
    _common.add_cfg_args(parser)
    return parser.parse_args(argv)


def combined_roidb(imdb_names):
    """The imdb and training roidb for one dataset name, or several joined with '+'."""
    from datasets.imdb import imdb as imdb_class
    imdbs, roidb = [], []
    for name in imdb_names.split('+'):
        imdb = get_imdb(name)
        print('Loaded dataset `%s` for training' % imdb.name, flush=True)
        imdb.set_proposal_method(cfg.TRAIN.PROPOSAL_METHOD)
        print('Set proposal method: %s' % cfg.TRAIN.PROPOSAL_METHOD, flush=True)
        roidb.extend(get_training_roidb(imdb))
        imdbs.append(imdb)
    if len(imdbs) == 1:
        return imdbs[0], roidb
    classes = {im.classes for im in imdbs}
    if len(classes) != 1:
        _common.fail('datasets %s do not share one class list' % imdb_names)
    combined = imdb_class(imdb_names, classes.pop())
    return combined, roidb


def main(argv=None):
    args = parse_args(argv)
    print('Called with args:\n%s' % pprint.pformat(vars(args)), flush=True)
    _common.load_cfg(args.cfg_files, args.set_cfgs)
    _common.require_file(args.solver, 'solver file')
    _common.require_weights(args.pretrained_model)
    if args.restore:
        _common.require_file(args.restore, 'solver state')
    print('Using config:\n%s' % pprint.pformat(cfg), flush=True)

    _common.setup_caffe(args.gpu)
    imdb, roidb = combined_roidb(args.imdb_name)
    print('%d roidb entries' % len(roidb), flush=True)
    output_dir = get_output_dir(imdb)
    print('Output will be saved to `%s`' % output_dir, flush=True)
    solver = _common.fit_solver_to_classes(args.solver, imdb.num_classes, output_dir)
    train_net(solver, roidb, output_dir, pretrained_model=args.pretrained_model,
              max_iters=args.max_iters, restore=args.restore, rand=args.randomize)


if __name__ == '__main__':
    sys.exit(_common.run_tool(main))
