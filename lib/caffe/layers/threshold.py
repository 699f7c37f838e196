"""Threshold: y = 1 where x > threshold_param.threshold (default 0), else 0. Caffe gives it no
backward (NOT_IMPLEMENTED: a net that needs a gradient through it aborts); here backward raises
an error naming the layer."""
import numpy as np

from ..layer import register
from ._checks import layer_error
from ._neuron import ElementwiseNeuron


@register('Threshold')
class ThresholdLayer(ElementwiseNeuron):
    kernel = 'threshold'

    def setup(self, bottom, top):
        super().setup(bottom, top)
        self.threshold = np.float32(self.layer_param.threshold_param.threshold)

    def forward_args(self):
        return (self.threshold,)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            raise layer_error(self, 'has no backward (as in Caffe): nothing below it may need '
                              'a gradient through it (use propagate_down: false)')

    backward_gpu = backward_cpu
