"""HingeLoss: one-vs-all hinge loss for scores (N, D...) with one label per item:
t_ij = max(0, 1 + delta_ij * x_ij), delta = -1 at the true label and +1 elsewhere; the loss is
sum t / N (hinge_loss_param.norm L1, the default) or sum t^2 / N (L2). The gradient is
delta * sign(t) / N (L1) or 2 delta t / N (L2), times the loss weight. (Caffe keeps t in the
bottom's diff between forward and backward; this layer recomputes it in backward.)"""
import numpy as np

from .. import gpu
from ..layer import register
from ..proto import caffe_pb2
from . import _partial_sums as sums
from ._checks import layer_error
from ._losses import LossLayer, check_labels, kernels, loss_weight

_partials = gpu.Kernel('losses.cu', 'hinge_partials')
_backward = gpu.Kernel('losses.cu', 'hinge_backward')
_NORM = caffe_pb2.HingeLossParameter


@register('HingeLoss')
class HingeLossLayer(LossLayer):
    def setup(self, bottom, top):
        super().setup(bottom, top)
        norm = self.layer_param.hinge_loss_param.norm
        if norm not in (_NORM.L1, _NORM.L2):
            raise layer_error(self, 'unknown hinge_loss_param.norm %d (L1 or L2)' % norm)
        self.squared = norm == _NORM.L2

    def reshape_loss(self, bottom, top):
        super().reshape_loss(bottom, top)
        self.num = bottom[0].num
        self.dim = bottom[0].count // max(self.num, 1)
        if bottom[1].count != self.num:
            raise layer_error(self, 'needs one label per item: %d scores rows, labels %s'
                              % (self.num, bottom[1].shape))

    def _labels(self, bottom):
        labels = bottom[1].cpu_data().reshape(-1)
        check_labels(self, labels, self.dim)
        return labels

    def _scale(self, top):
        weight = loss_weight(top)
        if self.squared:
            weight = weight * np.float32(2)
        return weight / np.float32(self.num)

    def forward_cpu(self, bottom, top):
        x = bottom[0].cpu_data().reshape(-1)
        partials = np.empty(sums.runs(x.size), np.float64)
        kernels.hinge_partials(x, self._labels(bottom), self.dim, self.squared, sums.CHUNK,
                               partials)
        top[0].data[...] = np.float32(sums.total(partials)) / np.float32(self.num)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            kernels.hinge_backward(bottom[0].cpu_data().reshape(-1), self._labels(bottom),
                                   self.dim, self.squared, self._scale(top),
                                   bottom[0].diff.reshape(-1))

    def forward_gpu(self, bottom, top):
        self._labels(bottom)
        x = bottom[0].gpu_data()
        runs = sums.runs(x.size)
        partials = gpu.empty(runs, np.float64)
        _partials(runs, x.size, sums.CHUNK, x, bottom[1].gpu_data(), self.dim, self.squared,
                  partials)
        top[0].data[...] = np.float32(sums.total(partials)) / np.float32(self.num)

    def backward_gpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            self._labels(bottom)
            x = bottom[0].gpu_data()
            _backward(x.size, x, bottom[1].gpu_data(), self.dim, self.squared,
                      self._scale(top), bottom[0].mutable_gpu_diff())
