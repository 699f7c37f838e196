"""Clip: y = max(min, min(x, max)) with clip_param's required min and max; the gradient passes
where min <= x <= max, ends included. As on Caffe's CPU path, a NaN input gives min (Caffe's GPU
kernel, fmaxf/fminf, gives max; both paths here follow the CPU)."""
import numpy as np

from ..layer import register
from ._checks import layer_error
from ._neuron import NeuronLayer, cuda, flat, kernels

_forward = cuda('clip_forward')
_backward = cuda('clip_backward')


@register('Clip')
class ClipLayer(NeuronLayer):
    def setup(self, bottom, top):
        super().setup(bottom, top)
        p = self.layer_param.clip_param
        # Both are `required` in caffe.proto: Caffe refuses a net without them when it parses it.
        missing = [f for f in ('min', 'max') if not p.HasField(f)]
        if missing:
            raise layer_error(self, 'clip_param.%s is required' % ' and clip_param.'.join(missing))
        self.lo, self.hi = np.float32(p.min), np.float32(p.max)

    def forward_cpu(self, bottom, top):
        kernels.clip_forward(flat(bottom[0].cpu_data()), flat(top[0].data), self.lo, self.hi)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            kernels.clip_backward(flat(bottom[0].cpu_data()), flat(top[0].cpu_diff()),
                                  flat(bottom[0].diff), self.lo, self.hi)

    def forward_gpu(self, bottom, top):
        x = bottom[0].gpu_data()
        _forward(x.size, x, top[0].mutable_gpu_data(), self.lo, self.hi)

    def backward_gpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            x = bottom[0].gpu_data()
            _backward(x.size, x, top[0].gpu_diff(), bottom[0].mutable_gpu_diff(), self.lo,
                      self.hi)
