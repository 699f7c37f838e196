"""fast_rcnn.test_settings: the layer that carries a test net's TestSettings in its prototxt, and
im_detect testing with them."""
import numpy as np
import pytest

import caffe
from fast_rcnn import test as frcnn_test
from fast_rcnn.test_settings import TestSettings, of_net

NET = '''name: "tiny"
input: "data" input_shape { dim: 1 dim: 3 dim: 32 dim: 32 }
input: "rois" input_shape { dim: 1 dim: 5 }
%s
layer { name: "roi_pool" type: "ROIPooling" bottom: "data" bottom: "rois" top: "pool"
        roi_pooling_param { pooled_w: 2 pooled_h: 2 spatial_scale: 0.0625 } }
layer { name: "cls_score" type: "InnerProduct" bottom: "pool" top: "cls_score"
        inner_product_param { num_output: 3 } }
layer { name: "bbox_pred" type: "InnerProduct" bottom: "pool" top: "bbox_pred"
        inner_product_param { num_output: 12 } }
layer { name: "cls_prob" type: "Softmax" bottom: "cls_score" top: "cls_prob" }
'''
LAYER = ('layer { name: "my_settings" type: "Python" python_param { '
         'module: "fast_rcnn.test_settings" layer: "TestSettingsLayer" param_str: "%s" } }')


def net(tmp_path, param_str=None):
    path = tmp_path / 'tiny.prototxt'
    path.write_text(NET % ('' if param_str is None else LAYER % param_str))
    return caffe.Net(str(path), caffe.TEST)


def test_a_net_carries_its_test_settings(tmp_path):
    n = net(tmp_path, "{'scales': [100], 'max_size': 500, 'nms': 0.5, 'score_thresh': 0.1, "
                      "'max_per_image': 7, 'bbox_reg': false}")
    assert of_net(n) == TestSettings(scales=(100,), max_size=500, nms=0.5, score_thresh=0.1,
                                     max_per_image=7, bbox_reg=False, has_rpn=False)
    # im_detect tests with them: the 50 x 80 image scaled to a short side of 100, boxes tiled.
    im = np.random.RandomState(1).randint(0, 255, size=(50, 80, 3)).astype(np.uint8)
    proposals = np.array([[10, 20, 29, 59]], dtype=np.float64)
    _, boxes = frcnn_test.im_detect(n, im, proposals)
    assert n.blobs['data'].shape == (1, 3, 100, 160)
    np.testing.assert_array_equal(boxes, np.tile(proposals, (1, 3)))


def test_without_the_layer_the_release_settings(tmp_path):
    assert of_net(net(tmp_path)) == TestSettings(has_rpn=False)


def test_bad_settings_name_the_layer_and_the_key(tmp_path):
    for param_str, match in (("{'scale': [100]}", 'unknown param_str key.*scale'),
                             ("{'has_rpn': true}", 'unknown param_str key.*has_rpn'),
                             ("{'max_size': 'big'}", "'max_size' should be a number"),
                             ("{'nms': [0.3]}", "'nms' should be a number")):
        with pytest.raises(caffe.CaffeError, match="TestSettingsLayer layer 'my_settings': .*"
                                                   + match):
            net(tmp_path, param_str)
