"""Clip: y = max(min, min(x, max)) with clip_param's required min and max; the gradient passes
where min <= x <= max, ends included. As on Caffe's CPU path, a NaN input gives min (Caffe's GPU
kernel, fmaxf/fminf, gives max; both paths here follow the CPU)."""
import numpy as np

from ..layer import register
from ._checks import layer_error
from ._neuron import ElementwiseNeuron


@register('Clip')
class ClipLayer(ElementwiseNeuron):
    kernel = 'clip'

    def setup(self, bottom, top):
        super().setup(bottom, top)
        p = self.layer_param.clip_param
        # Both are `required` in caffe.proto: Caffe refuses a net without them when it parses it.
        missing = [f for f in ('min', 'max') if not p.HasField(f)]
        if missing:
            raise layer_error(self, 'clip_param.%s is required' % ' and clip_param.'.join(missing))
        self.lo, self.hi = np.float32(p.min), np.float32(p.max)

    def forward_args(self):
        return self.lo, self.hi

    backward_args = forward_args
