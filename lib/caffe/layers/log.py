"""Log: y = log_base(shift + scale * x) (log_param: base default -1, which means e; scale 1;
shift 0), computed as Caffe does: log(scale * x + shift) times base_scale = 1 / log(base).
The gradient is dy * (scale * x + shift)^-1 * scale / log(base). OpenCV's importer ignores
base, scale and shift (it takes the natural log of x); Caffe's formula is the one here."""
import math

import numpy as np

from ..layer import register
from ._checks import layer_error
from ._neuron import ElementwiseNeuron
from .exp import log_of_base


@register('Log')
class LogLayer(ElementwiseNeuron):
    kernel = 'log'

    def setup(self, bottom, top):
        super().setup(bottom, top)
        p = self.layer_param.log_param
        log_base = log_of_base(self, np.float32(p.base), 'log_param')
        with np.errstate(divide='ignore'):
            self.base_scale = np.float32(1) / log_base
        if not math.isfinite(self.base_scale):
            raise layer_error(self, 'log_param.base %g: 1 / log(base) is not finite' % p.base)
        self.scale, self.shift = np.float32(p.scale), np.float32(p.shift)
        self.backward_num_scale = np.float32(self.scale / log_base)

    def forward_args(self):
        return self.scale, self.shift, self.base_scale

    def backward_args(self):
        return self.scale, self.shift, self.backward_num_scale
