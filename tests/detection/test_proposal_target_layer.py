import numpy as np
import pytest

import caffe
from caffe.testing import build_layer, layer_param
from fast_rcnn.config import cfg
from brute_force import iou

K = 4  # classes, background included


def run(rpn_rois, gt_boxes, num_classes=K):
    param = layer_param('name: "roi-data" type: "Python" python_param { '
                        'module: "rpn.proposal_target_layer" layer: "ProposalTargetLayer" }')
    param.python_param.param_str = "'num_classes': %d" % num_classes
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


@pytest.fixture
def precomputed(monkeypatch):
    monkeypatch.setitem(cfg.TRAIN, 'BBOX_NORMALIZE_TARGETS_PRECOMPUTED', True)
    monkeypatch.setitem(cfg.TRAIN, 'IMS_PER_BATCH', 1)


def test_labels_thresholds_and_fractions(precomputed):
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
            assert overlaps[best] >= cfg.TRAIN.FG_THRESH and label == GT[best][4]
        else:
            assert cfg.TRAIN.BG_THRESH_LO <= overlaps[best] < cfg.TRAIN.BG_THRESH_HI
    assert (rois[:, 0] == 0).all()


def test_ground_truth_is_appended_as_candidates(precomputed):
    # Every proposal is far from the ground truth, so the only foreground is the gt itself.
    rois_in = np.array([[0, 560, 560, 599, 599], [0, 0, 0, 20, 20]] * 5)
    gt = GT + [[150, 100, 260, 250, 2]]  # gt boxes overlap each other: background in range
    rois, labels, _, _, _ = run(rois_in, gt)
    fg = rois[labels > 0, 1:]
    assert sorted(map(tuple, fg)) == sorted(tuple(g[:4]) for g in gt)
    np.testing.assert_array_equal(np.sort(labels[labels > 0]), sorted(g[4] for g in gt))


def test_class_specific_targets_and_weights(precomputed, monkeypatch):
    monkeypatch.setitem(cfg.TRAIN, 'BBOX_INSIDE_WEIGHTS', (1.0, 1.0, 0.5, 0.5))
    rng = np.random.RandomState(1)
    rois, labels, targets, inside, outside = run(proposals_around(GT, 500, rng, 0.3), GT)
    assert targets.shape == inside.shape == outside.shape == (len(rois), 4 * K)
    means = np.array(cfg.TRAIN.BBOX_NORMALIZE_MEANS)
    stds = np.array(cfg.TRAIN.BBOX_NORMALIZE_STDS)
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


def test_targets_are_not_normalized_without_precomputed_stats(monkeypatch):
    monkeypatch.setitem(cfg.TRAIN, 'BBOX_NORMALIZE_TARGETS_PRECOMPUTED', False)
    monkeypatch.setitem(cfg.TRAIN, 'IMS_PER_BATCH', 1)
    gt = [[0, 0, 99, 99, 1]]
    rois, labels, targets, _, _ = run([[0, 0, 0, 49, 99]], gt)
    row = np.where((rois[:, 1:] == [0, 0, 49, 99]).all(axis=1))[0][0]
    assert labels[row] == 1  # IoU 0.5
    # box 50 x 100 centred at (25, 50) -> gt centred at (50, 50), twice as wide
    np.testing.assert_allclose(targets[row, 4:8], [0.5, 0.0, np.log(2.0), 0.0], atol=1e-6)


def test_image_without_gt_gives_background_rois(precomputed):
    rng = np.random.RandomState(2)
    rois_in = proposals_around(GT, 300, rng, 0.5)
    rois, labels, targets, inside, outside = run(rois_in, np.zeros((0, 5)))
    assert len(rois) == 128
    assert (labels == 0).all()
    assert not targets.any() and not inside.any() and not outside.any()


def test_batch_size_comes_from_the_images_in_the_batch(precomputed, monkeypatch):
    monkeypatch.setitem(cfg.TRAIN, 'BATCH_SIZE', 64)
    monkeypatch.setitem(cfg.TRAIN, 'FG_FRACTION', 0.5)
    rng = np.random.RandomState(3)
    rois, labels, _, _, _ = run(proposals_around(GT, 1000, rng, 0.6), GT)
    assert len(rois) == 64 and (labels > 0).sum() == 32
    # TRAIN.IMS_PER_BATCH (2 by default, Fast R-CNN's) does not change what one image gets: the
    # release's layer samples BATCH_SIZE RoIs for the single image of an end-to-end batch.
    monkeypatch.setitem(cfg.TRAIN, 'IMS_PER_BATCH', 2)
    rois, labels, _, _, _ = run(proposals_around(GT, 1000, rng, 0.6), GT)
    assert len(rois) == 64 and (labels > 0).sum() == 32


def test_a_batch_samples_each_image_against_its_own_ground_truth(precomputed, monkeypatch):
    # Two images: BATCH_SIZE / 2 RoIs each, labelled by their own image's ground truth only
    # (the other image's boxes are elsewhere and must not make foreground), tagged by image.
    monkeypatch.setitem(cfg.TRAIN, 'BATCH_SIZE', 64)
    rng = np.random.RandomState(4)
    gt1 = [[400, 380, 560, 560, 2]]
    rois_in = np.vstack([proposals_around(GT, 400, rng, 0.6),
                         np.hstack([[[1]] * 300, proposals_around(gt1, 300, rng, 0.6)[:, 1:]])])
    gt = np.vstack([np.hstack([GT, np.zeros((3, 1))]), np.hstack([gt1, [[1]]])])
    rois, labels, _, _, _ = run(rois_in, gt)
    for n, image_gt in ((0, GT), (1, gt1)):
        mine = rois[:, 0] == n
        assert mine.sum() == 32 and (labels[mine] > 0).sum() == 8
        for roi, label in zip(rois[mine, 1:], labels[mine]):
            overlaps = [iou(roi, g) for g in image_gt]
            if label > 0:
                assert max(overlaps) >= cfg.TRAIN.FG_THRESH
                assert label == image_gt[int(np.argmax(overlaps))][4]
    assert (rois[:32, 0] == 0).all() and (rois[32:, 0] == 1).all()


def test_errors(precomputed):
    with pytest.raises(caffe.CaffeError, match='num_classes'):
        run([[0, 0, 0, 10, 10]], GT, num_classes=1)
