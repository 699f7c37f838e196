"""Data: batches of Datum records read in key order from an LMDB or LevelDB database
(data_param { source backend batch_size rand_skip prefetch }), through transform_param; top 0 the
images (batch_size, C, H, W), top 1 (optional) the labels (batch_size,).

As Caffe's DataLayer: the batch takes its shape from its first record (records of other sizes
need a crop_size no larger than any of them); the cursor wraps to the first record at the end;
rand_skip skips a random number of records in [0, rand_skip) at setup (the caffe-fast-rcnn
fork's DataLayer; BVLC master dropped it); with several solvers (caffe.solver_count() N) in TRAIN
each rank takes every N-th record, starting at its rank. Encoded records are decoded by OpenCV,
as stored or as transform_param's force_color / force_gray ask.
"""
from google.protobuf.message import DecodeError

from .. import common
from ..common import CaffeError
from ..db import open_db
from ..io import decode_datum
from ..layer import TEST, register
from ..proto import caffe_pb2
from ..rng import caffe_rng_rand
from .base_data_layer import BasePrefetchingDataLayer, reuse


class DatumReader:
    """A cursor over the database with Caffe's DataLayer::Skip/Next, and load_batch."""

    def __init__(self, db, source, batch_size, transformer, num_tops, phase, owner):
        self.db, self.source, self.owner = db, source, owner
        self.batch_size, self.transformer, self.num_tops = batch_size, transformer, num_tops
        self.cursor = db.cursor()
        if not self.cursor.valid:
            self.close()
            raise CaffeError('%s: database %s is empty' % (owner, source))
        self.index = 0      # the cursor's record, counted from the first, for messages
        self.offset = 0     # records passed since setup (Caffe's offset_)
        # Rank r of N solvers keeps the records at offsets r, r + N, ... in TRAIN (Caffe's
        # DataLayer::Skip); in TEST only the root solver runs, and reads them all.
        self.ranks = 1 if phase == TEST else common.solver_count()
        self.rank = 0 if phase == TEST else common.solver_rank()

    def where(self):
        key = self.cursor.key().decode('utf-8', 'replace')
        return 'record %d (key %r) of %s' % (self.index, key[:100], self.source)

    def next(self):
        self.cursor.next()
        self.index += 1
        if not self.cursor.valid:
            self.cursor.seek_to_first()
            self.index = 0
        self.offset += 1

    def skip(self, count):
        for _ in range(count):
            self.next()
        self.offset = 0

    def read(self):
        """(image C x H x W, label) of the record under the cursor."""
        try:
            datum = caffe_pb2.Datum.FromString(self.cursor.value())
        except DecodeError as e:
            raise CaffeError('%s: %s is not a Datum (%s)' % (self.owner, self.where(), e)) from None
        try:
            image = decode_datum(datum, *self.transformer.decode_flags(datum.encoded))
        except ValueError as e:
            raise CaffeError('%s: %s: %s' % (self.owner, self.where(), e)) from None
        return image, datum.label

    def load_batch(self, batch):
        for item in range(self.batch_size):
            while self.offset % self.ranks != self.rank:
                self.next()
            image, label = self.read()
            try:
                if item == 0:
                    shape = self.transformer.infer_shape(image)
                    batch[0] = reuse(batch[0], (self.batch_size,) + shape)
                self.transformer.transform(image, batch[0][item])
            except CaffeError as e:
                raise CaffeError('%s, at %s' % (e, self.where())) from None
            if self.num_tops > 1:
                batch[1] = reuse(batch[1], (self.batch_size,))
                batch[1][item] = label
            self.next()

    def close(self):
        self.cursor.close()
        self.db.close()


@register('Data')
class DataLayer(BasePrefetchingDataLayer):
    min_top_blobs = 1
    max_top_blobs = 2

    def data_layer_setup(self, top):
        p = self.layer_param.data_param
        if p.batch_size <= 0:
            raise self.error('data_param.batch_size must be positive')
        if not p.source:
            raise self.error('data_param.source (the database folder) is required')
        owner = '%s layer %r' % (self.type, self.name)
        try:
            db = open_db(p.source, p.backend)
        except CaffeError as e:
            raise self.error(str(e)) from None
        reader = DatumReader(db, p.source, int(p.batch_size), self.transformer, len(top),
                             self.phase, owner)
        try:
            if p.rand_skip:
                reader.skip(caffe_rng_rand() % p.rand_skip)
            image, _ = reader.read()
            try:
                shape = self.transformer.infer_shape(image)
            except CaffeError as e:
                raise CaffeError('%s, at %s' % (e, reader.where())) from None
        except BaseException:
            reader.close()
            raise
        top[0].reshape((p.batch_size,) + shape)
        if self.output_labels:
            top[1].reshape((p.batch_size,))
        return reader
