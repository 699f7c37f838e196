"""Filter: keeps the items (first-axis rows) whose selector value is nonzero. Bottoms: the blobs
to filter, then the selector (shape (num,) or (num, 1, ...)); one top per filtered blob.

Caffe's details (FilterLayer): the selection is made at reshape from the selector's values; the
very first reshape (at setup) sizes the tops with the whole batch, so the layers above are set
up for it; the gradient copies each kept row's diff back and writes 0 into the rows dropped; the
selector gets no gradient."""
import numpy as np

from .. import gpu
from ..layer import Layer, register
from ._checks import layer_error

_gather = gpu.Kernel('copy_layers.cu', 'gather_rows')
_scatter = gpu.Kernel('copy_layers.cu', 'scatter_rows_or_zero')


@register('Filter')
class FilterLayer(Layer):
    min_bottom_blobs = 2
    min_top_blobs = 1

    def setup(self, bottom, top):
        if len(top) != len(bottom) - 1:
            raise layer_error(self, 'takes one top per filtered bottom: %d bottoms (the last is '
                              'the selector) need %d tops, got %d'
                              % (len(bottom), len(bottom) - 1, len(top)))
        self.non_differentiable_bottoms = (len(bottom) - 1,)
        self.first_reshape = True

    def reshape(self, bottom, top):
        selector = bottom[-1]
        if not selector.shape or any(d != 1 for d in selector.shape[1:]):
            raise layer_error(self, 'the selector must be (num,) or (num, 1, ...), got %s'
                              % (selector.shape,))
        for i, b in enumerate(bottom[:-1]):
            if not b.shape or b.shape[0] != selector.shape[0]:
                raise layer_error(self, 'bottom[%d] %s does not have the selector\'s %d items'
                                  % (i, b.shape, selector.shape[0]))
        self.kept = np.flatnonzero(selector.cpu_data().reshape(-1) != 0).astype(np.int32)
        count = len(self.kept)
        if self.first_reshape:
            count = selector.shape[0]
            self.first_reshape = False
        for b, t in zip(bottom, top):
            t.reshape((count,) + b.shape[1:])
        self._device = None

    def forward_cpu(self, bottom, top):
        for b, t in zip(bottom, top):
            width = b.count_from(1)
            x = b.cpu_data().reshape(b.shape[0], width)
            np.take(x, self.kept, axis=0, out=t.data.reshape(t.shape[0], width)[:len(self.kept)])

    def backward_cpu(self, top, propagate_down, bottom):
        for b, t, down in zip(bottom, top, propagate_down):
            if not down:
                continue
            width = b.count_from(1)
            dx = b.diff.reshape(b.shape[0], width)
            dx[...] = 0
            dx[self.kept] = t.cpu_diff().reshape(t.shape[0], width)[:len(self.kept)]

    # GPU: the kept rows (and, for the gradient, each bottom row's top row or -1) go to the
    # device once per reshape.
    def _indices(self, bottom):
        if self._device is None or self._device[0] != gpu.generation():
            source = np.full(bottom[0].shape[0], -1, np.int32)
            source[self.kept] = np.arange(len(self.kept), dtype=np.int32)
            self._device = (gpu.generation(), gpu.to_device(self.kept), gpu.to_device(source))
        return self._device[1:]

    def forward_gpu(self, bottom, top):
        kept, _ = self._indices(bottom)
        for b, t in zip(bottom, top):
            width = b.count_from(1)
            _gather(len(self.kept) * width, width, kept, b.gpu_data(), t.mutable_gpu_data())

    def backward_gpu(self, top, propagate_down, bottom):
        _, source = self._indices(bottom)
        for b, t, down in zip(bottom, top, propagate_down):
            if down:
                dx = b.mutable_gpu_diff()
                _scatter(dx.size, b.count_from(1), source, t.gpu_diff(), dx)
