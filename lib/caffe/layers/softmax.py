"""Softmax over one axis (softmax_param.axis, default 1), shifted by the max for stability."""
import numpy as np

from .. import gpu
from ..layer import Layer, register
from ._checks import canonical_axis, check_count, count_between, reshape_by_shapes

_softmax_forward = gpu.Kernel('softmax.cu', 'softmax_forward')
_softmax_backward = gpu.Kernel('softmax.cu', 'softmax_backward')


def softmax_gpu(x, y, axis):
    """y = softmax(x) along axis, for device arrays."""
    channels = x.shape[axis]
    inner = count_between(x.shape, axis + 1, None)
    _softmax_forward(x.size // max(channels, 1), channels, inner, x, y)


def softmax_backward_gpu(y, dy, dx, axis):
    channels = y.shape[axis]
    inner = count_between(y.shape, axis + 1, None)
    _softmax_backward(y.size // max(channels, 1), channels, inner, y, dy, dx)


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True, dtype=np.float32)


def softmax_backward(y, dy, axis):
    return (dy - (dy * y).sum(axis=axis, keepdims=True, dtype=np.float32)) * y


@register('Softmax')
class SoftmaxLayer(Layer):
    def setup(self, bottom, top):
        check_count(self, 'bottom', bottom, 1)
        check_count(self, 'top', top, 1)

    @reshape_by_shapes
    def reshape(self, bottom, top):
        self.axis = canonical_axis(self, bottom[0], self.layer_param.softmax_param.axis,
                                   'softmax_param.axis')
        top[0].reshape_like(bottom[0])

    def forward_cpu(self, bottom, top):
        top[0].data[...] = softmax(bottom[0].cpu_data(), self.axis)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = softmax_backward(top[0].cpu_data(), top[0].cpu_diff(),
                                                   self.axis)

    def forward_gpu(self, bottom, top):
        softmax_gpu(bottom[0].gpu_data(), top[0].mutable_gpu_data(), self.axis)

    def backward_gpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            softmax_backward_gpu(top[0].gpu_data(), top[0].gpu_diff(),
                                 bottom[0].mutable_gpu_diff(), self.axis)
