"""Python layers for tests/detection/test_train_test.py (imported by name from the prototxts)."""
import numpy as np

import caffe
from roi_data_layer.minibatch import MinibatchSettings
from utils.param_str import layer_params, settings_from_params, settings_keys


class FixedRegressionData(caffe.Layer):
    """A stand-in for RoIDataLayer: settings from its param_str (what the trainer reads of a
    data layer) and set_roidb like it, and a fixed regression problem as tops (features,
    targets, inside weights, outside weights)."""

    def setup(self, bottom, top):
        self.settings = settings_from_params(
            MinibatchSettings, layer_params(self, settings_keys(MinibatchSettings)), self.name)
        rng = np.random.RandomState(0)
        self._features = rng.uniform(-1, 1, size=(6, 5)).astype(np.float32)
        self._targets = rng.uniform(-1, 1, size=(6, 8)).astype(np.float32)
        self.roidb = None
        self.reshape(bottom, top)

    def set_roidb(self, roidb):
        self.roidb = roidb

    def reshape(self, bottom, top):
        top[0].reshape(*self._features.shape)
        for t in top[1:]:
            t.reshape(*self._targets.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self._features
        top[1].data[...] = self._targets
        top[2].data[...] = 1
        top[3].data[...] = 1

    def backward(self, top, propagate_down, bottom):
        pass


class ScaledRois(caffe.Layer):
    """A stand-in for the proposal layer: fixed image-pixel boxes times im_info's scale, as RoIs
    on the network input (batch index 0)."""
    BOXES = np.array([[10, 20, 50, 60], [0, 0, 79, 49], [30, 5, 45, 40]], dtype=np.float32)

    def setup(self, bottom, top):
        self.reshape(bottom, top)

    def reshape(self, bottom, top):
        top[0].reshape(self.BOXES.shape[0], 5)

    def forward(self, bottom, top):
        scale = bottom[0].data.reshape(-1)[2]
        top[0].data[:, 0] = 0
        top[0].data[:, 1:] = self.BOXES * scale

    def backward(self, top, propagate_down, bottom):
        pass
