"""ProposalTargetLayer: the RoI rule and the targets' normalization come from its param_str;
each image of a batch is sampled against its own ground truth; the coordinate backward of
non-approximate joint training."""
import numpy as np
import pytest

import caffe
from caffe.testing import build_layer, layer_param
from core.roi_targets import BoxTargets
from core.sampling import RoISampling
from utils.param_str import dump_param_str
from brute_force import iou

K = 4  # classes, background included
# The layer's settings in these tests, as an end-to-end run writes them: precomputed targets.
END2END = {'num_classes': K, 'precomputed': True}


def param_str(**settings):
    return dump_param_str(dict(END2END, **settings))


def run(rpn_rois, gt_boxes, num_classes=K, **settings):
    param = layer_param('name: "roi-data" type: "Python" python_param { '
                        'module: "rpn.proposal_target_layer" layer: "ProposalTargetLayer" }')
    param.python_param.param_str = param_str(num_classes=num_classes, **settings)
    arrays = [np.asarray(rpn_rois, np.float32).reshape(-1, 5),
              np.asarray(gt_boxes, np.float32).reshape(-1, 6 if np.shape(gt_boxes)[-1:] == (6,)
                                                       else 5)]
    layer, bottom, top = build_layer(param, arrays, num_tops=5)
    layer.forward(bottom, top)
    return [t.data.copy() for t in top]


def proposals_around(gt, n, rng, spread):
    """Integer rpn_rois jittered around the gt boxes (spread in pixels), batch index 0."""
    rois = []
    for _ in range(n):
        g = gt[rng.randint(len(gt))]
        w, h = g[2] - g[0] + 1, g[3] - g[1] + 1
        jitter = rng.uniform(-spread, spread, size=4) * [w, h, w, h]
        box = np.clip(np.round(np.array(g[:4]) + jitter), 0, 599)
        box[2:] = np.maximum(box[2:], box[:2] + 4)
        rois.append([0] + list(box))
    return np.array(rois)


GT = [[50, 60, 200, 220, 1], [300, 100, 420, 300, 3], [100, 350, 500, 560, 2]]


def test_labels_thresholds_and_fractions():
    rng = np.random.RandomState(0)
    rois_in = proposals_around(GT, 2000, rng, 0.6)
    rois, labels, targets, inside, outside = run(rois_in, GT)
    assert len(rois) == 128
    num_fg = int((labels > 0).sum())
    assert num_fg == 32  # round(0.25 * 128) with plenty of candidates
    assert (labels[:num_fg] > 0).all() and (labels[num_fg:] == 0).all()
    for roi, label in zip(rois, labels):
        overlaps = [iou(roi[1:], g) for g in GT]
        best = int(np.argmax(overlaps))
        if label > 0:
            assert overlaps[best] >= 0.5 and label == GT[best][4]
        else:
            assert 0.1 <= overlaps[best] < 0.5  # the paper's (Fast R-CNN's) defaults
    assert (rois[:, 0] == 0).all()


def test_other_thresholds_from_the_param_str():
    rng = np.random.RandomState(0)
    rois_in = proposals_around(GT, 2000, rng, 0.6)
    rois, labels, _, _, _ = run(rois_in, GT, batch_size=60, fg_fraction=0.5, fg_thresh=0.7,
                                bg_thresh_hi=0.4, bg_thresh_lo=0.0)
    # Every candidate (the proposals and the ground truth) at IoU >= 0.7, up to 30, is drawn.
    candidates = [r[1:] for r in rois_in] + [g[:4] for g in GT]
    num_fg = sum(max(iou(c, g) for g in GT) >= 0.7 for c in candidates)
    assert len(rois) == 60 and (labels > 0).sum() == min(30, num_fg) and num_fg > 0
    for roi, label in zip(rois, labels):
        best = max(iou(roi[1:], g) for g in GT)
        assert best >= 0.7 if label > 0 else best < 0.4


def test_ground_truth_is_appended_as_candidates():
    # Every proposal is far from the ground truth, so the only foreground is the gt itself.
    rois_in = np.array([[0, 560, 560, 599, 599], [0, 0, 0, 20, 20]] * 5)
    gt = GT + [[150, 100, 260, 250, 2]]  # gt boxes overlap each other: background in range
    rois, labels, _, _, _ = run(rois_in, gt)
    fg = rois[labels > 0, 1:]
    assert sorted(map(tuple, fg)) == sorted(tuple(g[:4]) for g in gt)
    np.testing.assert_array_equal(np.sort(labels[labels > 0]), sorted(g[4] for g in gt))


