"""Exp: y = base^(shift + scale * x) (exp_param: base default -1, which means e; scale 1;
shift 0), computed as Caffe does: outer_scale * exp(inner_scale * x) with inner_scale =
log(base) * scale (exactly scale for base e) and outer_scale = base^shift (1 for shift 0).
The gradient is y * inner_scale."""
import math

import numpy as np

from ..layer import register
from ._checks import layer_error
from ._neuron import ElementwiseNeuron, kernels


def log_of_base(layer, base, field):
    """Caffe's log_base for Exp and Log: 1 exactly for base -1 (e), else log(base) (float),
    which must be finite; a base other than -1 must be positive."""
    if base == -1:
        return np.float32(1)
    if not base > 0:
        raise layer_error(layer, '%s.base must be strictly positive (or -1 for e), got %g'
                          % (field, base))
    log_base = np.float32(kernels.logf_(base))
    if not math.isfinite(log_base):
        raise layer_error(layer, '%s.base %g: log(base) = %g is not finite'
                          % (field, base, log_base))
    return log_base


@register('Exp')
class ExpLayer(ElementwiseNeuron):
    kernel = 'exp'
    backward_reads = ('y',)

    def setup(self, bottom, top):
        super().setup(bottom, top)
        p = self.layer_param.exp_param
        base, scale, shift = np.float32(p.base), np.float32(p.scale), np.float32(p.shift)
        self.inner_scale = np.float32(log_of_base(self, base, 'exp_param') * scale)
        if shift == 0:
            self.outer_scale = np.float32(1)
        elif base == -1:
            self.outer_scale = np.float32(kernels.expf_(shift))
        else:
            self.outer_scale = np.float32(kernels.powf_(base, shift))

    def forward_args(self):
        return self.inner_scale, self.outer_scale

    def backward_args(self):
        return (self.inner_scale,)
