"""Data-parallel training with Caffe's multi-GPU semantics, through pycaffe's interface:

    caffe.set_solver_count(n); caffe.set_solver_rank(r); caffe.set_multiprocess(True)
    solver = caffe.SGDSolver(file)          # each rank seeds with random_seed + rank
    nccl = caffe.NCCL(solver, uid)          # uid = caffe.NCCL.new_uid(), made once, shared
    nccl.bcast()                            # rank 0's weights everywhere
    solver.add_callback(nccl)               # gradients summed over ranks, scaled by 1/n
    if solver.param.layer_wise_reduce:
        solver.net.after_backward(nccl)     # ... layer by layer, during the backward pass
    solver.step(solver.param.max_iter)

What Caffe's NCCL class does, and so this one (parallel.cpp): every rank computes the gradients of
its own minibatch (iter_size passes), then, in on_gradients_ready (before ApplyUpdate's clipping,
iter_size normalization, regularization and momentum), the gradients are summed over the ranks
and scaled by 1/solver_count, so that every rank applies the same update to the same weights.
The effective batch is solver_count x the net's batch x iter_size; the learning rate is not
rescaled. With layer_wise_reduce each layer's gradients are reduced as soon as its backward is
done, overlapping the exchange with the rest of the backward pass (per backward pass, so with
iter_size > 1 once per pass, as in Caffe); the result is the same sum.

The gradients of all learnable parameters live in one flat float32 buffer (Caffe's GPUParams):
each parameter's diff is a view of it, so one call reduces everything and a layer's parameters
are one contiguous slice.

Engines, chosen when the NCCL object is made:
- 'nccl': between GPUs, through the NCCL library (caffe.gpu.nccl), on device pointers: the flat
  buffer is on the device; the reduction of whole buffer runs on the default stream, the
  layer-wise one on a stream of its own (as Caffe's). Ranks meet through the 128-byte NCCL unique
  id: made by NCCL.new_uid() in the parent of the rank processes (Caffe's python/train.py), or,
  when the ranks were started by mpiexec and no uid is given, by rank 0 and sent to the others
  over MPI.
- 'mpi': between processes started by mpiexec (CPU mode; GPU mode where NCCL is missing, with
  host copies of the gradients), through mpi4py's buffer calls (Allreduce(IN_PLACE) on the flat
  buffer, never the pickling lowercase calls). The uid is not used: the ranks are MPI_COMM_WORLD.
- with solver_count() == 1 nothing is exchanged and no library is needed.
"""
import os
import pickle

import numpy as np

from . import common
from .common import CaffeError

MPI_INSTALL = 'pip install mpi4py==4.1.2 mpich==5.0.2'
UID_BYTES = 128

# Launchers' environment: the world size of a process started by mpiexec/mpirun/srun.
_LAUNCHER_SIZE = ('PMI_SIZE', 'PMIX_SIZE', 'OMPI_COMM_WORLD_SIZE', 'MPI_LOCALNRANKS')
_LAUNCHER_LOCAL_RANK = ('MPI_LOCALRANKID', 'OMPI_COMM_WORLD_LOCAL_RANK', 'PMI_LOCAL_RANK',
                        'SLURM_LOCALID')


# MPI -------------------------------------------------------------------------------------------

def launched_by_mpi():
    """Whether an MPI launcher (mpiexec, mpirun, srun) started this process as one of several.
    Read from the launcher's environment, so asking does not initialize MPI."""
    for name in _LAUNCHER_SIZE[:3]:
        value = os.environ.get(name, '')
        if value.isdigit():
            return int(value) > 1
    return False


def mpiexec_path():
    """mpiexec beside the Python interpreter (where pip's mpich puts it), else on PATH; None
    where there is none."""
    import shutil
    import sys
    beside = os.path.join(os.path.dirname(sys.executable), 'mpiexec')
    return beside if os.access(beside, os.X_OK) else shutil.which('mpiexec')


