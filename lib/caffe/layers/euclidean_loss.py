"""EuclideanLoss: sum((a - b)^2) / (2 num), for two bottoms of the same count per item (the
shapes may differ). Unlike most losses both bottoms take a gradient, +-(a - b) * weight / num,
and Caffe lets force_backward reach both."""
import numpy as np

from .. import gpu
from ..layer import register
from . import _partial_sums as sums
from ._checks import layer_error
from ._losses import LossLayer, kernels, loss_weight

_partials = gpu.Kernel('losses.cu', 'squared_difference_partials')
_scaled_difference = gpu.Kernel('losses.cu', 'scaled_difference')


@register('EuclideanLoss')
class EuclideanLossLayer(LossLayer):
    non_differentiable_bottoms = ()

    def reshape_loss(self, bottom, top):
        super().reshape_loss(bottom, top)
        if bottom[0].count_from(1) != bottom[1].count_from(1):
            raise layer_error(self, 'inputs must have the same dimension: %s and %s'
                              % (bottom[0].shape, bottom[1].shape))

    def _loss(self, bottom, top, partials):
        dot = np.float32(sums.total(partials))
        top[0].data[...] = dot / np.float32(bottom[0].num) / np.float32(2)

    def _alphas(self, top, propagate_down, bottom):
        """(bottom index, alpha) for the bottoms asked for: their diff is alpha * (a - b)."""
        weight = loss_weight(top)
        return [(i, np.float32(sign * weight) / np.float32(bottom[i].num))
                for i, sign in ((0, 1), (1, -1)) if propagate_down[i]]

    def forward_cpu(self, bottom, top):
        a, b = bottom[0].cpu_data().reshape(-1), bottom[1].cpu_data().reshape(-1)
        partials = np.empty(sums.runs(a.size), np.float64)
        kernels.squared_difference_partials(a, b, sums.CHUNK, partials)
        self._loss(bottom, top, partials)

    def backward_cpu(self, top, propagate_down, bottom):
        a, b = bottom[0].cpu_data().reshape(-1), bottom[1].cpu_data().reshape(-1)
        for i, alpha in self._alphas(top, propagate_down, bottom):
            kernels.scaled_difference(a, b, max(a.size, 1), bottom[i].diff.reshape(-1),
                                      alpha=alpha)

    def forward_gpu(self, bottom, top):
        a, b = bottom[0].gpu_data(), bottom[1].gpu_data()
        runs = sums.runs(a.size)
        partials = gpu.empty(runs, np.float64)
        _partials(runs, a.size, sums.CHUNK, a, b, partials)
        self._loss(bottom, top, partials)

    def backward_gpu(self, top, propagate_down, bottom):
        a, b = bottom[0].gpu_data(), bottom[1].gpu_data()
        for i, alpha in self._alphas(top, propagate_down, bottom):
            _scaled_difference(a.size, max(a.size, 1), a, b, None, alpha,
                               bottom[i].mutable_gpu_diff())
