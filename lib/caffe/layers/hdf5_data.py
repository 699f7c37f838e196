"""HDF5Data: batches of rows from HDF5 files (hdf5_data_param { source batch_size shuffle });
top i is the dataset named like top i, read as float32 (integer and floating-point datasets),
batch_size rows at a time (batch_size, d1, d2, ...).

As Caffe's HDF5DataLayer: source is a text file listing the HDF5 files, separated by white
space, names taken as they are (relative to the current folder); each file is read whole, every
top's dataset with the same number of rows; the rows are taken in order, moving to the next
file at a file's end and back to the first after the last; shuffle reorders the files at setup
and at every pass's end and the rows of each file as it is loaded and at its every pass's end
(Caffe draws these from C's rand(); here from a generator of the layer's own, seeded from the
runtime's stream, so a seeded run repeats). transform_param is refused, as Caffe refuses it. With
several solvers in TRAIN each rank takes every N-th row. Unlike Caffe, the rows are read in the
prefetch thread with the other data layers' batches.
"""
import os

import numpy as np

from .. import common
from ..common import CaffeError
from ..io import read_text_lines
from ..layer import TEST, register
from ..rng import CaffeRNG, caffe_rng_rand
from .base_data_layer import BasePrefetchingDataLayer, reuse


def _h5py():
    from ..hdf5 import _h5py as load
    return load()


def read_file_list(source, owner):
    """The HDF5 file names in source, with the line each is on."""
    try:
        lines = read_text_lines(source, 'HDF5 file list')
    except CaffeError as e:
        raise CaffeError('%s: %s' % (owner, e)) from None
    names = [(name, number) for number, line in lines for name in line.split()]
    if not names:
        raise CaffeError('%s: must have at least 1 HDF5 filename listed in %s' % (owner, source))
    return names


class HDF5Reader:
    def __init__(self, files, source, top_names, batch_size, shuffle_rng, phase, owner):
        self.files, self.source, self.top_names = files, source, top_names
        self.batch_size, self.rng, self.owner = batch_size, shuffle_rng, owner
        self.num_tops = len(top_names)
        self.file_perm = list(range(len(files)))
        if self.rng is not None:
            self.rng.shuffle(self.file_perm)
        self.current_file = 0
        self.current_row = 0
        self.offset = 0
        self.ranks = 1 if phase == TEST else common.solver_count()
        self.rank = 0 if phase == TEST else common.solver_rank()
        self.row_shapes = None
        self.load_file()

    def load_file(self):
        """Reads the current file's datasets (Caffe's LoadHDF5FileData)."""
        name, number = self.files[self.file_perm[self.current_file]]
        where = '%s (line %d of %s)' % (name, number, self.source)
        self.blobs = read_datasets(name, self.top_names, where, self.owner)
        shapes = [b.shape[1:] for b in self.blobs]
        if self.row_shapes is None:
            self.row_shapes = shapes
            self.first_file = where
        elif shapes != self.row_shapes:
            raise CaffeError('%s: %s has rows of shapes %s, %s rows of %s: every file must '
                             'have the same row shapes'
                             % (self.owner, where, shapes, self.first_file, self.row_shapes))
        self.rows = len(self.blobs[0])
        self.data_perm = list(range(self.rows))
        if self.rng is not None:
            self.rng.shuffle(self.data_perm)

    def next(self):
        self.current_row += 1
        if self.current_row == self.rows:
            if len(self.files) > 1:
                self.current_file += 1
                if self.current_file == len(self.files):
                    self.current_file = 0
                    if self.rng is not None:
                        self.rng.shuffle(self.file_perm)
                self.load_file()
            self.current_row = 0
            if self.rng is not None:
                self.rng.shuffle(self.data_perm)
        self.offset += 1

    def load_batch(self, batch):
        for j, shape in enumerate(self.row_shapes):
            batch[j] = reuse(batch[j], (self.batch_size,) + shape)
        for i in range(self.batch_size):
            while self.offset % self.ranks != self.rank:
                self.next()
            row = self.data_perm[self.current_row]
            for j, blob in enumerate(self.blobs):
                batch[j][i] = blob[row]
            self.next()

    def close(self):
        pass


def read_datasets(path, names, where, owner):
    """The named datasets of an HDF5 file as float32 arrays of one row count (at least 1 axis,
    at least one row), as Caffe's hdf5_load_nd_dataset checks them."""
    h5py = _h5py()
    if not os.path.isfile(path):
        raise CaffeError('%s: HDF5 file %s not found (names in the list are taken from the '
                         'current folder, %s)' % (owner, where, os.getcwd()))
    try:
        f = h5py.File(path, 'r')
    except (OSError, ValueError) as e:
        raise CaffeError('%s: failed opening HDF5 file %s: %s' % (owner, where, e)) from None
    arrays = []
    with f:
        for name in names:
            try:
                dataset = f.get(name)
            except (KeyError, OSError, ValueError, RuntimeError) as e:
                raise CaffeError('%s: HDF5 file %s: cannot read dataset %r: %s'
                                 % (owner, where, name, e)) from None
            if not isinstance(dataset, h5py.Dataset):
                raise CaffeError('%s: HDF5 file %s has no dataset %r (the datasets are named by '
                                 'the layer\'s tops)' % (owner, where, name))
            kind = dataset.dtype.kind
            if kind not in 'fiu':
                raise CaffeError('%s: HDF5 file %s: dataset %r holds %s values; Caffe reads '
                                 'integer and floating-point datasets only'
                                 % (owner, where, name, dataset.dtype))
            if dataset.ndim < 1:
                raise CaffeError('%s: HDF5 file %s: dataset %r is a scalar; it must have at '
                                 'least 1 axis (rows)' % (owner, where, name))
            try:
                values = dataset.astype(np.float32)[()]
            except (OSError, ValueError, TypeError, RuntimeError) as e:
                raise CaffeError('%s: HDF5 file %s: cannot read dataset %r: %s'
                                 % (owner, where, name, e)) from None
            arrays.append(values)
    rows = arrays[0].shape[0]
    if rows == 0:
        raise CaffeError('%s: HDF5 file %s: dataset %r has no rows' % (owner, where, names[0]))
    for name, values in zip(names[1:], arrays[1:]):
        if values.shape[0] != rows:
            raise CaffeError('%s: HDF5 file %s: dataset %r has %d rows, %r has %d'
                             % (owner, where, name, values.shape[0], names[0], rows))
    return arrays


@register('HDF5Data')
class HDF5DataLayer(BasePrefetchingDataLayer):
    min_top_blobs = 1

    def data_layer_setup(self, top):
        if self.layer_param.HasField('transform_param'):
            raise self.error('HDF5Data does not transform data (remove transform_param)')
        p = self.layer_param.hdf5_data_param
        if p.batch_size <= 0:
            raise self.error('hdf5_data_param.batch_size must be positive')
        owner = '%s layer %r' % (self.type, self.name)
        files = read_file_list(p.source, owner)
        shuffle_rng = CaffeRNG(caffe_rng_rand()) if p.shuffle else None
        reader = HDF5Reader(files, p.source, list(self.layer_param.top), int(p.batch_size),
                            shuffle_rng, self.phase, owner)
        for t, shape in zip(top, reader.row_shapes):
            t.reshape((p.batch_size,) + shape)
        return reader
