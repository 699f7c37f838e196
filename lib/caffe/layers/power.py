"""Power: y = (shift + scale * x)^power (power_param: power 1, scale 1, shift 0). Caffe's special
cases, kept: when power * scale is 0 the input is ignored and y = 1 (power 0) or shift^power,
with a zero gradient; power 1 takes no pow; the gradient of power 2 is formed as
2 * scale * (shift + scale * x); with shift 0 it is power * y / x (NaN or inf at x = 0, as in
Caffe); otherwise power * scale * y / (shift + scale * x)."""
import numpy as np

from ..layer import register
from ._neuron import NeuronLayer, cuda, flat, kernels

_forward = cuda('power_forward')
_fill = cuda('fill')
_backward_constant = cuda('power_backward_constant')
_backward_square = cuda('power_backward_square')
_backward_unshifted = cuda('power_backward_unshifted')
_backward_general = cuda('power_backward_general')


@register('Power')
class PowerLayer(NeuronLayer):
    def setup(self, bottom, top):
        super().setup(bottom, top)
        p = self.layer_param.power_param
        self.power, self.scale, self.shift = (np.float32(p.power), np.float32(p.scale),
                                              np.float32(p.shift))
        self.diff_scale = np.float32(self.power * self.scale)
        self.constant = None
        if self.diff_scale == 0:
            self.constant = np.float32(1) if self.power == 0 else \
                np.float32(kernels.powf_(self.shift, self.power))

    def forward_cpu(self, bottom, top):
        y = flat(top[0].data)
        if self.constant is not None:
            kernels.fill(y, self.constant)
        else:
            kernels.power_forward(flat(bottom[0].cpu_data()), y, self.scale, self.shift,
                                  self.power)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            kernels.power_backward(flat(bottom[0].cpu_data()), flat(top[0].cpu_data()),
                                   flat(top[0].cpu_diff()), flat(bottom[0].diff), self.scale,
                                   self.shift, self.power)

    def forward_gpu(self, bottom, top):
        y = top[0].mutable_gpu_data()
        if self.constant is not None:
            _fill(y.size, y, self.constant)
        else:
            _forward(y.size, bottom[0].gpu_data(), y, self.scale, self.shift, self.power)

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].gpu_diff()
        dx = bottom[0].mutable_gpu_diff()
        n = dx.size
        if self.diff_scale == 0 or self.power == 1:
            _backward_constant(n, dy, dx, self.diff_scale)
        elif self.power == 2:
            _backward_square(n, bottom[0].gpu_data(), dy, dx,
                             np.float32(self.diff_scale * self.scale),
                             np.float32(self.diff_scale * self.shift), self.shift)
        elif self.shift == 0:
            _backward_unshifted(n, bottom[0].gpu_data(), top[0].gpu_data(), dy, dx, self.power)
        else:
            _backward_general(n, bottom[0].gpu_data(), top[0].gpu_data(), dy, dx, self.scale,
                              self.shift, self.diff_scale)

