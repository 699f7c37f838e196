"""AnchorTargetLayer: the labelling rule comes from its param_str (the core rule itself is
tested in tests/core/test_anchor_targets.py); the tops are the core function's, image by image."""
import numpy as np
import pytest

import caffe
from caffe.testing import build_layer, layer_param
from core.anchor_targets import AnchorLabelling, anchor_targets
from core.anchors import generate_anchors, shifted_anchors

STRIDE = 16


def run(param_str, gt_boxes, feat_hw, im_hw, num_anchors=9):
    """Runs the layer on a (1, 2A, H, W) score map and returns its four output arrays."""
    param = layer_param('name: "rpn-data" type: "Python" python_param { '
                        'module: "rpn.anchor_target_layer" layer: "AnchorTargetLayer" }')
    param.python_param.param_str = param_str
    height, width = feat_hw
    gt = np.asarray(gt_boxes, dtype=np.float32).reshape(-1, 5)
    arrays = [np.zeros((1, 2 * num_anchors, height, width)), gt,
              np.array([[im_hw[0], im_hw[1], 1.0]]), np.zeros((1, 3, im_hw[0], im_hw[1]))]
    layer, bottom, top = build_layer(param, arrays, num_tops=4)
    layer.forward(bottom, top)
    return [t.data.copy() for t in top]


def core_tops(rule, gt, feat_hw, im_hw, base=None):
    """The core function's arrays laid out as the layer's tops (1, A*H, W) / (1, 4A, H, W)."""
    base = generate_anchors() if base is None else base
    height, width = feat_hw
    a = len(base)
    out = anchor_targets(shifted_anchors(base, height, width, STRIDE),
                         np.asarray(gt, dtype=np.float64).reshape(-1, 5), im_hw[0], im_hw[1],
                         rule)
    labels = out[0].reshape(height, width, a).transpose(2, 0, 1).reshape(1, 1, a * height, width)
    return [labels] + [v.reshape(height, width, 4 * a).transpose(2, 0, 1)[None]
                       for v in out[1:]]


def test_param_str_gives_the_rule_and_the_anchors():
    # Every field of the rule, and other anchors, from the param_str: the tops are the core
    # function's under that rule (a batch larger than the candidates: no random draw).
    rule = AnchorLabelling(positive_iou=0.6, negative_iou=0.2, clobber_positives=True,
                           batch_size=100000, fg_fraction=1.0, positive_weight=0.3,
                           inside_weights=(1.0, 0.5, 1.0, 0.5), allowed_border=8)
    param_str = ("{'feat_stride': 16, 'scales': [4, 8], 'ratios': [0.5, 2], "
                 "'positive_iou': 0.6, 'negative_iou': 0.2, 'clobber_positives': true, "
                 "'batch_size': 100000, 'fg_fraction': 1.0, 'positive_weight': 0.3, "
                 "'inside_weights': [1, 0.5, 1, 0.5], 'allowed_border': 8}")
    gt = [[20, 30, 90, 110, 1], [100, 40, 160, 150, 2], [150, 120, 169, 139, 3]]
    got = run(param_str, gt, (10, 12), (160, 192), num_anchors=4)
    expected = core_tops(rule, gt, (10, 12), (160, 192), generate_anchors(16, [0.5, 2], [4, 8]))
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)
    # The default rule labels these anchors otherwise: the param_str was read.
    default = core_tops(AnchorLabelling(batch_size=100000, fg_fraction=1.0), gt, (10, 12),
                        (160, 192), generate_anchors(16, [0.5, 2], [4, 8]))
    assert (default[0] != expected[0]).any()


def test_default_rule_is_the_papers():
    gt = [[100, 100, 300, 250, 1], [400, 200, 700, 500, 2]]
    np.random.seed(5)
    got = run("'feat_stride': 16", gt, (38, 50), (600, 800))
    np.random.seed(5)
    expected = core_tops(AnchorLabelling(), gt, (38, 50), (600, 800))
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)
    assert (got[0] == 1).sum() + (got[0] == 0).sum() == 256


def test_bad_inputs_give_clear_errors():
    with pytest.raises(caffe.CaffeError, match='feat_stride'):
        run("'scales': [8]", [], (4, 4), (64, 64))
    with pytest.raises(caffe.CaffeError, match='channels'):
        run("'feat_stride': 16", [], (4, 4), (64, 64), num_anchors=3)
    with pytest.raises(caffe.CaffeError, match='unknown param_str'):
        run("{'feat_stride': 16, 'allowed_boarder': 0}", [], (4, 4), (64, 64))
    with pytest.raises(caffe.CaffeError, match="'batch_size' should be an integer"):
        run("{'feat_stride': 16, 'batch_size': 25.5}", [], (4, 4), (64, 64))
    with pytest.raises(caffe.CaffeError, match='rpn-data.*positive_weight'):
        run("{'feat_stride': 16, 'positive_weight': 2}", [], (4, 4), (64, 64))


def test_release_style_tuple_param_str():
    labels = run("'feat_stride': 16\n'scales': !!python/tuple [8, 16]", [], (4, 4), (64, 64),
                 num_anchors=6)[0]
    assert labels.shape == (1, 1, 6 * 4, 4)


def test_a_batch_labels_each_image_alone():
    # Two images of different sizes padded into one blob: each image's anchors are labelled
    # against its own ground truth and its own extent (anchors past image 1's real width are
    # ignored although the padded feature map covers them), exactly as alone. A sampling batch
    # larger than the candidates makes the draw deterministic.
    param_str = "{'feat_stride': 16, 'batch_size': 100000, 'fg_fraction': 1.0}"
    feat = (10, 12)
    gt0 = [[20, 30, 90, 110, 1], [100, 40, 160, 150, 2]]
    gt1 = [[10, 10, 60, 70, 3]]
    alone0 = run(param_str, gt0, feat, (160, 192))
    alone1 = run(param_str, gt1, feat, (120, 100))
    param = layer_param('name: "rpn-data" type: "Python" python_param { '
                        'module: "rpn.anchor_target_layer" layer: "AnchorTargetLayer" }')
    param.python_param.param_str = param_str
    gt = np.array([g + [0] for g in gt0] + [g + [1] for g in gt1], dtype=np.float32)
    arrays = [np.zeros((2, 18) + feat), gt, np.array([[160, 192, 1.0], [120, 100, 1.0]]),
              np.zeros((2, 3, 160, 192))]
    layer, bottom, top = build_layer(param, arrays, num_tops=4)
    layer.forward(bottom, top)
    both = [t.data.copy() for t in top]
    for i, alone in enumerate((alone0, alone1)):
        for got, expected in zip(both, alone):
            np.testing.assert_array_equal(got[i], expected[0])
    # Image 1 is 100 pixels wide: its anchors reaching past x = 100 are all ignored.
    assert (both[0][1].reshape(9, 10, 12)[:, :, 7:] == -1).all()
