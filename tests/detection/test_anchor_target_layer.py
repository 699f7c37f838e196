import numpy as np
import pytest

import caffe
from caffe.testing import build_layer, layer_param
from fast_rcnn.config import cfg
from rpn.generate_anchors import generate_anchors
from brute_force import iou

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


def anchor_at(base, a, y, x):
    return [base[a][0] + x * STRIDE, base[a][1] + y * STRIDE,
            base[a][2] + x * STRIDE, base[a][3] + y * STRIDE]


def reference_labels(base, feat_hw, im_hw, gt, border=0, clobber=False):
    """Labels (A, H, W) before subsampling, by the paper's rules written out box by box."""
    height, width = feat_hw
    num = len(base)
    labels = np.full((num, height, width), -1.0)
    cells = [(a, y, x) for a in range(num) for y in range(height) for x in range(width)]
    inside = []
    for a, y, x in cells:
        b = anchor_at(base, a, y, x)
        if b[0] >= -border and b[1] >= -border and b[2] < im_hw[1] + border and \
                b[3] < im_hw[0] + border:
            inside.append((a, y, x))
    if not gt:
        for c in inside:
            labels[c] = 0
        return labels
    ious = {c: [iou(anchor_at(base, *c), g) for g in gt] for c in inside}
    best_for_gt = set()
    for g in range(len(gt)):
        best = max(ious[c][g] for c in inside)
        if best > 0:
            best_for_gt |= {c for c in inside if ious[c][g] == best}
    for c in inside:
        m = max(ious[c])
        positive = m >= cfg.TRAIN.RPN_POSITIVE_OVERLAP or c in best_for_gt
        negative = m < cfg.TRAIN.RPN_NEGATIVE_OVERLAP
        if negative and (clobber or not positive):
            labels[c] = 0
        elif positive:
            labels[c] = 1
    return labels


@pytest.fixture
def no_subsampling(monkeypatch):
    monkeypatch.setitem(cfg.TRAIN, 'RPN_BATCHSIZE', 10 ** 6)
    monkeypatch.setitem(cfg.TRAIN, 'RPN_FG_FRACTION', 1.0)


@pytest.mark.parametrize('clobber', [False, True])
def test_labels_match_rules_written_out(no_subsampling, monkeypatch, clobber):
    monkeypatch.setitem(cfg.TRAIN, 'RPN_CLOBBER_POSITIVES', clobber)
    rng = np.random.RandomState(0)
    feat_hw, im_hw = (16, 20), (256, 320)
    gt = []
    for _ in range(4):
        x1, y1 = rng.randint(0, 250), rng.randint(0, 190)
        w, h = rng.randint(40, 130), rng.randint(40, 130)
        gt.append([x1, y1, min(x1 + w, 319), min(y1 + h, 255), 1 + rng.randint(3)])
    # A box so small that its best anchor is below the negative threshold: the two orders of
    # RPN_CLOBBER_POSITIVES label that anchor differently.
    gt.append([150, 120, 169, 139, 2])
    labels = run("'feat_stride': 16", gt, feat_hw, im_hw)[0]
    boxes = [g[:4] for g in gt]
    expected = reference_labels(generate_anchors(), feat_hw, im_hw, boxes, clobber=clobber)
    assert labels.shape == (1, 1, 9 * 16, 20)
    np.testing.assert_array_equal(labels.reshape(9, 16, 20), expected)
    assert (expected == 1).any() and (expected == 0).any() and (expected == -1).any()
    other = reference_labels(generate_anchors(), feat_hw, im_hw, boxes, clobber=not clobber)
    assert (other != expected).any()


def test_best_anchor_of_a_gt_box_is_positive_below_the_threshold(no_subsampling):
    # One 32x32 anchor per position (ratio 1, scale 2): at (x, y) it spans x*16-8 .. x*16+23.
    # A 32x32 box shifted by half a stride overlaps two anchors equally, IoU 768/1280 = 0.6.
    gt = [[48, 56, 79, 87, 1]]  # between the anchors of x = 3 (40..71), x = 4 (56..87), y = 4
    labels = run("{'feat_stride': 16, 'scales': [2], 'ratios': [1]}", gt, (8, 8), (128, 128),
                 num_anchors=1)[0].reshape(8, 8)
    assert iou([40, 56, 71, 87], [40, 56, 71, 87]) == 1  # sanity of the test's IoU
    assert iou(anchor_at(generate_anchors(16, [1], [2]), 0, 4, 3), gt[0]) == pytest.approx(0.6)
    positives = set(zip(*np.where(labels == 1)))
    assert positives == {(4, 3), (4, 4)}  # both tied anchors, although 0.6 < 0.7