def mpi():
    """mpi4py's MPI module (initializes MPI on first use); a CaffeError saying what to install
    where mpi4py is missing."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise CaffeError('data-parallel training on several processes needs mpi4py and an MPI '
                         'library (%s); install them with: %s' % (e, MPI_INSTALL)) from None
    return MPI


def world():
    """(rank, size) of MPI_COMM_WORLD when an MPI launcher started this process, else (0, 1)
    without touching MPI."""
    if not launched_by_mpi():
        return 0, 1
    comm = mpi().COMM_WORLD
    return comm.Get_rank(), comm.Get_size()


def local_rank():
    """This process's rank among the ranks on its host (which of the host's GPUs it takes)."""
    for name in _LAUNCHER_LOCAL_RANK:
        value = os.environ.get(name, '')
        if value.isdigit():
            return int(value)
    if not launched_by_mpi():
        return 0
    MPI = mpi()
    return MPI.COMM_WORLD.Split_type(MPI.COMM_TYPE_SHARED).Get_rank()


# NCCL ------------------------------------------------------------------------------------------

def has_nccl():
    """pycaffe's caffe.has_nccl(): whether the NCCL library can be loaded here."""
    from .gpu import nccl
    return nccl.available()


def new_uid():
    """A unique id for caffe.NCCL(solver, uid): NCCL's (128 bytes) where NCCL is installed; else
    128 random bytes, which the MPI engine does not need (its ranks meet through mpiexec)."""
    if has_nccl():
        from .gpu import nccl
        return nccl.new_unique_id()
    return os.urandom(UID_BYTES)


# The flat gradient buffer -----------------------------------------------------------------------

class GradientBuffer:
    """The diffs of a net's learnable parameters as views of one flat float32 array (host, and
    device where `on_device`), in learnable-parameter order; layer_slices[i] is layer i's part
    (the parameters it owns), None for a layer without any."""

    def __init__(self, net, on_device):
        params = net.learnable_params
        self.blobs = list(params)
        self.offsets = np.cumsum([0] + [b.count for b in params]).tolist()
        total = self.offsets[-1]
        self.host = np.zeros(total, dtype=np.float32)
        self.device = None
        if on_device:
            from . import gpu
            self.device = gpu.zeros(total)
        for k, blob in enumerate(self.blobs):
            part = slice(self.offsets[k], self.offsets[k + 1])
            blob.place_diff(self.host[part],
                            self.device[part] if self.device is not None else None)
        self.layer_params = {}
        self.shares_params = False
        k = 0
        for i, shared in enumerate(net._param_shared):
            owned = sum(1 for s in shared if not s)
            self.shares_params |= any(shared)
            if owned:
                self.layer_params[i] = (k, k + owned)
            k += owned

    def elements(self, first, end):
        """The element range of learnable parameters first..end-1."""
        return self.offsets[first], self.offsets[end]


class _LocalEngine:
    """One solver: nothing to exchange."""
    name, on_device = 'local', False


class _MPIEngine:
    """Ranks are the processes of MPI_COMM_WORLD; gradients reduced on the host."""
    name, on_device = 'mpi', False

    def __init__(self, count, rank):
        MPI = self.MPI = mpi()
        self.comm = MPI.COMM_WORLD
        size, me = self.comm.Get_size(), self.comm.Get_rank()
        if size != count or me != rank:
            raise CaffeError(
                'caffe.solver_count() is %d and solver_rank() %d, but this MPI job has %d '
                'process(es) and this is rank %d: start one process per solver with mpiexec '
                '(mpiexec -n %d python -m mpi4py train.py) and set caffe.set_solver_count('
                'MPI.COMM_WORLD.size), set_solver_rank(MPI.COMM_WORLD.rank). Processes started '
                'otherwise (multiprocessing, as Caffe\'s python/train.py) meet only through '
                'NCCL, on GPUs' % (count, rank, size, me, count))

    def reduce(self, host):
        self.comm.Allreduce(self.MPI.IN_PLACE, host)

    def start_reduce(self, host):
        return self.comm.Iallreduce(self.MPI.IN_PLACE, host)

    def wait(self, requests):
        self.MPI.Request.Waitall(requests)

    def bcast(self, host, root=0):
        self.comm.Bcast(host, root=root)

    sum_host = reduce  # a host array summed in place over the ranks


