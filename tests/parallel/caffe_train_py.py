"""BVLC Caffe's python/train.py usage pattern, run on the GPU emulator with the fake NCCL library
(tests/parallel/test_nccl_pattern.py starts it): the parent makes the NCCL uid; one process per
GPU (multiprocessing) sets the device, solver count and rank and multiprocess, builds its solver,
joins with caffe.NCCL(solver, uid), broadcasts, adds the callbacks and steps.

  python caffe_train_py.py OUT_DIR ITER_SIZE LAYER_WISE(0|1) [GPUS]

Each rank writes OUT_DIR/rank<r>.npz: its final weights, and what the fake library saw (calls,
the stream of the last collective). With GPUS (e.g. 0,0) it runs on real GPUs and the real NCCL
instead (tests/gpu/test_nccl_gpu.py), in spawned processes.

The processes are forked (python/train.py's default on Linux), so they inherit the emulator that
stands in for the GPU; before that, one forked process compiles the emulated kernels, so the
ranks do not build them at the same time.
"""
import json
import multiprocessing
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [HERE, os.path.join(ROOT, 'lib'), os.path.join(ROOT, 'tests', 'gpu')]

import caffe  # noqa: E402
import fake_nccl  # noqa: E402
import gpu_emulator  # noqa: E402
import toy_problem  # noqa: E402

GPUS = [0, 1]


def solve(proto, snapshot, gpus, uid, rank, out_dir, library):
    caffe.set_mode_gpu()
    caffe.set_device(gpus[rank])
    caffe.set_solver_count(len(gpus))
    caffe.set_solver_rank(rank)
    caffe.set_multiprocess(True)

    solver = caffe.SGDSolver(proto)
    if snapshot and len(snapshot) != 0:
        solver.restore(snapshot)

    nccl = caffe.NCCL(solver, uid)
    nccl.bcast()
    solver.add_callback(nccl)
    if solver.param.layer_wise_reduce:
        solver.net.after_backward(nccl)
    solver.step(solver.param.max_iter)

    seen = {'engine': nccl.engine}
    if library is not None:
        seen.update(allreduce=library.fakeNcclCalls(b'allreduce'),
                    bcast=library.fakeNcclCalls(b'bcast'),
                    last_stream=library.fakeNcclLastStream() or 0)
    np.savez(os.path.join(out_dir, 'rank%d.npz' % rank), **toy_problem.weights(solver))
    with open(os.path.join(out_dir, 'rank%d.json' % rank), 'w') as f:
        json.dump(seen, f)


def warm_up(proto):
    caffe.set_mode_gpu()
    solver = caffe.SGDSolver(proto)
    solver.step(1)


def run(context, target, *args):
    p = context.Process(target=target, args=args)
    p.start()
    return p


def main():
    out_dir, iter_size, layer_wise = sys.argv[1], int(sys.argv[2]), sys.argv[3] == '1'
    os.makedirs(out_dir, exist_ok=True)
    if len(sys.argv) > 4:
        gpus = [int(g) for g in sys.argv[4].split(',')]
        proto = toy_problem.write_solver(out_dir, 'pattern', iter_size, layer_wise=layer_wise)
        uid = caffe.NCCL.new_uid()
        context = multiprocessing.get_context('spawn')
        procs = [run(context, solve, proto, None, gpus, uid, rank, out_dir, None)
                 for rank in range(len(gpus))]
        for p in procs:
            p.join()
        if any(p.exitcode for p in procs):
            sys.exit('rank exit codes %s' % [p.exitcode for p in procs])
        return
    context = multiprocessing.get_context('fork')
    with gpu_emulator.emulated_gpu():
        gpu_emulator.FakeDevice.count_value = len(GPUS)
        library = fake_nccl.install(fake_nccl.build())
        proto = toy_problem.write_solver(out_dir, 'pattern', iter_size, layer_wise=layer_wise)
        warm = run(context, warm_up, proto)
        warm.join()
        assert warm.exitcode == 0, 'kernel warm-up failed'

        uid = caffe.NCCL.new_uid()
        procs = [run(context, solve, proto, None, GPUS, uid, rank, out_dir, library)
                 for rank in range(len(GPUS))]
        for p in procs:
            p.join()
        codes = [p.exitcode for p in procs]
    if any(codes):
        sys.exit('rank exit codes %s' % codes)


if __name__ == '__main__':
    main()
