"""Silence: consumes bottoms nobody else reads, so the Net does not report them as outputs."""
from .. import gpu
from ..layer import Layer, register
from ._checks import AT_LEAST_ONE, check_count


@register('Silence')
class SilenceLayer(Layer):
    def setup(self, bottom, top):
        check_count(self, 'bottom', bottom, AT_LEAST_ONE)
        check_count(self, 'top', top, 0)

    def forward_cpu(self, bottom, top):
        pass

    def backward_cpu(self, top, propagate_down, bottom):
        for b, down in zip(bottom, propagate_down):
            if down:
                b.diff[...] = 0

    def forward_gpu(self, bottom, top):
        pass

    def backward_gpu(self, top, propagate_down, bottom):
        for b, down in zip(bottom, propagate_down):
            if down:
                gpu.zero(b.mutable_gpu_diff())
