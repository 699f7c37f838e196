"""Net parameters in HDF5 files, laid out as Caffe's Net::ToHDF5 writes them and
CopyTrainedLayersFromHDF5 reads them: a group /data with one group per layer (every layer, with
or without parameters) holding datasets "0", "1", ... of float32 in the blob's shape, and /diff
alike when diffs are written. A parameter shared from another layer is written only by the
layer that owns it (its diff by every layer). Needs h5py (requirements.txt)."""
import io
import os

import numpy as np

from .common import CaffeError
from .io import atomic_write, not_found

# HDF5's file signature; the superblock starts at byte 0, 512, 1024, 2048, ... of a file.
_SIGNATURE = b'\x89HDF\r\n\x1a\n'


def _h5py():
    try:
        import h5py
    except ImportError:
        raise CaffeError('HDF5 weights need the Python package h5py: pip install h5py '
                         '(it is in requirements.txt)') from None
    return h5py


def is_hdf5(path):
    """Whether the file at `path` is an HDF5 file (by its signature, as H5Fis_hdf5 decides)."""
    try:
        size = os.path.getsize(path)
        with open(path, 'rb') as f:
            offset = 0
            while offset + len(_SIGNATURE) <= size:
                f.seek(offset)
                if f.read(len(_SIGNATURE)) == _SIGNATURE:
                    return True
                offset = 512 if offset == 0 else offset * 2
    except (OSError, ValueError):  # ValueError: a path with a NUL byte names no file
        return False
    return False


def save_hdf5(net, filename, write_diff=False):
    """Writes net's parameters to `filename` (built in memory, then written atomically)."""
    h5py = _h5py()
    buffer = io.BytesIO()
    with h5py.File(buffer, 'w') as f:
        data = f.create_group('data')
        diff = f.create_group('diff') if write_diff else None
        for name, layer, shared in zip(net._layer_names, net.layers, net._param_shared):
            data_group = data.create_group(name)
            diff_group = diff.create_group(name) if write_diff else None
            for k, blob in enumerate(layer.blobs):
                if not shared[k]:
                    data_group.create_dataset(str(k), data=np.asarray(blob.data, np.float32))
                if write_diff:
                    diff_group.create_dataset(str(k), data=np.asarray(blob.diff, np.float32))
    atomic_write(filename, buffer.getvalue())


def copy_from_hdf5(net, filename):
    """Copies /data/<layer>/<k> into the net's same-named layers (layers the net lacks are
    ignored) and returns the names of the layers copied. A layer may lack a dataset only for a
    parameter it shares from another layer."""
    h5py = _h5py()
    if not os.path.isfile(filename):
        raise not_found(filename, 'HDF5 weights file')
    index = {name: i for i, name in enumerate(net._layer_names)}
    try:
        f = h5py.File(filename, 'r')
    except OSError as e:
        raise CaffeError('%s is not a readable HDF5 file: %s' % (filename, e)) from None
    with f:
        if 'data' not in f:
            raise CaffeError('%s: no /data group (not weights written by save_hdf5 or Caffe)'
                             % filename)
        copied = []
        for name, group in f['data'].items():
            i = index.get(name)
            if i is None:
                continue
            blobs, shared = net.layers[i].blobs, net._param_shared[i]
            if len(group) > len(blobs):
                raise CaffeError('%s: layer %r has %d parameter blobs, the net %s expects %d'
                                 % (filename, name, len(group), net.source, len(blobs)))
            for k, blob in enumerate(blobs):
                if str(k) not in group:
                    if shared[k]:
                        continue
                    raise CaffeError('%s: layer %r lacks parameter %d (the net %s has %d)'
                                     % (filename, name, k, net.source, len(blobs)))
                values = group[str(k)]
                if tuple(values.shape) != blob.shape:
                    raise CaffeError('%s: layer %r param %d has shape %s, the net %s expects %s'
                                     % (filename, name, k, tuple(values.shape), net.source,
                                        blob.shape))
                blob.data[...] = np.asarray(values, dtype=np.float32)
            copied.append(name)
    return copied
