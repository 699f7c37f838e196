"""ReLU: y = max(x, 0) + negative_slope * min(x, 0); works in place."""
import numpy as np

from .. import gpu
from ..layer import Layer, register
from ._checks import not_built, reshape_by_shapes

try:
    from . import elementwise_kernels as kernels
except ImportError as e:  # the package imports every layer; fail only when a ReLU is built
    kernels = None
    _KERNELS_ERROR = e

_forward = gpu.Kernel('elementwise.cu', 'relu_forward')
_backward = gpu.Kernel('elementwise.cu', 'relu_backward')


@register('ReLU')
class ReLULayer(Layer):
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def setup(self, bottom, top):
        if kernels is None:
            raise not_built(self, 'elementwise_kernels', _KERNELS_ERROR)
        self.negative_slope = np.float32(self.layer_param.relu_param.negative_slope)

    @reshape_by_shapes
    def reshape(self, bottom, top):
        top[0].reshape_like(bottom[0])

    # One pass, in place when the Net runs the layer in place (top is bottom).
    def forward_cpu(self, bottom, top):
        kernels.relu_forward(bottom[0].cpu_data().reshape(-1), top[0].data.reshape(-1),
                             self.negative_slope)

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        # In place, bottom data already holds y; y > 0 exactly where x > 0 for any slope >= 0,
        # so the mask below is the same either way (as in Caffe).
        kernels.relu_backward(bottom[0].cpu_data().reshape(-1), top[0].cpu_diff().reshape(-1),
                              bottom[0].diff.reshape(-1), self.negative_slope)

    def forward_gpu(self, bottom, top):
        x = bottom[0].gpu_data()
        _forward(x.size, x, top[0].mutable_gpu_data(), self.negative_slope)

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x = bottom[0].gpu_data()
        _backward(x.size, x, top[0].gpu_diff(), bottom[0].mutable_gpu_diff(), self.negative_slope)
