"""Softmax over one axis (softmax_param.axis, default 1), shifted by the max for stability."""
import numpy as np

from .. import gpu
from ..layer import Layer, register
from ._checks import canonical_axis, count_between, reshape_by_shapes

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


def softmax(x, axis, out=None):
    """exp(x - max) / sum over axis, written into out (which may be x) when given."""
    out = np.empty_like(x) if out is None else out
    np.subtract(x, x.max(axis=axis, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=axis, keepdims=True, dtype=np.float32)
    return out


def softmax_backward(y, dy, axis, out=None):
    """(dy - sum over axis of dy * y) * y, written into out (which may be dy) when given."""
    dot = (dy * y).sum(axis=axis, keepdims=True, dtype=np.float32)
    out = np.empty_like(dy) if out is None else out
    np.subtract(dy, dot, out=out)
    out *= y
    return out


@register('Softmax')
class SoftmaxLayer(Layer):
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    @reshape_by_shapes
    def reshape(self, bottom, top):
        self.axis = canonical_axis(self, bottom[0], self.layer_param.softmax_param.axis,
                                   'softmax_param.axis')
        top[0].reshape_like(bottom[0])

    def forward_cpu(self, bottom, top):
        softmax(bottom[0].cpu_data(), self.axis, out=top[0].data)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            softmax_backward(top[0].cpu_data(), top[0].cpu_diff(), self.axis,
                             out=bottom[0].diff)

    def forward_gpu(self, bottom, top):
        softmax_gpu(bottom[0].gpu_data(), top[0].mutable_gpu_data(), self.axis)

    def backward_gpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            softmax_backward_gpu(top[0].gpu_data(), top[0].gpu_diff(),
                                 bottom[0].mutable_gpu_diff(), self.axis)
