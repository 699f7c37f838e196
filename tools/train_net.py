#!/usr/bin/env python3
"""Trains a Fast R-CNN or Faster R-CNN (end-to-end) network on a dataset.

  tools/train_net.py --gpu 0 --solver models/pascal_voc/VGG16/faster_rcnn_end2end/solver.prototxt \
      --weights data/imagenet_models/VGG16.v2.caffemodel --imdb voc_2007_trainval \
      --iters 70000 --cfg experiments/cfgs/faster_rcnn_end2end.yml

Writes the snapshots and <prefix>_training.jsonl (losses, learning rate and time per iteration)
to output/<EXP_DIR>/<imdb>/, beside the copies of the solver and its net that the run trained
(the net's with the experiment's settings in its Python layers' param_str), and the results (status 'done', final model, snapshots, iterations,
training log, time) as JSON to --result (default: train_net_result.json there). A run whose loss
becomes NaN or Inf stops with status 1 and a result with status 'diverged' (the iteration, the
losses, the last snapshot).

Data-parallel training (docs/parallel.md), with Caffe's semantics (gradients averaged over the
ranks before each update: an effective batch of ranks x IMS_PER_BATCH x iter_size; the learning
rate as the solver file says):
  --gpu 0,1,2,3 ...                                   one process per GPU (NCCL; without NCCL
                                                      the tool restarts itself under mpiexec)
  mpiexec -n 4 python -m mpi4py tools/train_net.py --gpu -1 ...      four CPU processes
  mpiexec -n 8 -f hosts python -m mpi4py tools/train_net.py --gpu 0,1,2,3 ...
                                                      two hosts of four GPUs (rank on a host
                                                      -> its GPU in the list)
"""
import argparse
import os
import pprint
import sys
import time

import _common

from caffe import parallel
from fast_rcnn.config import cfg
from fast_rcnn.experiment import train_experiment
from fast_rcnn.train import check_max_iters
from fast_rcnn.training_errors import LossNotFinite


def parse_args(argv=None):
    parser = _common.ArgumentParser(description='Train a Fast R-CNN / Faster R-CNN network')
    _common.add_devices_arg(parser)
    parser.add_argument('--solver', dest='solver', required=True, help='solver prototxt')
    parser.add_argument('--iters', dest='max_iters', type=int, default=40000,
                        help='number of iterations to train (default: %(default)s)')
    parser.add_argument('--weights', dest='pretrained_model', default=None,
                        help='initialize with these weights (.caffemodel)')
    _common.add_imdb_arg(parser, 'voc_2007_trainval', "dataset to train on; join several with '+'")
    parser.add_argument('--rand', dest='randomize', action='store_true',
                        help='do not seed the random number generators')
    parser.add_argument('--restore', dest='restore', default=None,
                        help='resume from this .solverstate (a complete snapshot of an earlier '
                             'run: its .caffemodel and .trainstate beside it)')
    return _common.parse_tool_args(parser, argv, 'train_net_result.json')


def main(argv=None):
    args = parse_args(argv)
    rank, size = parallel.world()
    if size > 1:
        # Started by mpiexec: this process is one rank; MPI_COMM_WORLD holds the others.
        return train_rank(args, rank, size, None, _common.mpi_rank_device(args.gpus))
    if args.gpus is not None and len(args.gpus) > 1:
        if not parallel.has_nccl():
            _common.relaunch_under_mpi(len(args.gpus), argv)
        return _common.run_gpu_ranks(_gpu_rank, args.gpus, list(argv))
    return train_rank(args, 0, 1, None, args.gpus[0] if args.gpus else None)


def _gpu_rank(rank, uid, argv):
    """One spawned process per GPU of --gpu (run_gpu_ranks)."""
    def main_of_rank(argv):
        args = parse_args(argv)
        return train_rank(args, rank, len(args.gpus), uid, args.gpus[rank])
    sys.exit(_common.run_tool(main_of_rank, argv))


def train_rank(args, rank, count, uid, device):
    """Trains as rank `rank` of `count` data-parallel solvers (0 of 1: alone) on `device` (None:
    the CPU); rank 0 writes the result file."""
    _common.join_ranks(rank, count)
    experiment = _common.start(args)
    check_max_iters(args.max_iters)  # before the dataset is read
    _common.require_file(args.solver, 'solver file')
    _common.require_weights(args.pretrained_model)
    if args.restore:
        _common.require_file(args.restore, 'solver state')
    print('Using config:\n%s' % pprint.pformat(cfg), flush=True)

    _common.setup_caffe(device)
    training = train_experiment(experiment, args.solver, args.imdb_name, args.pretrained_model)
    start = time.time()
    result_path = args.result or os.path.join(training.output_dir, 'train_net_result.json')

    def report(**fields):
        if rank == 0:
            _common.write_result(result_path, solver=training.solver_file,
                                 imdb=training.imdb.name, output_dir=training.output_dir,
                                 seconds=time.time() - start, ranks=count, **fields)
    try:
        result = training.run(args.max_iters, args.restore, args.randomize, uid=uid)
    except LossNotFinite as e:
        # The experiments count diverged runs (Sec. 3.2's comparison): say so in the result.
        report(status='diverged', error=str(e), diverged_at=e.iteration, losses=e.losses,
               last_snapshot=e.last_snapshot)
        raise
    report(status='done', final_model=result.final_model, snapshots=result.model_paths,
           iterations=result.iterations, training_log=result.training_log)


if __name__ == '__main__':
    sys.exit(_common.run_tool(main))
