"""ELU: y = max(x, 0) + alpha * (exp(min(x, 0)) - 1) (elu_param.alpha, default 1); the gradient
is 1 for x > 0 and y + alpha for x <= 0 (Caffe's form, which reads the output)."""
import numpy as np

from ..layer import register
from ._neuron import ElementwiseNeuron


@register('ELU')
class ELULayer(ElementwiseNeuron):
    kernel = 'elu'
    backward_reads = ('x', 'y')

    def setup(self, bottom, top):
        super().setup(bottom, top)
        self.alpha = np.float32(self.layer_param.elu_param.alpha)

    def forward_args(self):
        return (self.alpha,)

    backward_args = forward_args
