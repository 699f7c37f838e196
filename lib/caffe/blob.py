"""Blob: a float32 array and its gradient, with host and device copies kept in sync.

The sync follows Caffe's SyncedMemory: each array has a head (host, device or both) and is copied
only when the other side is read. As Caffe's Blob, a blob keeps its buffers' capacity: reshaping
to a count it already holds reuses them (the blob's values are then the first `count` elements,
as they were left), and only a larger count allocates new ones. `.data`/`.diff` give the host array for reading and writing (as
pycaffe does, this makes the host copy the head); `gpu_data()`/`mutable_gpu_data()` give the device
copy (a pycuda GPUArray) and exist only once the GPU backend is in use.
"""
import math
import mmap

import numpy as np

from .common import CaffeError

_HOST, _DEVICE, _SYNCED = 'host', 'device', 'synced'

# Caffe's limits on a blob's shape (blob.hpp: kMaxBlobAxes; Blob::Reshape keeps the count an int).
MAX_BLOB_AXES = 32
MAX_BLOB_COUNT = 2 ** 31 - 1


def check_shape(shape):
    """The checks of Caffe's Blob::Reshape, as CaffeError: at most 32 axes, no negative
    dimension, and a count that fits an int ("blob size exceeds INT_MAX")."""
    if len(shape) > MAX_BLOB_AXES:
        raise CaffeError('blob shape %s has %d axes; at most %d'
                         % (tuple(shape), len(shape), MAX_BLOB_AXES))
    if any(d < 0 for d in shape):
        raise CaffeError('blob shape %s has a negative dimension' % (tuple(shape),))
    # Counted without the zero dimensions (Caffe stops checking at the first 0), since numpy
    # cannot make even an empty array whose other dimensions overflow.
    if math.prod(d for d in shape if d) > MAX_BLOB_COUNT:
        raise CaffeError('blob shape %s: blob size exceeds INT_MAX' % (tuple(shape),))


# Long-lived buffers (blobs, the layers' kept arrays, the shared convolution workspace) of at
# least this many bytes are mapped pages of their own (an anonymous mmap), not malloc's: zero
# and not resident until written (a test net's diffs never are), and returned to the system when
# freed. From malloc, a buffer below glibc's moving mmap threshold (up to 32 MB) lands in the heap
# above the freed temporaries of the layers before it, and the heap cannot give their space back
# (about 30 MB of the ZF test net's peak); calloc also clears reused heap space, making an
# untouched diff resident.
MAPPED_MIN_BYTES = 1 << 18


def lasting_zeros(shape, dtype=np.float32):
    """An array of zeros for a buffer that lives as long as a net (see MAPPED_MIN_BYTES)."""
    dtype = np.dtype(dtype)
    count = math.prod(shape) if isinstance(shape, tuple) else int(shape)
    if count * dtype.itemsize < MAPPED_MIN_BYTES:
        return np.zeros(shape, dtype)
    try:
        pages = mmap.mmap(-1, count * dtype.itemsize)
    except OSError as e:
        # A mapping the system refuses is numpy's MemoryError, as np.zeros would raise it.
        raise MemoryError('Unable to allocate %.3g GiB for an array with shape %s and data type '
                          '%s (%s)' % (count * dtype.itemsize / 2 ** 30, shape, dtype,
                                       e.strerror)) from None
    return np.frombuffer(pages, dtype, count).reshape(shape)


class SyncedArray:
    """A flat float32 buffer with a host copy and (once asked for) a device copy."""
    __slots__ = ('_host', '_dev', '_head')

    def __init__(self, size):
        self._host = lasting_zeros(int(size))
        self._dev = None
        self._head = _HOST

    @property
    def size(self):
        return self._host.size

    def host(self, write=True):
        if self._head == _DEVICE:
            self._dev.get(ary=self._host)
            self._head = _SYNCED
        if write:
            self._head = _HOST
        return self._host

    def device(self, write=True):
        from .gpu import to_device
        if self._dev is None:
            self._dev = to_device(self._host)
            self._head = _SYNCED
        elif self._head == _HOST:
            self._dev.set(self._host)
            self._head = _SYNCED
        if write:
            self._head = _DEVICE
        return self._dev

    def rebind(self, host, device=None):
        """Moves the values into the given storage (a float32 host array of this size and, in
        GPU work, a device array of it) and keeps them there: views into one flat buffer, as
        Caffe's GPUParams makes every parameter's diff a slice of one allocation."""
        values = self.host(write=False)
        host[...] = values
        if device is not None:
            device.set(host)
        self._host, self._dev = host, device
        self._head = _SYNCED if device is not None else _HOST


