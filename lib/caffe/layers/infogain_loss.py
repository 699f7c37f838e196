"""InfogainLoss: a softmax over infogain_loss_param.axis (default 1) of the scores, then
-sum over positions of sum_l H[label, l] * log(max(p_l, 1e-20)), normalized as
loss_param.normalization says (default VALID; Caffe refuses the legacy `normalize`).
H (K x K, K the number of classes) is the third bottom when there is one (it may change every
pass), else the BlobProto in the binary file infogain_loss_param.source, read at set-up. With
H the identity this is SoftmaxWithLoss.

The gradient is p_l * sum_k H[label, k] - H[label, l], times the loss weight over the
normalizer, 0 at ignored positions (loss_param.ignore_label). Neither the labels nor H take a
gradient (Caffe aborts when asked for one; here they get zero diffs). An optional second top is
the softmax output."""
import numpy as np

from .. import gpu
from ..common import CaffeError
from ..io import blob_values, read_binary
from ..layer import register
from ..proto import caffe_pb2
from . import _partial_sums as sums
from ._checks import canonical_axis, count_between, layer_error
from ._losses import (LossLayer, check_labels, ignore_label, kernels, loss_weight,
                      normalization_mode, normalizer)
from .softmax import softmax, softmax_gpu

_partials = gpu.Kernel('losses.cu', 'infogain_partials')
_backward = gpu.Kernel('losses.cu', 'infogain_backward')


def row_sums(H):
    """sum over each row of H, added in float in order (Caffe's sum_rows_of_H)."""
    return np.ascontiguousarray(np.add.accumulate(H, axis=1, dtype=np.float32)[:, -1])


@register('InfogainLoss')
class InfogainLossLayer(LossLayer):
    exact_num_bottom_blobs = None
    min_bottom_blobs, max_bottom_blobs = 2, 3
    exact_num_top_blobs = None
    min_top_blobs, max_top_blobs = 1, 2
    non_differentiable_bottoms = (1, 2)

    def setup(self, bottom, top):
        super().setup(bottom, top)
        if self.layer_param.loss_param.HasField('normalize'):
            raise layer_error(self, 'loss_param.normalize is deprecated; use '
                              'loss_param.normalization (Caffe refuses it for InfogainLoss)')
        self.normalization = normalization_mode(self)
        self.ignore_label = ignore_label(self)
        p = self.layer_param.infogain_loss_param
        self.H = self.H_gpu = None
        if len(bottom) < 3:
            if not p.source:
                raise layer_error(self, 'infogain_loss_param.source (the binary BlobProto file '
                                  'of H) is required without a third bottom')
            try:
                proto = read_binary(p.source, caffe_pb2.BlobProto(), 'infogain matrix file')
                self.H = np.ascontiguousarray(blob_values(proto).reshape(-1))
            except CaffeError as e:
                raise layer_error(self, 'infogain_loss_param.source: %s' % e) from None
        self.prob = self.prob_gpu = None
        self.valid = 0

    def reshape_loss(self, bottom, top):
        super().reshape_loss(bottom, top)
        scores, labels = bottom[0], bottom[1]
        self.axis = canonical_axis(self, scores, self.layer_param.infogain_loss_param.axis,
                                   'infogain_loss_param.axis')
        self.outer = count_between(scores.shape, 0, self.axis)
        self.inner = count_between(scores.shape, self.axis + 1, None)
        self.K = scores.shape[self.axis]
        if self.outer * self.inner != labels.count:
            raise layer_error(self, 'number of labels must match number of predictions: scores '
                              '%s with axis %d need %d labels (integers in [0, %d)), got %d'
                              % (scores.shape, self.axis, self.outer * self.inner, self.K,
                                 labels.count))
        h_count = self.H.size if self.H is not None else bottom[2].count
        if h_count != self.K * self.K:
            raise layer_error(self, 'H must be %d x %d (%d values), got %d'
                              % (self.K, self.K, self.K * self.K, h_count))
        if len(top) > 1:
            top[1].reshape_like(scores)

    def _H(self, bottom):
        return self.H if self.H is not None else bottom[2].cpu_data().reshape(-1)

    def _labels(self, bottom):
        labels = bottom[1].cpu_data().reshape(-1)
        check_labels(self, labels, self.K, self.ignore_label)
        return labels

    def _ignore(self):
        return self.ignore_label is not None, self.ignore_label or 0

    def _geometry(self):
        return self.K, self.inner

    def _loss(self, top, partials, counts):
        self.valid = int(np.sum(counts))
        top[0].data[...] = np.float32(-sums.total(partials)) / self._normalizer()

    def _normalizer(self):
        return normalizer(self, self.normalization, self.outer, self.inner, self.valid)

    def _scale(self, top):
        return loss_weight(top) / self._normalizer()

    # CPU ---------------------------------------------------------------------------------------
    def forward_cpu(self, bottom, top):
        scores = bottom[0].cpu_data()
        if self.prob is None or self.prob.shape != scores.shape:
            self.prob = np.empty_like(scores)
        softmax(scores, self.axis, out=self.prob)
        labels = self._labels(bottom)
        runs = sums.runs(labels.size)
        partials, counts = np.empty(runs, np.float64), np.empty(runs, np.int64)
        kernels.infogain_partials(self.prob.reshape(-1), labels, self._H(bottom),
                                  *self._geometry(), *self._ignore(), sums.CHUNK, partials,
                                  counts)
        self._loss(top, partials, counts)
        if len(top) > 1:
            top[1].data[...] = self.prob

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        H = self._H(bottom)
        kernels.infogain_backward(self.prob.reshape(-1), self._labels(bottom), H,
                                  row_sums(H.reshape(self.K, self.K)), *self._geometry(),
                                  *self._ignore(), self._scale(top), bottom[0].diff.reshape(-1))

    # GPU ---------------------------------------------------------------------------------------
    def _H_gpu(self, bottom):
        if self.H is None:
            return bottom[2].gpu_data()
        if self.H_gpu is None:
            self.H_gpu = gpu.to_device(self.H)
        return self.H_gpu

    def forward_gpu(self, bottom, top):
        scores = bottom[0].gpu_data()
        if self.prob_gpu is None or self.prob_gpu.shape != scores.shape:
            self.prob_gpu = gpu.empty(scores.shape)
        softmax_gpu(scores, self.prob_gpu, self.axis)
        labels = self._labels(bottom)
        runs = sums.runs(labels.size)
        partials, counts = gpu.empty(runs, np.float64), gpu.empty(runs, np.int64)
        _partials(runs, labels.size, sums.CHUNK, self.prob_gpu, bottom[1].gpu_data(),
                  self._H_gpu(bottom), *self._geometry(), *self._ignore(), partials, counts)
        self._loss(top, partials, counts.get())
        if len(top) > 1:
            gpu.copy(top[1].mutable_gpu_data(), self.prob_gpu)

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        self._labels(bottom)
        H = self._H(bottom)
        sums_of_rows = gpu.to_device(row_sums(H.reshape(self.K, self.K)))
        dx = bottom[0].mutable_gpu_diff()
        _backward(dx.size, self.prob_gpu, bottom[1].gpu_data(), self._H_gpu(bottom),
                  sums_of_rows, *self._geometry(), *self._ignore(), self._scale(top), dx)