@pytest.mark.parametrize('means,stds', [(None, None), ((0.1, -0.1, 0, 0.2), (0.5, 0.5, 1, 1))])
def test_class_specific_targets_and_weights(means, stds):
    rng = np.random.RandomState(1)
    settings = {'inside_weights': (1.0, 1.0, 0.5, 0.5)}
    if means is not None:
        settings.update(means=means, stds=stds)
    rois, labels, targets, inside, outside = run(proposals_around(GT, 500, rng, 0.3), GT,
                                                 **settings)
    assert targets.shape == inside.shape == outside.shape == (len(rois), 4 * K)
    means = np.array(means or BoxTargets().means)  # the paper's normalization by default
    stds = np.array(stds or BoxTargets().stds)
    for roi, label, t, w_in, w_out in zip(rois[:, 1:], labels, targets, inside, outside):
        c = int(label)
        if c == 0:
            assert not t.any() and not w_in.any() and not w_out.any()
            continue
        g = max(GT, key=lambda g: iou(roi, g))
        w, h = roi[2] - roi[0] + 1, roi[3] - roi[1] + 1
        gw, gh = g[2] - g[0] + 1, g[3] - g[1] + 1
        raw = np.array([(g[0] + 0.5 * gw - roi[0] - 0.5 * w) / w,
                        (g[1] + 0.5 * gh - roi[1] - 0.5 * h) / h,
                        np.log(gw / w), np.log(gh / h)])
        np.testing.assert_allclose(t[4 * c:4 * c + 4], (raw - means) / stds, rtol=1e-4,
                                   atol=1e-5)
        others = np.ones(4 * K, bool)
        others[4 * c:4 * c + 4] = False
        assert not t[others].any() and not w_in[others].any() and not w_out[others].any()
        np.testing.assert_array_equal(w_in[4 * c:4 * c + 4], [1.0, 1.0, 0.5, 0.5])
        np.testing.assert_array_equal(w_out[4 * c:4 * c + 4], 1.0)
    assert (labels > 0).sum() > 0


def test_targets_are_not_normalized_without_precomputed_stats():
    gt = [[0, 0, 99, 99, 1]]
    rois, labels, targets, _, _ = run([[0, 0, 0, 49, 99]], gt, precomputed=False)
    row = np.where((rois[:, 1:] == [0, 0, 49, 99]).all(axis=1))[0][0]
    assert labels[row] == 1  # IoU 0.5
    # box 50 x 100 centred at (25, 50) -> gt centred at (50, 50), twice as wide
    np.testing.assert_allclose(targets[row, 4:8], [0.5, 0.0, np.log(2.0), 0.0], atol=1e-6)


def test_image_without_gt_gives_background_rois():
    rng = np.random.RandomState(2)
    rois_in = proposals_around(GT, 300, rng, 0.5)
    rois, labels, targets, inside, outside = run(rois_in, np.zeros((0, 5)))
    assert len(rois) == 128
    assert (labels == 0).all()
    assert not targets.any() and not inside.any() and not outside.any()


def test_batch_size_comes_from_the_images_in_the_batch():
    # One image gets all batch_size RoIs (the release's layer samples BATCH_SIZE RoIs for the
    # single image of an end-to-end batch).
    rng = np.random.RandomState(3)
    rois, labels, _, _, _ = run(proposals_around(GT, 1000, rng, 0.6), GT, batch_size=64,
                                fg_fraction=0.5)
    assert len(rois) == 64 and (labels > 0).sum() == 32
    assert RoISampling().batch_size == 128


def test_a_batch_samples_each_image_against_its_own_ground_truth():
    # Two images: batch_size / 2 RoIs each, labelled by their own image's ground truth only
    # (the other image's boxes are elsewhere and must not make foreground), tagged by image.
    rng = np.random.RandomState(4)
    gt1 = [[400, 380, 560, 560, 2]]
    rois_in = np.vstack([proposals_around(GT, 400, rng, 0.6),
                         np.hstack([[[1]] * 300, proposals_around(gt1, 300, rng, 0.6)[:, 1:]])])
    gt = np.vstack([np.hstack([GT, np.zeros((3, 1))]), np.hstack([gt1, [[1]]])])
    rois, labels, _, _, _ = run(rois_in, gt, batch_size=64)
    for n, image_gt in ((0, GT), (1, gt1)):
        mine = rois[:, 0] == n
        assert mine.sum() == 32 and (labels[mine] > 0).sum() == 8
        for roi, label in zip(rois[mine, 1:], labels[mine]):
            overlaps = [iou(roi, g) for g in image_gt]
            if label > 0:
                assert max(overlaps) >= 0.5
                assert label == image_gt[int(np.argmax(overlaps))][4]
    assert (rois[:32, 0] == 0).all() and (rois[32:, 0] == 1).all()


