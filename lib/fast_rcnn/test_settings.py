"""How a detector is tested: the image pyramid it sees and what is done with its outputs
(TestSettings), and the layer that carries those settings in a test net's prototxt, so that the
prototxt and the weights alone reproduce a run's detections (the tools write it into the copy of
the net they test: fast_rcnn.experiment).

The settings layer is a Python layer with no bottoms and no tops:

  layer { name: "test_settings" type: "Python"
          python_param { module: "fast_rcnn.test_settings" layer: "TestSettingsLayer"
                         param_str: "{'scales': [240], 'max_size': 400, ...}" } }

Its param_str keys are TestSettings' fields but has_rpn and proposal_method, which the net's
structure and the test tool decide; a key left out keeps the default (the release's test
settings). A net without the layer is tested with the defaults.
"""
import dataclasses
import functools
from dataclasses import dataclass

import caffe
from nms.dispatch import nms, runtime_gpu
from utils.param_str import layer_name, layer_params, settings_from_params, settings_keys

LAYER_NAME = 'test_settings'
MODULE, LAYER = 'fast_rcnn.test_settings', 'TestSettingsLayer'


@dataclass(frozen=True)
class TestSettings:
    """scales / max_size: the image pyramid (short sides) and the longest side allowed;
    pixel_means: BGR means; has_rpn: the net proposes its own boxes (else RoIs are given);
    proposal_method: where given RoIs come from ('dense': sliding windows made per image);
    svm: use cls_score as linear scores; bbox_reg: apply the box regression; dedup_boxes:
    RoIs on the same cell at this scale are evaluated once (0: off; not with an RPN);
    nms: per-class NMS threshold; use_gpu_nms: NMS on the runtime's GPU in GPU mode;
    score_thresh: per-class score below which detections are dropped before NMS;
    max_per_image: at most this many detections per image over all classes (0 or less: no
    limit)."""
    __test__ = False  # not a pytest test class

    scales: tuple = (600,)
    max_size: int = 1000
    pixel_means: tuple = (102.9801, 115.9465, 122.7717)
    has_rpn: bool = False
    proposal_method: str = 'selective_search'
    svm: bool = False
    bbox_reg: bool = True
    dedup_boxes: float = 1. / 16.
    nms: float = 0.3
    use_gpu_nms: bool = True
    score_thresh: float = 0.05
    max_per_image: int = 100

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def nms_function(self):
        """nms(dets, thresh) on the device these settings ask for."""
        return functools.partial(nms, gpu_id=runtime_gpu() if self.use_gpu_nms else None)


# What the net's structure (has_rpn) and the test tool (proposal_method) decide.
NOT_IN_NET = ('has_rpn', 'proposal_method')
NET_KEYS = tuple(k for k in settings_keys(TestSettings) if k not in NOT_IN_NET)


def of_net(net):
    """The TestSettings a test net carries (its settings layer's, else the defaults), has_rpn
    from its structure: a net that takes no 'rois' input makes its own."""
    layers = [l for l in net.layers if isinstance(l, TestSettingsLayer)]
    settings = layers[0].settings if layers else TestSettings()
    return settings.replace(has_rpn='rois' not in net.inputs)


class TestSettingsLayer(caffe.Layer):
    """Holds a test net's TestSettings (`settings`); computes nothing."""
    __test__ = False
    exact_num_bottom_blobs, exact_num_top_blobs = 0, 0

    def setup(self, bottom, top):
        params = layer_params(self, settings_keys(TestSettings, NET_KEYS))
        try:
            self.settings = settings_from_params(TestSettings, params, layer_name(self))
        except ValueError as e:
            raise caffe.CaffeError(str(e)) from None

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        pass
