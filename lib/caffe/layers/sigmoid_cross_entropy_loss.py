"""SigmoidCrossEntropyLoss: the cross-entropy of sigmoid(x) against targets t in [0, 1] of the
same count, -sum [t log s + (1 - t) log(1 - s)], computed in Caffe's stable form
x (t - (x >= 0)) - log(1 + exp(x - 2 x (x >= 0))); the gradient is (sigmoid(x) - t) times the
loss weight over the normalizer. Elements whose target, cast to int, is loss_param.ignore_label
count for nothing.

Normalization: loss_param.normalization when given, else the legacy normalize (true: VALID,
false: BATCH_SIZE), else BATCH_SIZE (the batch size, bottom[0]'s first axis): Caffe's
SigmoidCrossEntropyLossLayer defaults to BATCH_SIZE, not to the field's VALID, which
SoftmaxWithLoss uses."""
import numpy as np

from .. import gpu
from ..layer import register
from . import _partial_sums as sums
from ._checks import layer_error
from ._losses import (LOSS, LossLayer, ignore_label, kernels, loss_weight, normalization_mode,
                      normalizer)

_partials = gpu.Kernel('losses.cu', 'sigmoid_ce_partials')
_backward = gpu.Kernel('losses.cu', 'sigmoid_ce_backward')


@register('SigmoidCrossEntropyLoss')
class SigmoidCrossEntropyLossLayer(LossLayer):
    def setup(self, bottom, top):
        super().setup(bottom, top)
        self.ignore_label = ignore_label(self)
        self.normalization = normalization_mode(self, default=LOSS.BATCH_SIZE)
        self.normalizer = np.float32(1)

    def reshape_loss(self, bottom, top):
        super().reshape_loss(bottom, top)
        if bottom[0].count != bottom[1].count:
            raise layer_error(self, 'inputs must have the same count: %s and %s'
                              % (bottom[0].shape, bottom[1].shape))
        self.outer, self.inner = bottom[0].shape[0], bottom[0].count_from(1)

    def _ignore(self):
        return self.ignore_label is not None, self.ignore_label or 0

    def _loss(self, top, partials, counts):
        valid = int(np.sum(counts))
        self.normalizer = normalizer(self, self.normalization, self.outer, self.inner, valid)
        top[0].data[...] = np.float32(-sums.total(partials)) / self.normalizer

    def forward_cpu(self, bottom, top):
        x, t = bottom[0].cpu_data().reshape(-1), bottom[1].cpu_data().reshape(-1)
        runs = sums.runs(x.size)
        partials, counts = np.empty(runs, np.float64), np.empty(runs, np.int64)
        kernels.sigmoid_ce_partials(x, t, *self._ignore(), sums.CHUNK, partials, counts)
        self._loss(top, partials, counts)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            kernels.sigmoid_ce_backward(bottom[0].cpu_data().reshape(-1),
                                        bottom[1].cpu_data().reshape(-1), *self._ignore(),
                                        loss_weight(top) / self.normalizer,
                                        bottom[0].diff.reshape(-1))

    def forward_gpu(self, bottom, top):
        x = bottom[0].gpu_data()
        runs = sums.runs(x.size)
        partials, counts = gpu.empty(runs, np.float64), gpu.empty(runs, np.int64)
        _partials(runs, x.size, sums.CHUNK, x, bottom[1].gpu_data(), *self._ignore(), partials,
                  counts)
        self._loss(top, partials, counts.get())

    def backward_gpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            x = bottom[0].gpu_data()
            _backward(x.size, x, bottom[1].gpu_data(), *self._ignore(),
                      loss_weight(top) / self.normalizer, bottom[0].mutable_gpu_diff())