class Blob:
    def __init__(self, shape=()):
        shape = tuple(int(d) for d in shape)
        self._check(shape)
        self._set_shape(shape)
        self._data = SyncedArray(self.count)
        self._diff = SyncedArray(self.count)

    def _set_shape(self, shape):
        # The count is asked for on every data/diff access: kept, not recomputed.
        self._shape = shape
        self._count = math.prod(shape)

    _check = staticmethod(check_shape)

    # pycaffe's view of a blob --------------------------------------------------------------
    def _view(self, array):
        # The first `count` elements of a buffer that may be larger (its capacity).
        count = self._count
        return (array if array.size == count else array[:count]).reshape(self._shape)

    @property
    def data(self):
        return self._view(self._data.host())

    @data.setter
    def data(self, value):
        self.data[...] = value

    @property
    def diff(self):
        return self._view(self._diff.host())

    @diff.setter
    def diff(self, value):
        self.diff[...] = value

    @property
    def shape(self):
        return self._shape

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        shape = tuple(int(d) for d in shape)
        self._check(shape)
        if shape == self._shape:
            return
        self._set_shape(shape)
        # New buffers only when the capacity is exceeded (Caffe's Blob::Reshape); a shared
        # buffer is never resized under the blob it is shared with.
        if self.count > self._data.size or self.count > self._diff.size:
            self._data = SyncedArray(self.count)
            self._diff = SyncedArray(self.count)

    def reshape_like(self, other):
        self.reshape(other.shape)

    @property
    def count(self):
        return self._count

    def count_from(self, axis):
        return math.prod(self._shape[axis:])

    def canonical_axis(self, axis):
        if not -len(self._shape) <= axis < max(len(self._shape), 1):
            raise ValueError('axis %d out of range for a blob of shape %s' % (axis, self._shape))
        return axis % len(self._shape) if self._shape else 0

    def _legacy(self, i):
        # Caffe's num/channels/height/width: missing trailing axes count as 1.
        return self._shape[i] if len(self._shape) > i else 1

    num = property(lambda self: self._legacy(0))
    channels = property(lambda self: self._legacy(1))
    height = property(lambda self: self._legacy(2))
    width = property(lambda self: self._legacy(3))

    # Read access that leaves the head where it is (layers use these for bottoms).
    def cpu_data(self):
        return self._view(self._data.host(write=False))

    def cpu_diff(self):
        return self._view(self._diff.host(write=False))

    def gpu_data(self):
        return self._view(self._data.device(write=False))

    def gpu_diff(self):
        return self._view(self._diff.device(write=False))

    def mutable_gpu_data(self):
        return self._view(self._data.device(write=True))

    def mutable_gpu_diff(self):
        return self._view(self._diff.device(write=True))

    def place_diff(self, host, device=None):
        """Keeps the diff in the given storage from now on (SyncedArray.rebind)."""
        self._diff.rebind(host, device)

    def share_data(self, other):
        """Makes this blob use other's data buffer (Caffe's ShareData), e.g. for Reshape."""
        if other.count != self.count:
            raise ValueError('share_data: counts differ (%d vs %d)' % (self.count, other.count))
        self._data = other._data

    def share_diff(self, other):
        if other.count != self.count:
            raise ValueError('share_diff: counts differ (%d vs %d)' % (self.count, other.count))
        self._diff = other._diff

    def __repr__(self):
        return 'Blob(%s)' % (self._shape,)


class BlobVec(list):
    """A layer's parameter blobs; add_blob as in pycaffe's Python layers."""

    def add_blob(self, *shape):
        self.append(Blob(shape))
