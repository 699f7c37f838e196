"""Bias: top = bottom[0] + b, with b broadcast over the axes around it (Caffe's BiasLayer).

b is bottom[1] or, with one bottom, the layer's parameter (filled by bias_param.filler, Caffe's
default constant 0). Its shape is bottom[0]'s shape on the axes [axis, axis + num_axes)
(num_axes -1: to the last axis); a second bottom brings its own shape and covers that many axes
from `axis` (from axis 0 if it has none). bottom[0] is seen as (outer, dim, inner), dim being
b's size. The parameter's gradient accumulates; bottom[1]'s is overwritten. Works in place.
"""
import numpy as np

from .. import gpu
from ..fillers import fill
from ..layer import Layer, register
from ._checks import canonical_axis, check_count, count_between, layer_error, not_built

try:
    from .scale_kernels import scale_bias, sum_over_outer_inner
except ImportError as e:  # the package imports every layer; fail only when one is built
    scale_bias = sum_over_outer_inner = None
    _KERNELS_ERROR = e


def require_kernels(layer):
    if scale_bias is None:
        raise not_built(layer, 'scale_kernels', _KERNELS_ERROR)


def param_shape(layer, bottom, axis, num_axes, field):
    """The shape of a parameter that covers bottom's axes [axis, axis + num_axes) (Caffe's
    Bias/Scale LayerSetUp)."""
    axis = canonical_axis(layer, bottom, axis, field + '.axis')
    shape = bottom.shape
    if num_axes < -1:
        raise layer_error(layer, '%s.num_axes must be non-negative, or -1 to extend to the end '
                          'of bottom[0]; got %d' % (field, num_axes))
    if num_axes >= 0 and len(shape) < axis + num_axes:
        raise layer_error(layer, '%s: bottom[0] of shape %s has no %d axes from axis %d'
                          % (field, shape, num_axes, axis))
    return tuple(shape[axis:]) if num_axes == -1 else tuple(shape[axis:axis + num_axes])


def broadcast_geometry(layer, bottom, operand_shape, axis, field):
    """(outer, dim, inner) of bottom for an operand of operand_shape that starts at `axis`, or at
    axis 0 when it has no axes (Caffe's Bias/Scale Reshape)."""
    shape = bottom.shape
    k = len(operand_shape)
    axis = 0 if k == 0 else canonical_axis(layer, bottom, axis, field + '.axis')
    if len(shape) < axis + k or tuple(shape[axis:axis + k]) != tuple(operand_shape):
        raise layer_error(layer, 'an operand of shape %s does not match bottom[0] of shape %s '
                          'from axis %d' % (tuple(operand_shape), shape, axis))
    return (count_between(shape, 0, axis), count_between(operand_shape, 0, k),
            count_between(shape, axis + k, len(shape)))


def sums_over_broadcast(dy, x, dim):
    """Per entry of the broadcast operand: the sum of dy (x None) or of dy * x, float32."""
    out = np.empty(dim, np.float64)
    sum_over_outer_inner(dy, x, out)
    return out.astype(np.float32)


def launch_sums(dy, x, dim, outer, inner, accumulate, out):
    """The GPU version of sums_over_broadcast, added to out (accumulate) or written over it."""
    if dim:
        _sum.launch((dim, 1), (SUM_THREADS, 1, 1), np.int32(dim), np.int32(outer),
                    np.int32(inner), dy, x, np.int32(accumulate), out)


@register('Bias')
class BiasLayer(Layer):
    def setup(self, bottom, top):
        check_count(self, 'bottom', bottom, (1, 2))
        check_count(self, 'top', top, 1)
        require_kernels(self)
        p = self.layer_param.bias_param
        if len(bottom) == 1:
            shape = param_shape(self, bottom[0], p.axis, p.num_axes, 'bias_param')
            if len(self.blobs) == 0:
                self.blobs.add_blob(*shape)
                fill(self.blobs[0], p.filler)
            elif [b.shape for b in self.blobs] != [shape]:
                raise layer_error(self, 'parameter shapes %s do not match the expected %s'
                                  % ([b.shape for b in self.blobs], [shape]))
        self.param_propagate_down = [True] * len(self.blobs)

    def _bias(self, bottom):
        return bottom[1] if len(bottom) > 1 else self.blobs[0]

    def reshape(self, bottom, top):
        self.outer, self.dim, self.inner = broadcast_geometry(
            self, bottom[0], self._bias(bottom).shape, self.layer_param.bias_param.axis,
            'bias_param')
        top[0].reshape(bottom[0].shape)

    def _view(self, array):
        return array.reshape(self.outer, self.dim, self.inner)

    def forward_cpu(self, bottom, top):
        b = self._bias(bottom).cpu_data().reshape(self.dim)
        scale_bias(self._view(bottom[0].cpu_data()), None, b, self._view(top[0].data))

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0] and bottom[0] is not top[0]:
            bottom[0].diff[...] = top[0].cpu_diff()
        if len(bottom) > 1:
            if propagate_down[1]:
                sums = sums_over_broadcast(self._view(top[0].cpu_diff()), None, self.dim)
                bottom[1].diff[...] = sums.reshape(bottom[1].shape)
        elif self.param_propagate_down[0]:
            sums = sums_over_broadcast(self._view(top[0].cpu_diff()), None, self.dim)
            self.blobs[0].diff[...] += sums.reshape(self.blobs[0].shape)

    def forward_gpu(self, bottom, top):
        x = bottom[0].gpu_data()
        _forward(x.size, self.dim, self.inner, x, None, self._bias(bottom).gpu_data(),
                 top[0].mutable_gpu_data())

    def backward_gpu(self, top, propagate_down, bottom):
        dy = top[0].gpu_diff()
        if propagate_down[0] and bottom[0] is not top[0]:
            gpu.copy(bottom[0].mutable_gpu_diff(), dy)
        if len(bottom) > 1:
            if propagate_down[1]:
                launch_sums(dy, None, self.dim, self.outer, self.inner, False,
                            bottom[1].mutable_gpu_diff())
        elif self.param_propagate_down[0]:
            launch_sums(dy, None, self.dim, self.outer, self.inner, True,
                        self.blobs[0].mutable_gpu_diff())


SUM_THREADS = 256  # SB_THREADS in kernels/scale_bias.cu
_forward = gpu.Kernel('scale_bias.cu', 'scale_bias_forward')
_sum = gpu.Kernel('scale_bias.cu', 'scale_bias_sum')
