"""Threshold: y = 1 where x > threshold_param.threshold (default 0), else 0. Caffe gives it no
backward (NOT_IMPLEMENTED: a net that needs a gradient through it aborts); here backward raises
an error naming the layer."""
import numpy as np

from ..layer import register
from ._checks import layer_error
from ._neuron import NeuronLayer, cuda, flat, kernels

_forward = cuda('threshold_forward')


@register('Threshold')
class ThresholdLayer(NeuronLayer):
    def setup(self, bottom, top):
        super().setup(bottom, top)
        self.threshold = np.float32(self.layer_param.threshold_param.threshold)

    def forward_cpu(self, bottom, top):
        kernels.threshold_forward(flat(bottom[0].cpu_data()), flat(top[0].data), self.threshold)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            raise layer_error(self, 'has no backward (as in Caffe): nothing below it may need '
                              'a gradient through it (use propagate_down: false)')

    def forward_gpu(self, bottom, top):
        x = bottom[0].gpu_data()
        _forward(x.size, x, top[0].mutable_gpu_data(), self.threshold)

    def backward_gpu(self, top, propagate_down, bottom):
        self.backward_cpu(top, propagate_down, bottom)
