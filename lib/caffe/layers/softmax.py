"""Softmax over one axis (softmax_param.axis, default 1), shifted by the max for stability."""
import numpy as np

from ..layer import Layer, register
from ._checks import canonical_axis, check_count


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