class _NCCLEngine:
    """Ranks are GPUs joined by an NCCL communicator; gradients reduced on the device."""
    name, on_device = 'nccl', True

    def __init__(self, count, rank, uid):
        from . import gpu
        from .gpu import nccl
        if common.mode() != common.GPU:
            raise CaffeError('the NCCL engine works on GPUs: call caffe.set_mode_gpu() and '
                             'caffe.set_device(...) before caffe.NCCL(solver, uid)')
        if uid is None:
            uid = self._uid_over_mpi(count, rank)
        self.gpu, self.comm = gpu, nccl.Communicator(count, uid, rank)
        gpu.on_release(self.comm.destroy)
        self._stream = None
        self._scale = gpu.Kernel('elementwise.cu', 'scale')

    @staticmethod
    def _uid_over_mpi(count, rank):
        from .gpu import nccl
        if not launched_by_mpi():
            raise CaffeError('caffe.NCCL(solver, uid) needs the uid from caffe.NCCL.new_uid(), '
                             'made once and given to every rank (or ranks started by mpiexec, '
                             'which rank 0 sends its uid to)')
        MPI = mpi()
        buf = bytearray(nccl.new_unique_id() if rank == 0 else UID_BYTES)
        MPI.COMM_WORLD.Bcast([buf, MPI.BYTE], root=0)
        return bytes(buf)

    def stream(self):
        """The layer-wise reduction's stream (non-blocking, as Caffe's), made on first use."""
        if self._stream is None:
            drv = self.gpu._state.drv
            self._stream = drv.Stream(flags=drv.stream_flags.NON_BLOCKING)
        return self._stream

    def after_default_stream(self, stream):
        """Orders `stream` after the work issued so far on the default stream."""
        drv = self.gpu._state.drv
        event = drv.Event()
        event.record()
        stream.wait_for_event(event)

    def reduce_scaled(self, device, scale, stream=None):
        self.comm.all_reduce_sum(device, stream)
        self._scale(device.size, scale, device, device, stream=stream)

    def bcast(self, device, root=0):
        self.comm.bcast(device, root)

    def sum_host(self, array):
        # Small host arrays (flags, losses, snapshot states) through a device copy.
        device = self.gpu.to_device(np.ascontiguousarray(array))
        self.comm.all_reduce_sum(device)
        device.get(ary=array)


def _engine(kind, count, rank, uid):
    if count == 1:
        return _LocalEngine()
    if kind is None:
        kind = 'nccl' if common.mode() == common.GPU and has_nccl() else 'mpi'
    if kind == 'nccl':
        return _NCCLEngine(count, rank, uid)
    if kind == 'mpi':
        return _MPIEngine(count, rank)
    raise CaffeError("caffe.NCCL: engine must be 'nccl' or 'mpi', got %r" % kind)


