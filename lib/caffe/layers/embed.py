"""Embed: a lookup table. Each bottom value is an integer index into input_dim rows (as a
float, truncated as Caffe's static_cast<int>); the top, of the bottom's shape plus num_output,
holds weight row index (+ bias). Weights are (input_dim, num_output): transposed from
InnerProduct's layout (Caffe: "for spatial locality"). The bottom gets no gradient (Caffe:
"Can't backpropagate to EmbedLayer input"); the weight gradient adds each top row's diff into
the row it came from, in bottom order (Caffe's sequential caffe_axpy); the bias gradient sums
the top diff's rows."""
import numpy as np

from .. import gpu
from ..layer import Layer, register
from ._checks import layer_error, not_built, param_blobs, reshape_by_shapes

try:
    from . import rows_kernels as kernels
except ImportError as e:  # the package imports every layer; fail only when an Embed is built
    kernels = None
    _KERNELS_ERROR = e

_gather = gpu.Kernel('copy_layers.cu', 'gather_rows_float_index')
_scatter_add = gpu.Kernel('copy_layers.cu', 'scatter_add_rows')
_add_bias = gpu.Kernel('elementwise.cu', 'add_bias')
_sum_rows_accumulate = gpu.Kernel('elementwise.cu', 'sum_rows_accumulate')


@register('Embed')
class EmbedLayer(Layer):
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1
    non_differentiable_bottoms = (0,)

    def setup(self, bottom, top):
        if kernels is None:
            raise not_built(self, 'rows_kernels', _KERNELS_ERROR)
        p = self.layer_param.embed_param
        self.num_output = int(p.num_output)
        self.input_dim = int(p.input_dim)
        if self.num_output < 1:
            raise layer_error(self, 'embed_param.num_output must be positive')
        if self.input_dim < 1:
            raise layer_error(self, 'embed_param.input_dim must be positive')
        shapes = [(self.input_dim, self.num_output)]
        if p.bias_term:
            shapes.append((self.num_output,))
        param_blobs(self, shapes, (p.weight_filler, p.bias_filler))

    @reshape_by_shapes
    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape + (self.num_output,))

    def _index(self, bottom):
        """The indices as ints, each checked to name a row (Caffe checks in debug builds)."""
        values = bottom[0].cpu_data().reshape(-1)
        index = values.astype(np.int64)
        bad = (values < 0) | (index >= self.input_dim) | (index != values)
        if bad.any():
            raise layer_error(self, 'input %g at position %d is not an integer in [0, %d)'
                              % (values[bad][0], np.flatnonzero(bad)[0], self.input_dim))
        return index

    def forward_cpu(self, bottom, top):
        y = top[0].data.reshape(-1, self.num_output)
        np.take(self.blobs[0].cpu_data(), self._index(bottom), axis=0, out=y)
        if len(self.blobs) > 1:
            y += self.blobs[1].cpu_data()

    def backward_cpu(self, top, propagate_down, bottom):
        dy = top[0].cpu_diff().reshape(-1, self.num_output)
        if self.param_propagate_down[0]:
            order, begin = kernels.row_order(self._index(bottom), self.input_dim)
            kernels.scatter_add_rows(dy, order, begin, self.blobs[0].diff, True)
        if len(self.blobs) > 1 and self.param_propagate_down[1]:
            self.blobs[1].diff[...] += dy.sum(axis=0, dtype=np.float32)

    def forward_gpu(self, bottom, top):
        y = top[0].mutable_gpu_data()
        self._index(bottom)
        _gather(y.size, self.num_output, bottom[0].gpu_data(), self.blobs[0].gpu_data(), y)
        if len(self.blobs) > 1:
            _add_bias(y.size, self.num_output, self.blobs[1].gpu_data(), y)

    def backward_gpu(self, top, propagate_down, bottom):
        dy = top[0].gpu_diff()
        if self.param_propagate_down[0]:
            order, begin = kernels.row_order(self._index(bottom), self.input_dim)
            dw = self.blobs[0].mutable_gpu_diff()
            _scatter_add(dw.size, self.num_output, gpu.to_device(order), gpu.to_device(begin),
                         dy, True, dw)
        if len(self.blobs) > 1 and self.param_propagate_down[1]:
            _sum_rows_accumulate(self.num_output, bottom[0].count, dy,
                                 self.blobs[1].mutable_gpu_diff())
