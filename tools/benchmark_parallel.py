#!/usr/bin/env python3
"""Data-parallel training on this machine's CPUs over MPI: the all-reduce bandwidth of the MPI
engine, and the training-iteration time of 1, 2 and 4 ranks (each rank one image).

For each rank count the tool starts `mpiexec -n N python -m mpi4py` on itself (loopback only):
- all-reduce: MPI Allreduce(IN_PLACE) of float32 gradient buffers of several sizes; printed as
  the algorithm bandwidth (bytes / time) and the bus bandwidth (x 2(N-1)/N, the data each rank
  sends and receives in a ring), as NCCL's tests print them;
- training: SGD iterations of a small convolutional net (DummyData input, two conv + pool
  stages, two InnerProduct layers: about 6.4 M parameters, 24 MB of gradients), through caffe.NCCL with the
  reduction at the end and layer by layer. Printed: seconds per iteration, images per second,
  the ratio to one rank (the peer run: weak-scaling efficiency t1 / tN, ideal 1), and the share
  of the iteration spent in the exchange (the same iteration without NCCL is the floor).

Times are the minimum over --repeat rounds (the machine may be shared). With more ranks than
cores the ranks share the cores: the scaling figures then show the machine, not the engine.

    python3 tools/benchmark_parallel.py [--ranks 1,2,4] [--iters 10] [--repeat 3] [--result F]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import _init_paths  # noqa: F401  (lib/ on sys.path; before numpy, as caffe/blas_threads.py asks)
import numpy as np


SIZES_MB = (1, 16, 64)
NET = '''name: "bench"
layer { name: "data" type: "DummyData" top: "data" top: "label"
        dummy_data_param { shape { dim: 1 dim: 3 dim: 128 dim: 128 } shape { dim: 1 }
                           data_filler { type: "gaussian" std: 1 }
                           data_filler { type: "constant" value: 1 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 64 kernel_size: 3 pad: 1
                            weight_filler { type: "gaussian" std: 0.05 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 4 stride: 4 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        convolution_param { num_output: 128 kernel_size: 3 pad: 1
                            weight_filler { type: "gaussian" std: 0.05 } } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
        pooling_param { pool: MAX kernel_size: 4 stride: 4 } }
layer { name: "fc1" type: "InnerProduct" bottom: "pool2" top: "fc1"
        inner_product_param { num_output: 768 weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "relu3" type: "ReLU" bottom: "fc1" top: "fc1" }
layer { name: "fc2" type: "InnerProduct" bottom: "fc1" top: "fc2"
        inner_product_param { num_output: 10 weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc2" bottom: "label" top: "loss" }
'''
SOLVER = '''train_net: "%s"
base_lr: 0.001
momentum: 0.9
weight_decay: 0.0005
lr_policy: "fixed"
layer_wise_reduce: %s
display: 0
snapshot: 0
random_seed: 1
'''


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--ranks', default='1,2,4', help='rank counts to run (default 1,2,4)')
    p.add_argument('--iters', type=int, default=10, help='iterations per timed round')
    p.add_argument('--repeat', type=int, default=3, help='timed rounds; the minimum counts')
    p.add_argument('--result', help='also write the figures to this JSON file')
    p.add_argument('--worker', help=argparse.SUPPRESS)   # a rank's output file (internal)
    return p.parse_args(argv)


# One rank ----------------------------------------------------------------------------------------

def best(fn, repeat, barrier):
    times = []
    for _ in range(repeat):
        barrier()
        tic = time.perf_counter()
        fn()
        barrier()
        times.append(time.perf_counter() - tic)
    return min(times)


def worker(args):
    from mpi4py import MPI
    import caffe
    comm = MPI.COMM_WORLD
    caffe.set_mode_cpu()
    caffe.set_solver_count(comm.size)
    caffe.set_solver_rank(comm.rank)
    out = {'ranks': comm.size, 'allreduce': {}, 'train': {}}
    for mb in SIZES_MB:
        buf = np.ones(mb * (1 << 20) // 4, dtype=np.float32)
        seconds = best(lambda: comm.Allreduce(MPI.IN_PLACE, buf), args.repeat, comm.Barrier)
        out['allreduce'][mb] = seconds
    folder = tempfile.mkdtemp(prefix='bench_parallel_')
    net = os.path.join(folder, 'net.prototxt')
    with open(net, 'w') as f:
        f.write(NET)
    for mode in ('none', 'end', 'layerwise'):
        solver_file = os.path.join(folder, 'solver_%s.prototxt' % mode)
        with open(solver_file, 'w') as f:
            f.write(SOLVER % (net, 'true' if mode == 'layerwise' else 'false'))
        solver = caffe.SGDSolver(solver_file)
        if mode != 'none':
            nccl = caffe.NCCL(solver)
            nccl.bcast()
            solver.add_callback(nccl)
            if mode == 'layerwise':
                solver.net.after_backward(nccl)
        solver.step(2)  # warm up
        out['train'][mode] = best(lambda: solver.step(args.iters), args.repeat,
                                  comm.Barrier) / args.iters
        out['params'] = sum(b.count for b in solver.net.learnable_params)
    if comm.rank == 0:
        with open(args.worker, 'w') as f:
            json.dump(out, f)


# The launcher ------------------------------------------------------------------------------------

def run_ranks(n, args, folder):
    from caffe import parallel
    mpiexec = parallel.mpiexec_path() or 'mpiexec'
    out = os.path.join(folder, 'ranks%d.json' % n)
    env = dict(os.environ, UCX_NET_DEVICES='lo', OMP_NUM_THREADS=os.environ.get(
        'OMP_NUM_THREADS', '1'))
    cmd = [mpiexec, '-iface', 'lo', '-n', str(n), sys.executable, '-m', 'mpi4py',
           os.path.abspath(__file__), '--worker', out, '--iters', str(args.iters),
           '--repeat', str(args.repeat)]
    subprocess.run(cmd, check=True, env=env)
    with open(out) as f:
        return json.load(f)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    ranks = [int(r) for r in args.ranks.split(',')]
    folder = tempfile.mkdtemp(prefix='bench_parallel_')
    results = [run_ranks(n, args, folder) for n in ranks]
    print('CPU cores: %d; OMP_NUM_THREADS per rank: %s' % (os.cpu_count(),
                                                          os.environ.get('OMP_NUM_THREADS', '1')))
    print('\nMPI Allreduce(IN_PLACE), float32 (algorithm bandwidth / bus bandwidth, GB/s):')
    print('%8s' % 'MB' + ''.join('%22s' % ('%d ranks' % r['ranks']) for r in results))
    for mb in SIZES_MB:
        cells = []
        for r in results:
            n, seconds = r['ranks'], r['allreduce'][str(mb)]
            if n == 1:
                cells.append('-')   # nothing to exchange
                continue
            alg = mb * (1 << 20) / seconds / 1e9
            bus = alg * 2 * (n - 1) / n
            cells.append('%9.2f ms %4.2f/%4.2f' % (seconds * 1e3, alg, bus))
        print('%8d' % mb + ''.join('%22s' % c for c in cells))
    params = results[0]['params']
    print('\nTraining iteration, %d parameters (%.1f MB of gradients), one image per rank:'
          % (params, params * 4 / 2 ** 20))
    one = results[0]['train']
    print('%8s %12s %12s %12s %10s %12s %12s' % ('ranks', 'no exchange', 'at the end',
                                                 'layer-wise', 'images/s', 't1/tN (end)',
                                                 'exchange'))
    for r in results:
        t = r['train']
        print('%8d %10.1fms %10.1fms %10.1fms %10.1f %12.2f %11.0f%%'
              % (r['ranks'], t['none'] * 1e3, t['end'] * 1e3, t['layerwise'] * 1e3,
                 r['ranks'] / t['end'], one['end'] / t['end'],
                 100 * (t['end'] - t['none']) / t['end']))
    if args.result:
        from caffe.io import atomic_write
        atomic_write(args.result, json.dumps(results, indent=1))


if __name__ == '__main__':
    main()
