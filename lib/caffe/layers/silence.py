"""Silence: consumes bottoms nobody else reads, so the Net does not report them as outputs."""
from .. import gpu
from ..layer import Layer, register


@register('Silence')
class SilenceLayer(Layer):
    min_bottom_blobs = 1
    exact_num_top_blobs = 0

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
