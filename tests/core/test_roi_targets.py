"""core.roi_targets: the detector's RoI sample, labels and class-specific targets, with literal
rules, against the rules written out."""
import numpy as np
import pytest

from core.roi_targets import (class_statistics, expand_bbox_targets, normalize_targets,
                              roidb_targets, sample_rois_with_targets)
from core.sampling import RoISampling
from brute_force import iou

GT = np.array([[50, 60, 200, 220, 1], [300, 100, 420, 300, 3]], dtype=np.float64)


def target(roi, g):
    """Paper Eq. 2 written out with the release's +1 widths."""
    w, h = roi[2] - roi[0] + 1, roi[3] - roi[1] + 1
    gw, gh = g[2] - g[0] + 1, g[3] - g[1] + 1
    return [(g[0] + 0.5 * gw - roi[0] - 0.5 * w) / w, (g[1] + 0.5 * gh - roi[1] - 0.5 * h) / h,
            np.log(gw / w), np.log(gh / h)]


@pytest.mark.parametrize('normalization', [None, ((0.1, 0, -0.1, 0), (0.1, 0.1, 0.2, 0.2))])
def test_sample_labels_and_targets_follow_the_rules(normalization):
    rng = np.random.RandomState(0)
    boxes = np.vstack([GT[:, :4] + rng.uniform(-40, 40, size=(2, 4)) for _ in range(60)])
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 8)
    rule = RoISampling(fg_thresh=0.6, bg_thresh_hi=0.5, bg_thresh_lo=0.2)
    np.random.seed(2)
    s = sample_rois_with_targets(boxes, GT, rule, 40, 10, normalization)
    assert len(s.rois) <= 40 and (s.labels > 0).sum() <= 10
    num_fg = int((s.labels > 0).sum())
    assert (s.labels[:num_fg] > 0).all() and (s.labels[num_fg:] == 0).all()
    for roi, label, row, k, g in zip(s.rois, s.labels, s.target_data, s.keep, s.gt_index):
        np.testing.assert_array_equal(roi, boxes[k])
        overlaps = [iou(roi, gt) for gt in GT]
        assert g == int(np.argmax(overlaps))
        if label > 0:
            assert overlaps[g] >= 0.6 and label == GT[g, 4]
        else:
            assert 0.2 <= overlaps[g] < 0.5
        expected = np.array(target(roi, GT[g]))
        if normalization is not None:
            expected = (expected - normalization[0]) / normalization[1]
        assert row[0] == label
        np.testing.assert_allclose(row[1:], expected, rtol=1e-4, atol=1e-5)


def test_expand_places_targets_in_their_class_slot():
    data = np.array([[2, 0.1, 0.2, 0.3, 0.4], [0, 9, 9, 9, 9]], np.float32)
    targets, inside, outside = expand_bbox_targets(data, 3, (1.0, 1.0, 0.5, 0.5))
    np.testing.assert_array_equal(targets[0], np.float32([0] * 8 + [0.1, 0.2, 0.3, 0.4]))
    np.testing.assert_array_equal(inside[0], [0] * 8 + [1, 1, 0.5, 0.5])
    np.testing.assert_array_equal(outside[0], [0] * 8 + [1] * 4)
    assert not targets[1].any() and not inside[1].any() and not outside[1].any()
    with pytest.raises(ValueError, match='outside'):
        expand_bbox_targets(np.array([[3, 0, 0, 0, 0]]), 3, (1, 1, 1, 1))


def test_roidb_targets_regress_to_the_best_ground_truth_above_the_threshold():
    boxes = np.array([[50, 60, 200, 220], [300, 100, 420, 300], [60, 70, 210, 230],
                      [0, 0, 10, 10]], np.float64)
    max_overlaps = np.array([1.0, 1.0, iou(boxes[2], boxes[0]), 0.0])
    t = roidb_targets(boxes, max_overlaps, np.array([1, 3, 1, 0]), np.array([1, 3, 0, 0]), 0.5)
    np.testing.assert_allclose(t[2], [1] + target(boxes[2], boxes[0]), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(t[0], [1, 0, 0, 0, 0])  # a gt box regresses to itself
    assert not t[3].any()
    assert not roidb_targets(boxes, max_overlaps, np.array([1, 3, 1, 0]),
                             np.array([1, 3, 0, 0]), 0.99)[2].any()


def test_class_statistics_and_normalization():
    a = np.array([[1, 1.0, 2.0, 3.0, 4.0], [1, 3.0, 2.0, 1.0, 0.0], [0, 9, 9, 9, 9]], np.float32)
    b = np.array([[2, 0.5, 0.5, 0.5, 0.5]], np.float32)
    means, stds = class_statistics([a, b], 3, 1e-14)
    np.testing.assert_allclose(means[1], [2, 2, 2, 2])
    # np.std gives [1, 0, 1, 2]; a constant column (and a class of one example) is shifted only.
    np.testing.assert_allclose(stds[1], [1, 1, 1, 2])
    np.testing.assert_allclose(means[2], [0.5] * 4)
    np.testing.assert_array_equal(stds[2], [1, 1, 1, 1])
    assert not means[0].any() and not stds[0].any()
    normalize_targets(a, means, stds)
    np.testing.assert_allclose(a[0, 1:], [-1, 0, 1, 1], atol=1e-6)
    np.testing.assert_array_equal(a[2], [0, 9, 9, 9, 9])  # background untouched
