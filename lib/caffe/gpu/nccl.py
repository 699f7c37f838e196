"""A small ctypes binding of NCCL 2: the unique id, one communicator per process, and the two
collectives Caffe's multi-GPU training uses (a sum all-reduce of the gradients, a broadcast of the
weights), on device pointers and a CUDA stream of the PyCUDA primary context.

Signatures (nccl.h of NCCL 2.x; ncclComm_t and cudaStream_t are opaque pointers, enums C ints):
  ncclResult_t ncclGetVersion(int *version)
  ncclResult_t ncclGetUniqueId(ncclUniqueId *uniqueId)
  ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId commId, int rank)
  ncclResult_t ncclCommDestroy(ncclComm_t comm)
  ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count,
      ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream)
  ncclResult_t ncclBcast(void *buff, size_t count, ncclDataType_t datatype, int root,
      ncclComm_t comm, cudaStream_t stream)
  const char *ncclGetErrorString(ncclResult_t result)
ncclUniqueId is `struct { char internal[128]; }`, passed to ncclCommInitRank by value: all 128
bytes travel, NUL bytes included (the id is binary).
"""
import ctypes

import numpy as np

from ..common import CaffeError
from . import libraries

UNIQUE_ID_BYTES = 128      # NCCL_UNIQUE_ID_BYTES
NCCL_SUM = 0               # ncclSum
# ncclDataType_t of the element types used here (ncclUint8, ncclInt32, ncclFloat32, ncclFloat64)
NCCL_TYPES = {np.dtype(np.uint8): 1, np.dtype(np.int32): 2, np.dtype(np.float32): 7,
              np.dtype(np.float64): 8}


class UniqueId(ctypes.Structure):
    # Bytes, not c_char: ctypes would cut a char array at its first NUL when read.
    _fields_ = [('internal', ctypes.c_ubyte * UNIQUE_ID_BYTES)]


_p, _i, _sz = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t

_SIGNATURES = {
    'ncclGetVersion': ([ctypes.POINTER(_i)], _i),
    'ncclGetUniqueId': ([ctypes.POINTER(UniqueId)], _i),
    'ncclCommInitRank': ([ctypes.POINTER(_p), _i, UniqueId, _i], _i),
    'ncclCommDestroy': ([_p], _i),
    'ncclAllReduce': ([_p, _p, _sz, _i, _i, _p, _p], _i),
    'ncclBcast': ([_p, _sz, _i, _i, _p, _p], _i),
    'ncclGetErrorString': ([_i], ctypes.c_char_p),
}

_lib = {}


def library(search_dirs=None, system=True):
    """The loaded NCCL (libraries.NCCL: the nvidia-nccl wheel's folder first, then
    libnccl.so.2 on the system path), with argument types declared."""
    if 'lib' not in _lib:
        lib, path = libraries.load(libraries.NCCL, search_dirs, system)
        for name, (argtypes, restype) in _SIGNATURES.items():
            f = getattr(lib, name)
            f.argtypes = argtypes
            f.restype = restype
        _lib['lib'], _lib['path'] = lib, path
    return _lib['lib']


def available():
    """Whether an NCCL library can be loaded (caffe.has_nccl)."""
    try:
        library()
    except CaffeError:
        return False
    return True


def _check(status, what):
    if status != 0:
        text = library().ncclGetErrorString(status)
        raise CaffeError('NCCL %s failed: %s (ncclResult_t %d)'
                         % (what, text.decode() if text else 'unknown error', status))


def version():
    """NCCL_VERSION_CODE of the loaded library (e.g. 23007 for 2.30.7)."""
    v = _i()
    _check(library().ncclGetVersion(ctypes.byref(v)), 'ncclGetVersion')
    return v.value


def new_unique_id():
    """A fresh ncclUniqueId as 128 bytes, to hand to every rank (caffe.NCCL.new_uid)."""
    uid = UniqueId()
    _check(library().ncclGetUniqueId(ctypes.byref(uid)), 'ncclGetUniqueId')
    return bytes(uid)


def _unique_id(uid):
    uid = bytes(uid)
    if len(uid) != UNIQUE_ID_BYTES:
        raise CaffeError('an NCCL unique id has %d bytes (caffe.NCCL.new_uid()), got %d'
                         % (UNIQUE_ID_BYTES, len(uid)))
    return UniqueId.from_buffer_copy(uid)


def _stream(stream):
    # None is the legacy default stream (0), where the runtime's kernels run.
    return None if stream is None else _p(int(getattr(stream, 'handle', stream)))


class Communicator:
    """One rank's NCCL communicator on the current device (the runtime's primary context must be
    current: caffe.set_mode_gpu() first). Blocks until all `count` ranks have joined."""

    def __init__(self, count, uid, rank):
        self.count, self.rank = int(count), int(rank)
        if not 0 <= self.rank < self.count:
            raise CaffeError('NCCL rank %d is outside 0..%d' % (self.rank, self.count - 1))
        comm = _p()
        _check(library().ncclCommInitRank(ctypes.byref(comm), self.count, _unique_id(uid),
                                          self.rank), 'ncclCommInitRank')
        self._comm = comm

    def all_reduce_sum(self, array, stream=None):
        """array = the sum of every rank's array, in place (a contiguous device array)."""
        kind = _data_type(array)
        if array.size:
            pointer = int(array.gpudata)
            _check(library().ncclAllReduce(pointer, pointer, array.size, kind, NCCL_SUM,
                                           self._comm, _stream(stream)), 'ncclAllReduce')

    def bcast(self, array, root=0, stream=None):
        """array = root's array on every rank (a contiguous device array)."""
        kind = _data_type(array)
        if array.size:
            _check(library().ncclBcast(int(array.gpudata), array.size, kind, int(root),
                                       self._comm, _stream(stream)), 'ncclBcast')

    def destroy(self):
        if self._comm is not None:
            comm, self._comm = self._comm, None
            _check(library().ncclCommDestroy(comm), 'ncclCommDestroy')


def _data_type(array):
    kind = NCCL_TYPES.get(np.dtype(array.dtype))
    if kind is None:
        raise CaffeError('NCCL collectives here take %s device arrays, got %s'
                         % ('/'.join(str(t) for t in NCCL_TYPES), array.dtype))
    return kind
