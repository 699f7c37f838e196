"""The data layers' common part, as Caffe's BaseDataLayer and BasePrefetchingDataLayer: a
DataTransformer made from transform_param, and a thread that loads the next batches while the
net computes the current one.

A data layer's reading lives in a reader object (open source, cursor, its own random
generators) with load_batch(batch), and only the prefetch thread calls it once setup is done:
the batches, and every random draw in them, come in one fixed order however the thread is
timed, so a seeded run is repeatable with prefetching on. data_param.prefetch (default 4, read
by every prefetching layer as in Caffe) is how many batches may wait; 0 loads each batch in
forward, in the calling thread (Caffe would wait forever). An error in the thread is raised by
the forward that would have received its batch.

The setup draws from the runtime's stream come in Caffe's order: the transformer's seed, the
layer's own draws (DataLayerSetUp), the transformer's seed again (BasePrefetchingDataLayer's
InitRand) and the thread's seed (InternalThread::StartInternalThread).

A batch is a list of float32 arrays, one per top; forward (forward_batch) copies them into the
tops, in host memory in either mode: in GPU mode the next layer moves them to the device, as
Caffe's Forward_gpu copies its prefetched batch over.
"""
import queue
import threading
import weakref

import numpy as np

from ..common import CaffeError
from ..data_transformer import DataTransformer
from ..layer import NoBackwardLayer
from ..rng import caffe_rng_rand


def reuse(array, shape):
    """array when it already has this shape (a recycled prefetch buffer), else a new one."""
    if array is not None and array.shape == tuple(shape):
        return array
    return np.empty(shape, dtype=np.float32)


class Prefetcher:
    """Runs reader.load_batch(batch) in a thread of its own into `count` recycled batches; next()
    hands them out in order. It holds the reader, never the layer, so a layer that goes away
    stops its thread (stop(), from the layer's finalizer)."""

    def __init__(self, reader, count, name):
        self._reader = reader
        self._error = None
        self._count = count
        self._stopped = threading.Event()
        if count == 0:
            self._spare = [None]
            return
        self._free, self._full = queue.Queue(), queue.Queue()
        for _ in range(count):
            self._free.put([None] * reader.num_tops)
        self._thread = threading.Thread(target=self._run, name='prefetch %s' % name, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            while True:
                batch = self._free.get()
                if batch is None or self._stopped.is_set():
                    return
                try:
                    self._reader.load_batch(batch)
                except Exception as e:
                    self._full.put(e)
                    return
                self._full.put(batch)
        finally:
            self._reader.close()

    def next(self):
        """The next batch (a list of arrays); give it back with recycle() once copied."""
        if self._error is not None:
            raise self._error
        if self._count == 0:
            batch = self._spare[0] or [None] * self._reader.num_tops
            try:
                self._reader.load_batch(batch)
            except Exception as e:
                self._error = e
                raise
            return batch
        item = self._full.get()
        if isinstance(item, Exception):
            self._error = item
            raise item
        return item

    def recycle(self, batch):
        if self._count == 0:
            self._spare[0] = batch
        else:
            self._free.put(batch)

    def stop(self):
        """Ends the thread and closes the reader (its database) before returning, so the same
        source can be opened again at once. Stopping again does nothing."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._count == 0:
            self._reader.close()
            return
        self._free.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join()


class BasePrefetchingDataLayer(NoBackwardLayer):
    """Subclasses implement data_layer_setup(top) -> reader, and forward with forward_batch;
    the reader has num_tops, load_batch(batch) (fills batch[i] with top i's values, reshaping
    them with reuse()) and close(). self.transformer is ready in data_layer_setup."""
    exact_num_bottom_blobs = 0

    def setup(self, bottom, top):
        self.output_labels = len(top) > 1
        owner = '%s layer %r' % (self.type, self.name)
        self.transformer = DataTransformer(self.layer_param.transform_param, self.phase, owner)
        self.transformer.init_rand()
        reader = self.data_layer_setup(top)
        try:
            self.transformer.init_rand()
            caffe_rng_rand()  # the prefetch thread's seed in Caffe; kept for the stream's order
            prefetch = int(self.layer_param.data_param.prefetch)
            self._prefetcher = Prefetcher(reader, prefetch, self.name)
        except BaseException:
            reader.close()
            raise
        weakref.finalize(self, self._prefetcher.stop)

    def data_layer_setup(self, top):
        raise NotImplementedError

    def error(self, message):
        return CaffeError('%s layer %r: %s' % (self.type, self.name, message))

    def reshape(self, bottom, top):
        # Each batch gives the tops its own shapes, in forward.
        pass

    def forward_batch(self, top):
        """The next prefetched batch into the tops (the layers' forward_cpu and forward_gpu:
        Caffe's Forward_gpu copies the same host batch to the device)."""
        batch = self._prefetcher.next()
        for t, values in zip(top, batch):
            t.reshape(values.shape)
            t.data[...] = values
        self._prefetcher.recycle(batch)

    def forward_cpu(self, bottom, top):
        self.forward_batch(top)

    # The batch is on the host; the next layer moves the tops to the device.
    def forward_gpu(self, bottom, top):
        self.forward_batch(top)
