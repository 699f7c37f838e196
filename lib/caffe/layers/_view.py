"""The base of layers whose top is a view of the bottom (Flatten, Reshape): reshape sets the
top's shape and shares the bottom's data and diff, so the passes have nothing to compute."""
from ..layer import Layer


class ViewLayer(Layer):
    def forward_cpu(self, bottom, top):
        pass

    def backward_cpu(self, top, propagate_down, bottom):
        pass

    # The top shares the bottom's buffers, device copies included.
    def forward_gpu(self, bottom, top):
        pass

    def backward_gpu(self, top, propagate_down, bottom):
        pass
