"""Log: y = log_base(shift + scale * x) (log_param: base default -1, which means e; scale 1;
shift 0), computed as Caffe does: log(scale * x + shift) times base_scale = 1 / log(base).
The gradient is dy * (scale * x + shift)^-1 * scale / log(base). OpenCV's importer ignores
base, scale and shift (it takes the natural log of x); Caffe's formula is the one here."""
import math

import numpy as np

from ..layer import register
from ._checks import layer_error
from ._neuron import NeuronLayer, cuda, flat, kernels
from .exp import log_of_base

_forward = cuda('log_forward')
_backward = cuda('log_backward')


@register('Log')
class LogLayer(NeuronLayer):
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

    def forward_cpu(self, bottom, top):
        kernels.log_forward(flat(bottom[0].cpu_data()), flat(top[0].data), self.scale,
                            self.shift, self.base_scale)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            kernels.log_backward(flat(bottom[0].cpu_data()), flat(top[0].cpu_diff()),
                                 flat(bottom[0].diff), self.scale, self.shift,
                                 self.backward_num_scale)

    def forward_gpu(self, bottom, top):
        x = bottom[0].gpu_data()
        _forward(x.size, x, top[0].mutable_gpu_data(), self.scale, self.shift, self.shift != 0,
                 self.base_scale)

    def backward_gpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            x = bottom[0].gpu_data()
            _backward(x.size, x, top[0].gpu_diff(), bottom[0].mutable_gpu_diff(),
                      self.scale, self.shift, self.shift != 0, self.backward_num_scale)
