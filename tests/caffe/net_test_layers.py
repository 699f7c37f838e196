"""Python layers used by the Net and Solver tests (imported by name from prototxt text)."""
import numpy as np
import yaml

import caffe


class FixedData(caffe.Layer):
    """Emits batches from param_str {'batches': [[...], ...], 'targets': [[...], ...]} in turn."""

    def setup(self, bottom, top):
        p = yaml.safe_load(self.param_str)
        self.batches = [np.asarray(b, dtype=np.float32) for b in p['batches']]
        self.targets = [np.asarray(t, dtype=np.float32) for t in p['targets']]
        self.k = 0

    def reshape(self, bottom, top):
        top[0].reshape(*self.batches[0].shape)
        top[1].reshape(*self.targets[0].shape)

    def forward(self, bottom, top):
        i = self.k % len(self.batches)
        top[0].data[...] = self.batches[i]
        top[1].data[...] = self.targets[i]
        self.k += 1

    def backward(self, top, propagate_down, bottom):
        pass


class HalfSquaredError(caffe.Layer):
    """loss = sum((a - b)^2) / (2 num), the Euclidean loss."""

    def reshape(self, bottom, top):
        top[0].reshape(1)

    def forward(self, bottom, top):
        self.d = bottom[0].data - bottom[1].data
        top[0].data[...] = np.sum(self.d ** 2) / (2.0 * bottom[0].shape[0])

    def backward(self, top, propagate_down, bottom):
        scale = top[0].diff[0] / bottom[0].shape[0]
        if propagate_down[0]:
            bottom[0].diff[...] = scale * self.d
        if propagate_down[1]:
            bottom[1].diff[...] = -scale * self.d


class Scale(caffe.Layer):
    """top = factor * bottom, factor from param_str; counts its backward calls."""
    backward_calls = 0

    def setup(self, bottom, top):
        self.factor = float(self.param_str or 1.0)
        self.seen_phase = self.phase

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.factor * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        Scale.backward_calls += 1
        if propagate_down[0]:
            bottom[0].diff[...] = self.factor * top[0].diff


class Sum(caffe.Layer):
    """A scalar: the sum of the bottom."""

    def reshape(self, bottom, top):
        top[0].reshape(1)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data.sum()

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff[0]