def test_errors():
    with pytest.raises(caffe.CaffeError, match='num_classes'):
        run([[0, 0, 0, 10, 10]], GT, num_classes=1)
    with pytest.raises(caffe.CaffeError, match="roi-data.*'fg_fraction' should be a number"):
        run([[0, 0, 0, 10, 10]], GT, fg_fraction='half')
    with pytest.raises(caffe.CaffeError, match='unknown param_str key.*batchsize'):
        run([[0, 0, 0, 10, 10]], GT, batchsize=64)


# Backward (non-approximate joint training, paper Sec. 3.2) -------------------------------------

def build(rpn_rois, gt_boxes, param_str):
    param = layer_param('name: "roi-data" type: "Python" python_param { '
                        'module: "rpn.proposal_target_layer" layer: "ProposalTargetLayer" }')
    param.python_param.param_str = param_str
    arrays = [np.asarray(rpn_rois, np.float32).reshape(-1, 5),
              np.asarray(gt_boxes, np.float32).reshape(-1, 5)]
    layer, bottom, top = build_layer(param, arrays, num_tops=5)
    return layer, bottom, top


def float_proposals(n, rng):
    """Distinct non-integer proposals around GT (so each sampled RoI names its source row)."""
    rois = proposals_around(GT, n, rng, 0.4).astype(np.float64)
    rois[:, 1:] += rng.uniform(0.05, 0.95, size=(n, 4))
    return rois


@pytest.mark.parametrize('rows', ['fg', 'all'])
def test_backward_routes_each_rois_gradient_to_its_proposal(rows):
    rng = np.random.RandomState(4)
    rpn_rois = float_proposals(400, rng)
    layer, bottom, top = build(rpn_rois, GT, param_str(backprop_coords=rows))
    np.random.seed(0)
    layer.forward(bottom, top)
    rois, labels = top[0].data, top[1].data
    top[0].diff[...] = rng.uniform(-1, 1, size=top[0].shape)
    top[2].diff[...] = rng.uniform(-1, 1, size=top[2].shape)  # targets: constants by default
    bottom[0].diff[...] = 3
    layer.backward(top, [True, False], bottom)
    expected = np.zeros((len(rpn_rois), 5))
    from_gt = 0
    for i, roi in enumerate(rois):
        source = np.where((np.float32(rpn_rois[:, 1:]) == roi[1:]).all(axis=1))[0]
        if source.size == 0:
            assert any((np.float32(g[:4]) == roi[1:]).all() for g in GT)
            from_gt += 1
            continue
        assert source.size == 1
        if rows == 'all' or labels[i] > 0:
            expected[source[0], 1:] += top[0].diff[i, 1:]
    assert from_gt > 0  # ground-truth rows were sampled and pass nothing
    np.testing.assert_allclose(bottom[0].diff, expected, rtol=1e-6, atol=1e-6)
    assert (bottom[0].diff[:, 1:] != 0).any(axis=1).sum() == (
        (labels > 0).sum() - from_gt if rows == 'fg' else len(rois) - from_gt)


def test_backward_is_off_by_default_and_param_checked():
    rng = np.random.RandomState(5)
    layer, bottom, top = build(float_proposals(50, rng), GT, param_str())
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    bottom[0].diff[...] = 3
    layer.backward(top, [True, False], bottom)
    assert not bottom[0].diff.any()
    for bad, match in (("'backprop_coords': true", "'fg' or 'all'"),
                       ("'backprop_coords': 'bg'", "'fg' or 'all'"),
                       ("'backprop_targets': true", 'needs backprop_coords'),
                       ("'backprop_coords': 'fg', 'backprop_targets': 1", 'true or false')):
        with pytest.raises(caffe.CaffeError, match=match):
            build(float_proposals(5, rng), GT, "{'num_classes': 4, %s}" % bad)