def test_gt_box_far_from_all_anchors_makes_no_positive(no_subsampling):
    # A tiny box at the image corner touches no inside anchor (the inside anchors start at 8).
    labels = run("{'feat_stride': 16, 'scales': [2], 'ratios': [1]}", [[0, 0, 3, 3, 1]],
                 (8, 8), (128, 128), num_anchors=1)[0]
    assert not (labels == 1).any()


@pytest.mark.parametrize('border', [0, 8, 1000])
def test_anchors_crossing_the_border_are_ignored(no_subsampling, border):
    param = "{'feat_stride': 16, 'allowed_border': %d}" % border
    feat_hw, im_hw = (5, 7), (80, 112)
    labels, targets, inside, outside = run(param, [], feat_hw, im_hw)
    expected = reference_labels(generate_anchors(), feat_hw, im_hw, [], border=border)
    np.testing.assert_array_equal(labels.reshape(9, 5, 7), expected)
    ignored = np.repeat(expected == -1, 4, axis=0)[None]  # (1, 4A, H, W) like the weights
    assert not outside[ignored].any()
    if border == 1000:
        assert (expected == 0).all()
    else:
        assert (expected == -1).any()


@pytest.mark.parametrize('border,first,last', [(0, 1, 4), (8, 0, 5)])
def test_border_edges(no_subsampling, border, first, last):
    # 32 x 32 anchors spanning 16x - 8 .. 16x + 23 in a 103 x 103 image (pixels 0 .. 102): the
    # anchor of x = 5 ends at 103, one pixel past the image.
    param = "{'feat_stride': 16, 'scales': [2], 'ratios': [1], 'allowed_border': %d}" % border
    labels = run(param, [], (8, 8), (103, 103), num_anchors=1)[0].reshape(8, 8)
    inside = np.zeros(8, bool)
    inside[first:last + 1] = True
    np.testing.assert_array_equal(labels, np.where(inside[:, None] & inside, 0, -1))


def test_sample_caps_many_positives_and_total():
    # Many gt boxes on a large map: far more than 128 positives and 256 negatives are available.
    rng = np.random.RandomState(1)
    feat_hw, im_hw = (38, 50), (600, 800)
    xy = rng.uniform(0, 500, size=(300, 2))
    wh = rng.uniform(60, 280, size=(300, 2))
    gt = np.hstack([xy, np.minimum(xy + wh, [799, 599]), rng.randint(1, 21, size=(300, 1))])
    labels, targets, inside, outside = run("'feat_stride': 16", gt, feat_hw, im_hw)
    assert (labels == 1).sum() == 128
    assert (labels == 0).sum() == 128
    np.testing.assert_array_equal(outside[outside > 0], 1.0 / 256)


def test_few_positives_are_all_kept_and_negatives_fill_the_batch():
    gt = [[100, 100, 300, 250, 1]]
    labels, targets, inside, outside = run("'feat_stride': 16", gt, (38, 50), (600, 800))
    num_fg = (labels == 1).sum()
    assert 0 < num_fg < 128
    assert (labels == 0).sum() == 256 - num_fg


def test_image_without_gt_gets_only_negatives():
    labels, targets, inside, outside = run("'feat_stride': 16", np.zeros((0, 5)), (38, 50),
                                           (600, 800))
    assert (labels == 0).sum() == 256
    assert not (labels == 1).any()
    assert not targets.any() and not inside.any()
    assert (outside > 0).sum() == 256 * 4


