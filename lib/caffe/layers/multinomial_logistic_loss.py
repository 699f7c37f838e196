"""MultinomialLogisticLoss: -sum over items of log(p[label]) / N, for probabilities (N, D...)
(e.g. a Softmax's output) and one label per item (N, 1, 1, 1). Probabilities are clipped to
1e-20 first (Caffe's kLOG_THRESHOLD), in the loss and in its gradient -weight / (N p[label]),
which is 0 for every other entry."""
import numpy as np

from .. import gpu
from ..layer import register
from ._checks import layer_error
from ._losses import LossLayer, check_labels, kernels, loss_weight

_pick = gpu.Kernel('losses.cu', 'pick_by_label')
_backward = gpu.Kernel('losses.cu', 'multinomial_logistic_backward')


@register('MultinomialLogisticLoss')
class MultinomialLogisticLossLayer(LossLayer):
    def reshape_loss(self, bottom, top):
        super().reshape_loss(bottom, top)
        labels = bottom[1]
        if labels.channels != 1 or labels.height != 1 or labels.width != 1:
            raise layer_error(self, 'labels must be (N, 1, 1, 1) (one per item), got %s'
                              % (labels.shape,))
        self.num = bottom[0].num
        self.dim = bottom[0].count // max(self.num, 1)

    def _labels(self, bottom):
        labels = bottom[1].cpu_data().reshape(-1)
        check_labels(self, labels, self.dim)
        return labels

    def _loss(self, top, picked):
        total = -kernels.clipped_log_sum(picked)
        top[0].data[...] = np.float32(total) / np.float32(self.num)

    def _scale(self, top):
        return -loss_weight(top) / np.float32(self.num)

    def forward_cpu(self, bottom, top):
        labels = self._labels(bottom).astype(np.int64)
        p = bottom[0].cpu_data().reshape(self.num, self.dim)
        self._loss(top, np.ascontiguousarray(p[np.arange(self.num), labels]))

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        rows, labels = np.arange(self.num), self._labels(bottom).astype(np.int64)
        picked = np.ascontiguousarray(bottom[0].cpu_data().reshape(self.num, self.dim)[rows,
                                                                                       labels])
        kernels.clip_probabilities(picked)
        dx = bottom[0].diff.reshape(self.num, self.dim)
        dx[...] = 0
        dx[rows, labels] = self._scale(top) / picked

    def forward_gpu(self, bottom, top):
        self._labels(bottom)
        picked = gpu.empty(self.num)
        _pick(self.num, self.dim, bottom[0].gpu_data(), bottom[1].gpu_data(), picked)
        self._loss(top, picked.get())

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        self._labels(bottom)
        dx = bottom[0].mutable_gpu_diff()
        gpu.zero(dx)
        _backward(self.num, self.dim, bottom[0].gpu_data(), bottom[1].gpu_data(),
                  self._scale(top), dx)
