"""One MPI job of the data-parallel proof (tests/parallel/test_mpi_training.py starts it with
`mpiexec -n N python -m mpi4py mpi_sgd_job.py OUT_DIR ITER_SIZE CLIP`): each rank trains the toy
problem's net (toy_problem.py) through caffe.NCCL on the MPI engine, in several variants, and
rank 0 writes every rank's final weights to OUT_DIR/weights.npz as variant:rank:param.

Variants: reduction at the end (on_gradients_ready), layer-wise reduction (net.after_backward),
clip_gradients CLIP, and two broken engines that a correct proof must catch: no 1/N scaling, no
all-reduce at all; and, with a fourth argument 'gpu', GPU mode on the emulator without NCCL (the
MPI engine with host copies of the gradients), at the end and layer-wise.
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), 'gpu')]

import caffe  # noqa: E402
import toy_problem  # noqa: E402
from mpi4py import MPI  # noqa: E402

out_dir, iter_size, clip = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
comm = MPI.COMM_WORLD
caffe.set_mode_cpu()
caffe.set_solver_count(comm.size)
caffe.set_solver_rank(comm.rank)
caffe.set_multiprocess(True)
work = os.path.join(out_dir, 'rank%d' % comm.rank)
os.makedirs(work, exist_ok=True)


def train(name, layer_wise=False, clip_gradients=-1.0, breakage=None):
    solver = caffe.SGDSolver(toy_problem.write_solver(work, name, iter_size, clip_gradients,
                                                      layer_wise))
    nccl = caffe.NCCL(solver)
    assert nccl.engine == 'mpi'
    nccl.bcast()
    if breakage == 'no_scale':
        nccl._scale = np.float32(1)
    elif breakage == 'no_allreduce':
        nccl._engine.reduce = lambda buffer: None
    solver.add_callback(nccl)
    if solver.param.layer_wise_reduce:
        solver.net.after_backward(nccl)
    solver.step(toy_problem.ITERATIONS)
    return toy_problem.weights(solver)


results = {'end': train('end'), 'layerwise': train('layerwise', layer_wise=True),
           'clip': train('clip', clip_gradients=clip),
           'no_scale': train('no_scale', breakage='no_scale'),
           'no_allreduce': train('no_allreduce', breakage='no_allreduce')}
if sys.argv[4:] == ['gpu']:
    import gpu_emulator
    from caffe.gpu import nccl
    # A real libnccl.so.2 (the nvidia-nccl wheel, which torch also pulls in) cannot run on the
    # emulated device: these variants are GPU ranks on a machine without NCCL.
    nccl.available = lambda: False
    with gpu_emulator.emulated_gpu():
        results['gpu_end'] = train('gpu_end')
        results['gpu_layerwise'] = train('gpu_layerwise', layer_wise=True)
    caffe.set_mode_cpu()
gathered = comm.gather(results, root=0)   # test bookkeeping, not training traffic
if comm.rank == 0:
    arrays = {'%s:%d:%s' % (variant, rank, param): value
              for rank, result in enumerate(gathered)
              for variant, params in result.items() for param, value in params.items()}
    np.savez(os.path.join(out_dir, 'weights.npz'), **arrays)