def test_targets_and_weights_of_positive_anchors(no_subsampling, monkeypatch):
    monkeypatch.setitem(cfg.TRAIN, 'RPN_BBOX_INSIDE_WEIGHTS', (1.0, 0.5, 1.0, 0.25))
    base = generate_anchors()
    gt = [[20, 30, 140, 100, 1], [60, 10, 110, 150, 2]]
    feat_hw, im_hw = (10, 10), (160, 160)
    labels, targets, inside, outside = run("'feat_stride': 16", gt, feat_hw, im_hw)
    labels = labels.reshape(9, 10, 10)
    targets = targets.reshape(9, 4, 10, 10)
    inside = inside.reshape(9, 4, 10, 10)
    outside = outside.reshape(9, 4, 10, 10)
    num_sampled = (labels >= 0).sum()
    positives = list(zip(*np.where(labels == 1)))
    assert len(positives) >= 2
    for a, y, x in positives:
        box = anchor_at(base, a, y, x)
        g = max(gt, key=lambda g: iou(box, g))
        w, h = box[2] - box[0] + 1, box[3] - box[1] + 1
        gw, gh = g[2] - g[0] + 1, g[3] - g[1] + 1
        expected = [(g[0] + 0.5 * gw - box[0] - 0.5 * w) / w,
                    (g[1] + 0.5 * gh - box[1] - 0.5 * h) / h, np.log(gw / w), np.log(gh / h)]
        np.testing.assert_allclose(targets[a, :, y, x], expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(inside[a, :, y, x], [1.0, 0.5, 1.0, 0.25])
    negative = np.repeat((labels == 0)[:, None], 4, axis=1)
    assert not inside[negative].any()
    np.testing.assert_allclose(outside[np.repeat((labels >= 0)[:, None], 4, axis=1)],
                               1.0 / num_sampled)
    assert not outside[np.repeat((labels == -1)[:, None], 4, axis=1)].any()


def test_positive_weight_splits_outside_weights(monkeypatch):
    monkeypatch.setitem(cfg.TRAIN, 'RPN_POSITIVE_WEIGHT', 0.25)
    labels, _, _, outside = run("'feat_stride': 16", [[100, 100, 300, 250, 1]], (38, 50),
                                (600, 800))
    labels = labels.reshape(9, 38, 50)
    outside = outside.reshape(9, 4, 38, 50)
    num_fg, num_bg = (labels == 1).sum(), (labels == 0).sum()
    pos = np.repeat((labels == 1)[:, None], 4, axis=1)
    neg = np.repeat((labels == 0)[:, None], 4, axis=1)
    np.testing.assert_allclose(outside[pos], 0.25 / num_fg)
    np.testing.assert_allclose(outside[neg], 0.75 / num_bg)


def test_sampling_follows_numpy_seed():
    gt = [[100, 100, 300, 250, 1], [400, 200, 700, 500, 2]]
    np.random.seed(5)
    first = run("'feat_stride': 16", gt, (38, 50), (600, 800))[0]
    np.random.seed(5)
    second = run("'feat_stride': 16", gt, (38, 50), (600, 800))[0]
    third = run("'feat_stride': 16", gt, (38, 50), (600, 800))[0]
    np.testing.assert_array_equal(first, second)
    assert (first != third).any()


def test_bad_inputs_give_clear_errors():
    with pytest.raises(caffe.CaffeError, match='feat_stride'):
        run("'scales': [8]", [], (4, 4), (64, 64))
    with pytest.raises(caffe.CaffeError, match='channels'):
        run("'feat_stride': 16", [], (4, 4), (64, 64), num_anchors=3)
    with pytest.raises(caffe.CaffeError, match='unknown param_str'):
        run("{'feat_stride': 16, 'allowed_boarder': 0}", [], (4, 4), (64, 64))


def test_release_style_tuple_param_str():
    labels = run("'feat_stride': 16\n'scales': !!python/tuple [8, 16]", [], (4, 4), (64, 64),
                 num_anchors=6)[0]
    assert labels.shape == (1, 1, 6 * 4, 4)


def test_a_batch_labels_each_image_alone(monkeypatch):
    # Two images of different sizes padded into one blob: each image's anchors are labelled
    # against its own ground truth and its own extent (anchors past image 1's real width are
    # ignored although the padded feature map covers them), exactly as alone. A sampling batch
    # larger than the candidates makes the draw deterministic.
    monkeypatch.setitem(cfg.TRAIN, 'RPN_BATCHSIZE', 100000)
    monkeypatch.setitem(cfg.TRAIN, 'RPN_FG_FRACTION', 1.0)
    feat = (10, 12)
    gt0 = [[20, 30, 90, 110, 1], [100, 40, 160, 150, 2]]
    gt1 = [[10, 10, 60, 70, 3]]
    alone0 = run("'feat_stride': 16", gt0, feat, (160, 192))
    alone1 = run("'feat_stride': 16", gt1, feat, (120, 100))
    param = layer_param('name: "rpn-data" type: "Python" python_param { '
                        'module: "rpn.anchor_target_layer" layer: "AnchorTargetLayer" }')
    param.python_param.param_str = "'feat_stride': 16"
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