@pytest.mark.parametrize('normalized', [True, False])
def test_target_gradient_matches_finite_differences(normalized):
    """With backprop_targets the objective sum(w * rois) + sum(v * bbox_targets) is
    differentiated through the targets too; central differences with the sampling replayed
    (np.random reseeded before each forward, so the same rows are drawn)."""
    rng = np.random.RandomState(6)
    rpn_rois = float_proposals(120, rng)
    layer, bottom, top = build(rpn_rois, GT, param_str(
        precomputed=normalized, batch_size=32, backprop_coords='fg', backprop_targets=True))

    def forward():
        np.random.seed(1)
        layer.forward(bottom, top)
        return top[0].data.copy(), top[1].data.copy(), top[2].data.copy()

    rois, labels, targets = forward()
    w = rng.uniform(-1, 1, size=rois.shape)
    v = rng.uniform(-1, 1, size=targets.shape)
    top[0].diff[...] = w
    top[2].diff[...] = v
    layer.backward(top, [True, False], bottom)
    analytic = bottom[0].diff.copy()
    sources = [np.where((np.float32(rpn_rois[:, 1:]) == r[1:]).all(axis=1))[0] for r in rois]
    fg_sources = [s[0] for s, label in zip(sources, labels) if s.size and label > 0]
    assert len(fg_sources) >= 4
    checked = 0
    for j in fg_sources[:6]:
        for c in range(1, 5):
            x = float(bottom[0].data[j, c])
            values, points = [], []
            for sign in (1, -1):
                bottom[0].data[j, c] = x + sign * 0.05
                points.append(float(bottom[0].data[j, c]))
                r, lab, t = forward()
                np.testing.assert_array_equal(lab, labels)  # the same rows were drawn
                values.append(float(np.sum(r.astype(np.float64) * w)
                                    + np.sum(t.astype(np.float64) * v)))
            bottom[0].data[j, c] = x
            numeric = (values[0] - values[1]) / (points[0] - points[1])
            assert abs(analytic[j, c] - numeric) <= 2e-3 * max(abs(numeric), 1.0), \
                (j, c, analytic[j, c], numeric)
            checked += 1
    assert checked == 4 * min(6, len(fg_sources))
    # Without backprop_targets the targets are constants: only the rois term remains.
    layer, bottom, top = build(rpn_rois, GT, param_str(precomputed=normalized, batch_size=32,
                                                       backprop_coords='fg'))
    forward()
    top[0].diff[...] = w
    top[2].diff[...] = v
    layer.backward(top, [True, False], bottom)
    for j in fg_sources:
        np.testing.assert_allclose(bottom[0].diff[j, 1:],
                                   sum(w[i, 1:] for i, s in enumerate(sources)
                                       if s.size and s[0] == j), rtol=1e-6)
    assert np.abs(analytic - bottom[0].diff).max() > 1e-3


def test_backward_of_a_batch_routes_within_each_image():
    # Two images whose proposals are interleaved in rpn_rois (the layer finds each image's
    # rows by index): every sampled RoI's gradient reaches the row it came from, of its own
    # image, found here by brute force over (image index, box).
    rng = np.random.RandomState(6)
    gt1 = [[400, 380, 560, 560, 2]]
    image0 = float_proposals(300, rng)
    image1 = np.hstack([np.ones((200, 1)), float_proposals(200, rng)[:, 1:] + [200, 200, 0, 0]])
    image1[:, 3:] = np.maximum(image1[:, 3:], image1[:, 1:3] + 4)
    order = rng.permutation(500)
    rpn_rois = np.vstack([image0, image1])[order]
    gt = np.vstack([np.hstack([GT, np.zeros((3, 1))]), np.hstack([gt1, [[1]]])])
    param = layer_param('name: "roi-data" type: "Python" python_param { '
                        'module: "rpn.proposal_target_layer" layer: "ProposalTargetLayer" }')
    param.python_param.param_str = param_str(batch_size=64, backprop_coords='all')
    layer, bottom, top = build_layer(param, [np.float32(rpn_rois), np.float32(gt)], num_tops=5)
    np.random.seed(0)
    layer.forward(bottom, top)
    rois = top[0].data
    assert set(rois[:, 0]) == {0, 1}
    top[0].diff[...] = rng.uniform(-1, 1, size=top[0].shape)
    layer.backward(top, [True, False], bottom)
    expected = np.zeros((len(rpn_rois), 5))
    stored = bottom[0].data
    routed = 0
    for i, roi in enumerate(rois):
        source = np.where((stored == roi).all(axis=1))[0]
        if source.size:
            assert source.size == 1
            expected[source[0], 1:] += top[0].diff[i, 1:]
            routed += 1
    assert routed > 32
    np.testing.assert_allclose(bottom[0].diff, expected, rtol=1e-6, atol=1e-6)