class NCCL:
    """pycaffe's caffe.NCCL(solver, uid): joins this rank's solver to the others (ranks from
    caffe.solver_count()/solver_rank()). A solver callback (solver.add_callback(nccl)) and a
    layer-wise net callback (solver.net.after_backward(nccl)). `engine` ('nccl' or 'mpi'; by
    default NCCL in GPU mode where it is installed, else MPI) is this runtime's addition."""

    def __init__(self, solver, uid=None, engine=None):
        count, rank = common.solver_count(), common.solver_rank()
        if rank >= count:
            raise CaffeError('caffe.solver_rank() is %d but solver_count() is %d'
                             % (rank, count))
        self.solver, self.count, self.rank = solver, count, rank
        self._engine = _engine(engine, count, rank, uid)
        self.engine = self._engine.name
        self._scale = np.float32(1.0 / count)
        self._buffer = None
        if count > 1:
            self._buffer = GradientBuffer(solver.net, self._engine.on_device)
            # Before a pass starts writing diffs again, the previous pass's layer-wise
            # reductions must be complete.
            solver.net.before_forward(self._fence)
        self._reduced = set()     # layers reduced since the last on_start
        self._pending = []        # the MPI engine's requests: (request, part)
        self._stream_busy = False

    new_uid = staticmethod(new_uid)

    @property
    def shares_weights(self):
        """Whether layers share parameters (ParamSpec names): then only the reduction at the end
        works (run() refuses, as Caffe does)."""
        return self._buffer is not None and self._buffer.shares_params

    # pycaffe's interface -------------------------------------------------------------------------
    def bcast(self):
        """Rank 0's learnable parameters to every rank (Caffe's NCCL::Broadcast): after the
        solver is made (each rank filled its weights with its own seed) and after a restore."""
        if self.count == 1:
            return
        for blob in self._buffer.blobs:
            if self._engine.on_device:
                self._engine.bcast(blob.mutable_gpu_data().reshape(blob.count))
            else:
                self._engine.bcast(blob.data.reshape(blob.count))
        if self._engine.on_device:
            self._engine.gpu.synchronize()

    def on_start(self):
        self._reduced = set()

    def on_gradients_ready(self):
        """Everything not yet reduced layer by layer this iteration is reduced now (all of it
        without the layer-wise hook), so every rank holds the mean gradient before the update."""
        if self.count == 1:
            return
        self._finish_pending()
        layers = self._buffer.layer_params
        if not self._reduced:
            self._reduce(0, len(self._buffer.blobs))
        else:
            for i in sorted(set(layers) - self._reduced):
                self._reduce(*layers[i])
        self._reduced = set(layers)

    def run(self, layer):
        """Caffe's Net::Callback: reduces `layer`'s gradients once its backward is done."""
        if self.count == 1:
            return
        if not self.solver.param.layer_wise_reduce:
            raise CaffeError('net.after_backward(nccl) reduces layer by layer, but the solver '
                             'has layer_wise_reduce: false')
        if self._buffer.shares_params:
            # Caffe refuses it too: a shared parameter's gradient is complete only after the
            # backward of its last user, not of its owner.
            raise CaffeError('layer-wise reduction is not supported for nets with shared '
                             'weights (ParamSpec names); set layer_wise_reduce: false')
        if layer not in self._buffer.layer_params:
            return
        self._reduced.add(layer)
        first, end = self._buffer.layer_params[layer]
        self._reduce(first, end, asynchronous=True)

    __call__ = run

    # Beyond pycaffe: what the training driver agrees on -------------------------------------------
    def sum_host(self, values):
        """The element-wise sum over the ranks of a small host array (float32/float64/uint8)."""
        values = np.array(values)
        if self.count > 1:
            self._engine.sum_host(values)
        return values

    def gather(self, obj):
        """Every rank's `obj` (picklable, small: snapshot states), as a list in rank order."""
        if self.count == 1:
            return [obj]
        mine = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
        sizes = np.zeros(self.count, dtype=np.float64)
        sizes[self.rank] = len(mine)
        sizes = self.sum_host(sizes).astype(np.int64)
        # Each rank writes its bytes into its own part of a zero buffer: the sum is the
        # concatenation (one contributor per byte, so uint8 sums cannot overflow).
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        data = np.zeros(int(offsets[-1]), dtype=np.uint8)
        data[offsets[self.rank]:offsets[self.rank + 1]] = np.frombuffer(mine, dtype=np.uint8)
        data = self.sum_host(data)
        return [pickle.loads(data[offsets[r]:offsets[r + 1]].tobytes())
                for r in range(self.count)]

    # The reduction -------------------------------------------------------------------------------
    def _reduce(self, first, end, asynchronous=False):
        buf, engine = self._buffer, self._engine
        lo, hi = buf.elements(first, end)
        if hi == lo:
            return
        if engine.on_device:
            for blob in buf.blobs[first:end]:
                blob.mutable_gpu_diff()   # the head on the device, where NCCL reads
            part = buf.device[lo:hi]
            if asynchronous:
                stream = engine.stream()
                engine.after_default_stream(stream)
                engine.reduce_scaled(part, self._scale, stream)
                self._stream_busy = True
            else:
                engine.reduce_scaled(part, self._scale)
            return
        for blob in buf.blobs[first:end]:
            blob.diff                     # the head on the host (a device copy comes back)
        part = buf.host[lo:hi]
        if asynchronous:
            self._pending.append((engine.start_reduce(part), part))
        else:
            engine.reduce(part)
            part *= self._scale

    def _finish_pending(self):
        if self._stream_busy:
            self._engine.stream().synchronize()
            self._stream_busy = False
        if self._pending:
            self._engine.wait([request for request, _ in self._pending])
            for _, part in self._pending:
                part *= self._scale
            self._pending = []

    def _fence(self, layer):
        if layer == 0:
            self._finish_pending()
