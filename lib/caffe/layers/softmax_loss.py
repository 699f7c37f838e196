"""SoftmaxWithLoss: mean (by the normalization mode) of -log softmax(scores)[label].

Bottoms: scores and integer-valued labels, one label per position outside the softmax axis.
Tops: the loss (a scalar blob) and optionally the probabilities."""
import numpy as np

from .. import gpu
from ..layer import Layer, register
from ._checks import (canonical_axis, count_between, layer_error,
                      reshape_by_shapes)
from ._losses import ignore_label, normalization_mode, normalizer
from .softmax import softmax, softmax_gpu

_loss_forward = gpu.Kernel('softmax.cu', 'softmax_loss_forward')
_loss_backward = gpu.Kernel('softmax.cu', 'softmax_loss_backward')

FLT_MIN = np.finfo(np.float32).tiny


@register('SoftmaxWithLoss')
class SoftmaxWithLossLayer(Layer):
    default_loss_weight = 1.0
    non_differentiable_bottoms = (1,)
    exact_num_bottom_blobs = 2
    min_top_blobs, max_top_blobs = 1, 2
    auto_top_blobs = True   # a LossLayer in Caffe

    def setup(self, bottom, top):
        self.ignore_label = ignore_label(self)
        # The legacy boolean wins only when the newer enum is absent, as in Caffe.
        self.normalization = normalization_mode(self)
        self.prob = None

    @reshape_by_shapes
    def reshape(self, bottom, top):
        scores, labels = bottom[0], bottom[1]
        if scores.num != labels.num:
            raise layer_error(self, 'scores %s and labels %s differ in their first dimension'
                              % (scores.shape, labels.shape))
        self.axis = canonical_axis(self, scores, self.layer_param.softmax_param.axis,
                                   'softmax_param.axis')
        self.outer = count_between(scores.shape, 0, self.axis)
        self.inner = count_between(scores.shape, self.axis + 1, None)
        if self.outer * self.inner != labels.count:
            raise layer_error(self, 'number of labels must match number of predictions: scores '
                              '%s with softmax axis %d need %d labels, got %d (shape %s)'
                              % (scores.shape, self.axis, self.outer * self.inner,
                                 labels.count, labels.shape))
        top[0].reshape(())
        if len(top) > 1:
            top[1].reshape_like(scores)

    def _labels(self, bottom):
        """Labels as ints (C truncation), the mask of counted ones; checks the range."""
        labels = bottom[1].cpu_data().reshape(self.outer, self.inner).astype(np.int64)
        valid = np.ones(labels.shape, dtype=bool)
        if self.ignore_label is not None:
            valid = labels != self.ignore_label
        channels = bottom[0].shape[self.axis]
        bad = valid & ((labels < 0) | (labels >= channels))
        if bad.any():
            raise layer_error(self, 'label %d out of range [0, %d) (ignore_label %s)'
                              % (labels[bad][0], channels, self.ignore_label))
        return labels, valid

    def _normalizer(self, valid_count):
        return normalizer(self, self.normalization, self.outer, self.inner, valid_count)

    def forward_cpu(self, bottom, top):
        scores = bottom[0].cpu_data()
        if self.prob is None or self.prob.shape != scores.shape:
            self.prob = np.empty_like(scores)
        softmax(scores, self.axis, out=self.prob)
        labels, valid = self._labels(bottom)
        prob = self.prob.reshape(self.outer, -1, self.inner)
        picked = np.take_along_axis(prob, np.where(valid, labels, 0)[:, None, :], axis=1)[:, 0]
        loss = -np.log(np.maximum(picked[valid], FLT_MIN)).sum(dtype=np.float32)
        top[0].data[...] = np.float32(loss) / self._normalizer(int(valid.sum()))
        if len(top) > 1:
            top[1].data[...] = self.prob

    def backward_cpu(self, top, propagate_down, bottom):
        if len(propagate_down) > 1 and propagate_down[1]:
            bottom[1].diff[...] = 0
        if not propagate_down[0]:
            return
        labels, valid = self._labels(bottom)
        grad = bottom[0].diff.reshape(self.outer, -1, self.inner)
        grad[...] = self.prob.reshape(grad.shape)
        i, j = np.nonzero(valid)
        grad[i, labels[i, j], j] -= 1
        grad *= valid[:, None, :]
        grad *= np.float32(top[0].cpu_diff().reshape(-1)[0]) / self._normalizer(len(i))

    # GPU: softmax, per-position losses and the gradient run on the device. The labels are
    # checked on the host (they come from the data layers there), and the per-position losses
    # are summed there with the CPU path's numpy sum, so both paths give the same loss.
    def _ignore_args(self):
        return (self.ignore_label is not None,
                self.ignore_label if self.ignore_label is not None else 0)

    def forward_gpu(self, bottom, top):
        scores = bottom[0].gpu_data()
        if getattr(self, 'prob_gpu', None) is None or self.prob_gpu.shape != scores.shape:
            self.prob_gpu = gpu.empty(scores.shape)
        softmax_gpu(scores, self.prob_gpu, self.axis)
        _, valid = self._labels(bottom)
        losses = gpu.empty((self.outer, self.inner))
        _loss_forward(losses.size, bottom[0].shape[self.axis], self.inner, self.prob_gpu,
                      bottom[1].gpu_data(), *self._ignore_args(), losses)
        loss = losses.get()[valid].sum(dtype=np.float32)
        top[0].data[...] = np.float32(loss) / self._normalizer(int(valid.sum()))
        if len(top) > 1:
            gpu.copy(top[1].mutable_gpu_data(), self.prob_gpu)

    def backward_gpu(self, top, propagate_down, bottom):
        if len(propagate_down) > 1 and propagate_down[1]:
            gpu.zero(bottom[1].mutable_gpu_diff())
        if not propagate_down[0]:
            return
        _, valid = self._labels(bottom)
        scale = np.float32(top[0].cpu_diff().reshape(-1)[0]) / self._normalizer(int(valid.sum()))
        dx = bottom[0].mutable_gpu_diff()
        _loss_backward(dx.size, bottom[0].shape[self.axis], self.inner, self.prob_gpu,
                       bottom[1].gpu_data(), *self._ignore_args(), scale, dx)
