"""Accuracy: the fraction of counted positions whose label is among the top_k scores.

A score tied with the true class's counts as better than it (Caffe's rule). An optional
second top holds the accuracy per class. Nothing to differentiate: backward zeroes the diffs
it is asked for."""
import numpy as np

from .. import gpu
from ..layer import Layer, register
from ._checks import (canonical_axis, count_between, layer_error,
                      reshape_by_shapes)


@register('Accuracy')
class AccuracyLayer(Layer):
    non_differentiable_bottoms = (0, 1)
    exact_num_bottom_blobs = 2
    min_top_blobs, max_top_blobs = 1, 2

    def setup(self, bottom, top):
        p = self.layer_param.accuracy_param
        self.top_k = int(p.top_k)
        self.ignore_label = int(p.ignore_label) if p.HasField('ignore_label') else None

    @reshape_by_shapes
    def reshape(self, bottom, top):
        scores, labels = bottom
        self.axis = canonical_axis(self, scores, self.layer_param.accuracy_param.axis,
                                   'accuracy_param.axis')
        self.outer = count_between(scores.shape, 0, self.axis)
        self.inner = count_between(scores.shape, self.axis + 1, None)
        if self.outer * self.inner != labels.count:
            raise layer_error(self, 'number of labels must match number of predictions: scores '
                              '%s with axis %d need %d labels, got %d'
                              % (scores.shape, self.axis, self.outer * self.inner, labels.count))
        num_classes = scores.shape[self.axis]
        if self.top_k > num_classes:
            raise layer_error(self, 'top_k %d is more than the number of classes %d'
                              % (self.top_k, num_classes))
        top[0].reshape(())
        if len(top) > 1:
            top[1].reshape((num_classes,))

    def forward_cpu(self, bottom, top):
        scores = bottom[0].cpu_data().reshape(self.outer, -1, self.inner)
        num_classes = scores.shape[1]
        labels = bottom[1].cpu_data().reshape(self.outer, self.inner).astype(np.int64)
        valid = np.ones(labels.shape, dtype=bool)
        if self.ignore_label is not None:
            valid = labels != self.ignore_label
        bad = valid & ((labels < 0) | (labels >= num_classes))
        if bad.any():
            raise layer_error(self, 'label %d out of range [0, %d)'
                              % (labels[bad][0], num_classes))
        safe = np.where(valid, labels, 0)
        true_score = np.take_along_axis(scores, safe[:, None, :], axis=1)
        # The true class itself is among the scores >= its own (NaN scores compare false).
        better = (scores >= true_score).sum(axis=1) - 1
        correct = valid & (better < self.top_k)
        count = int(valid.sum())
        accuracy = np.float32(correct.sum()) / np.float32(count) if count else 0
        top[0].data[...] = accuracy
        if len(top) > 1:
            seen = np.bincount(labels[valid], minlength=num_classes).astype(np.float32)
            hits = np.bincount(labels[correct], minlength=num_classes).astype(np.float32)
            top[1].data[...] = np.where(seen > 0, hits / np.maximum(seen, 1), 0)

    def backward_cpu(self, top, propagate_down, bottom):
        # Caffe aborts here; accuracy is piecewise constant, so zero is its gradient.
        for b, down in zip(bottom, propagate_down):
            if down:
                b.diff[...] = 0

    # Accuracy is a host-side statistic (a top-k count over labels that come from the data
    # layers on the host), read by the caller on the host; the scores are copied there.
    def forward_gpu(self, bottom, top):
        self.forward_cpu(bottom, top)

    def backward_gpu(self, top, propagate_down, bottom):
        for b, down in zip(bottom, propagate_down):
            if down:
                gpu.zero(b.mutable_gpu_diff())
