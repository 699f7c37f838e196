"""Python layers written the way py-faster-rcnn's are (against the caffe-fast-rcnn fork's
pycaffe): settings from `yaml.safe_load(self.param_str_)`, limits from a module-level easydict
`cfg` looked up by `cfg[str(self.phase)]`, behaviour chosen by `self.phase == caffe.TRAIN`.
Our own code; the tests in test_python_layer_api.py run them."""
import numpy as np
import yaml
from easydict import EasyDict

import caffe

# The release keeps train and test settings side by side under the phase names.
cfg = EasyDict({'TRAIN': {'TOP_N': 4, 'MIN_SCORE': 0.5}, 'TEST': {'TOP_N': 2, 'MIN_SCORE': 0.0}})


class TopRowsLayer(caffe.Layer):
    """The TOP_N highest-scoring rows of bottom 0 whose score is at least MIN_SCORE, multiplied by
    the YAML 'scale'; in TRAIN a second top counts the rows kept."""

    def setup(self, bottom, top):
        layer_params = yaml.safe_load(self.param_str_)
        self._scale = layer_params['scale']
        cfg_key = str(self.phase)  # either 'TRAIN' or 'TEST'
        self._top_n = cfg[cfg_key].TOP_N
        self._min_score = cfg[cfg_key].MIN_SCORE
        top[0].reshape(1, bottom[0].data.shape[1])
        if self.phase == caffe.TRAIN:
            top[1].reshape(1)

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        rows = bottom[0].data
        order = np.argsort(-rows[:, 0], kind='stable')[:self._top_n]
        kept = rows[order][rows[order, 0] >= self._min_score] * self._scale
        top[0].reshape(*kept.shape)
        top[0].data[...] = kept
        if self.phase == caffe.TRAIN:
            top[1].data[...] = len(kept)

    def backward(self, top, propagate_down, bottom):
        pass


class PhaseKeysLayer(caffe.Layer):
    """Writes what its phase selects through every kind of lookup scripts use: a dict keyed by
    caffe.TRAIN/TEST, one keyed by 0/1, str() into cfg, and '%d'."""

    def setup(self, bottom, top):
        by_phase = {caffe.TRAIN: 10.0, caffe.TEST: 20.0}
        by_int = {0: 100.0, 1: 200.0}
        self._values = [by_phase[self.phase], by_int[self.phase],
                        float(cfg[str(self.phase)].TOP_N), float('%d' % self.phase)]
        top[0].reshape(len(self._values))

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        top[0].data[...] = self._values

    def backward(self, top, propagate_down, bottom):
        pass
