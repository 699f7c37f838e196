#!/usr/bin/env python3
"""Trains a Fast R-CNN or Faster R-CNN (end-to-end) network on a dataset.

  tools/train_net.py --gpu 0 --solver models/pascal_voc/VGG16/faster_rcnn_end2end/solver.prototxt \
      --weights data/imagenet_models/VGG16.v2.caffemodel --imdb voc_2007_trainval \
      --iters 70000 --cfg experiments/cfgs/faster_rcnn_end2end.yml

Writes the snapshots and <prefix>_training.jsonl (losses, learning rate and time per iteration)
to output/<EXP_DIR>/<imdb>/, and the results (status 'done', final model, snapshots, iterations,
training log, time) as JSON to --result (default: train_net_result.json there). A run whose loss
becomes NaN or Inf stops with status 1 and a result with status 'diverged' (the iteration, the
losses, the last snapshot).
"""
import argparse
import os
import pprint
import sys
import time

import _common

from fast_rcnn.config import cfg, get_output_dir
from fast_rcnn.train import TrainingDiverged, TrainSettings, train, training_roidb
from core.sampling import RoISampling


def parse_args(argv=None):
    parser = _common.ArgumentParser(description='Train a Fast R-CNN / Faster R-CNN network')
    _common.add_device_arg(parser)
    parser.add_argument('--solver', dest='solver', required=True, help='solver prototxt')
    parser.add_argument('--iters', dest='max_iters', type=int, default=40000,
                        help='number of iterations to train (default: %(default)s)')
    parser.add_argument('--weights', dest='pretrained_model', default=None,
                        help='initialize with these weights (.caffemodel)')
    _common.add_imdb_arg(parser, 'voc_2007_trainval', "dataset to train on; join several with '+'")
    parser.add_argument('--rand', dest='randomize', action='store_true',
                        help='do not seed the random number generators')
    parser.add_argument('--restore', dest='restore', default=None,
                        help='resume from this .solverstate (a snapshot of an earlier run)')
    _common.add_result_arg(parser, 'train_net_result.json')
    _common.add_cfg_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    _common.start(args)
    _common.require_file(args.solver, 'solver file')
    _common.require_weights(args.pretrained_model)
    if args.restore:
        _common.require_file(args.restore, 'solver state')
    print('Using config:\n%s' % pprint.pformat(cfg), flush=True)

    _common.setup_caffe(args.gpu)
    imdb, roidb = training_roidb(args.imdb_name)
    print('%d roidb entries' % len(roidb), flush=True)
    output_dir = get_output_dir(imdb)
    print('Output will be saved to `%s`' % output_dir, flush=True)
    solver = _common.adapted_solver(args.solver, imdb.num_classes, output_dir)
    start = time.time()
    result_path = args.result or os.path.join(output_dir, 'train_net_result.json')
    try:
        result = train(solver, roidb, output_dir, args.pretrained_model, args.max_iters,
                       args.restore, None if args.randomize else cfg.RNG_SEED,
                       TrainSettings.from_cfg(cfg), RoISampling.from_cfg(cfg.TRAIN))
    except TrainingDiverged as e:
        # The experiments count diverged runs (Sec. 3.2's comparison): say so in the result.
        _common.write_result(result_path, status='diverged', error=str(e),
                             diverged_at=e.iteration, losses=e.losses,
                             last_snapshot=e.last_snapshot, solver=solver, imdb=imdb.name,
                             output_dir=output_dir, seconds=time.time() - start)
        raise
    _common.write_result(result_path, status='done',
                         final_model=result.final_model, snapshots=result.model_paths,
                         iterations=result.iterations, training_log=result.training_log,
                         solver=solver, imdb=imdb.name, output_dir=output_dir,
                         seconds=time.time() - start)


if __name__ == '__main__':
    sys.exit(_common.run_tool(main))
