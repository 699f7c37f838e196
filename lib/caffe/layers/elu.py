"""ELU: y = max(x, 0) + alpha * (exp(min(x, 0)) - 1) (elu_param.alpha, default 1); the gradient
is 1 for x > 0 and y + alpha for x <= 0 (Caffe's form, which reads the output)."""
import numpy as np

from ..layer import register
from ._neuron import NeuronLayer, cuda, flat, kernels

_forward = cuda('elu_forward')
_backward = cuda('elu_backward')


@register('ELU')
class ELULayer(NeuronLayer):
    def setup(self, bottom, top):
        super().setup(bottom, top)
        self.alpha = np.float32(self.layer_param.elu_param.alpha)

    def forward_cpu(self, bottom, top):
        kernels.elu_forward(flat(bottom[0].cpu_data()), flat(top[0].data), self.alpha)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            kernels.elu_backward(flat(bottom[0].cpu_data()), flat(top[0].cpu_data()),
                                 flat(top[0].cpu_diff()), flat(bottom[0].diff), self.alpha)

    def forward_gpu(self, bottom, top):
        x = bottom[0].gpu_data()
        _forward(x.size, x, top[0].mutable_gpu_data(), self.alpha)

    def backward_gpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            x = bottom[0].gpu_data()
            _backward(x.size, x, top[0].gpu_data(), top[0].gpu_diff(),
                      bottom[0].mutable_gpu_diff(), self.alpha)
