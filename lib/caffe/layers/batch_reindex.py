"""BatchReindex: top[i] = bottom[0][index[i]] along the first axis, index = bottom[1] (a 1-D
blob of integers as floats, truncated as Caffe's static_cast<int>). The data gradient adds each
top row's diff into the bottom row it came from (rows never picked get 0); the index gets no
gradient (Caffe: "Cannot backprop to index")."""
import numpy as np

from .. import gpu
from ..layer import Layer, register
from ._checks import layer_error, not_built, reshape_by_shapes

try:
    from . import rows_kernels as kernels
except ImportError as e:  # the package imports every layer; fail only when one is built
    kernels = None
    _KERNELS_ERROR = e

_gather = gpu.Kernel('copy_layers.cu', 'gather_rows_float_index')
_scatter_add = gpu.Kernel('copy_layers.cu', 'scatter_add_rows')


@register('BatchReindex')
class BatchReindexLayer(Layer):
    bottoms, tops = ('data', 'index'), ('reindexed',)
    non_differentiable_bottoms = (1,)

    def setup(self, bottom, top):
        if kernels is None:
            raise not_built(self, 'rows_kernels', _KERNELS_ERROR)

    @reshape_by_shapes
    def reshape(self, bottom, top):
        if len(bottom[1].shape) != 1:
            raise layer_error(self, 'the index must be a 1-D blob, got shape %s'
                              % (bottom[1].shape,))
        if not bottom[0].shape:
            raise layer_error(self, 'the data must have a first (batch) axis')
        top[0].reshape((bottom[1].shape[0],) + bottom[0].shape[1:])
        self.width = bottom[0].count_from(1)

    def _index(self, bottom):
        """The index as ints, after Caffe's check that each is within the batch."""
        values = bottom[1].cpu_data()
        index = values.astype(np.int64)
        bad = (values < 0) | (index >= bottom[0].shape[0]) | np.isnan(values)
        if bad.any():
            raise layer_error(self, 'index %g at position %d is outside the batch of %d'
                              % (values[bad][0], np.flatnonzero(bad)[0], bottom[0].shape[0]))
        return index

    def forward_cpu(self, bottom, top):
        index = self._index(bottom)
        if top[0].count:
            x = bottom[0].cpu_data().reshape(bottom[0].shape[0], -1)
            np.take(x, index, axis=0, out=top[0].data.reshape(len(index), -1))

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        order, begin = kernels.row_order(self._index(bottom), bottom[0].shape[0])
        kernels.scatter_add_rows(top[0].cpu_diff().reshape(top[0].shape[0], self.width), order,
                                 begin, bottom[0].diff.reshape(bottom[0].shape[0], self.width),
                                 False)

    # GPU: a gather by the index on the device; the gradient adds each bottom row's sources in
    # the CPU's order, from an ordering made on the host (as Caffe's GPU layer sorts the index
    # on the host).
    def forward_gpu(self, bottom, top):
        self._index(bottom)
        y = top[0].mutable_gpu_data()
        _gather(y.size, self.width, bottom[1].gpu_data(), bottom[0].gpu_data(), y)

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        order, begin = kernels.row_order(self._index(bottom), bottom[0].shape[0])
        dx = bottom[0].mutable_gpu_diff()
        _scatter_add(dx.size, self.width, gpu.to_device(order), gpu.to_device(begin),
                     top[0].gpu_diff(), False, dx)
