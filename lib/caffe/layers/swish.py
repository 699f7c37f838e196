"""Swish: y = x * sigmoid(beta * x) (swish_param.beta, default 1). As Caffe's SwishLayer, which
runs a Sigmoid layer on beta * x, it keeps s = sigmoid(beta * x) for backward:
dx = dy * (beta * y + s * (1 - beta * y)). Backward reads only y and s, so it runs in place.
OpenCV's importer ignores beta (it computes x * sigmoid(x)); Caffe's formula is the one here."""
import numpy as np

from .. import gpu
from ..layer import register
from ._neuron import NeuronLayer, cuda, flat, kernels

_forward = cuda('swish_forward')
_backward = cuda('swish_backward')


@register('Swish')
class SwishLayer(NeuronLayer):
    def setup(self, bottom, top):
        super().setup(bottom, top)
        self.beta = np.float32(self.layer_param.swish_param.beta)
        self.s = self.s_gpu = None

    def forward_cpu(self, bottom, top):
        x = bottom[0].cpu_data()
        if self.s is None or self.s.shape != x.shape:
            self.s = np.empty(x.shape, np.float32)
        kernels.swish_forward(flat(x), flat(top[0].data), flat(self.s), self.beta)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            kernels.swish_backward(flat(top[0].cpu_data()), flat(self.s), flat(top[0].cpu_diff()),
                                   flat(bottom[0].diff), self.beta)

    def forward_gpu(self, bottom, top):
        x = bottom[0].gpu_data()
        if self.s_gpu is None or self.s_gpu.shape != x.shape:
            self.s_gpu = gpu.empty(x.shape)
        _forward(x.size, x, top[0].mutable_gpu_data(), self.s_gpu, self.beta)

    def backward_gpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y = top[0].gpu_data()
            _backward(y.size, y, self.s_gpu, top[0].gpu_diff(), bottom[0].mutable_gpu_diff(),
                      self.beta)
