"""core.anchor_targets: the RPN's anchor labels, sampling, targets and loss weights (paper
Sec. 3.1.2-3.1.3), called with literal rules and checked against the rules written out."""
import numpy as np
import pytest

from core.anchor_targets import AnchorLabelling, anchor_targets
from core.anchors import generate_anchors, shifted_anchors
from brute_force import iou

STRIDE = 16
# A sampling batch larger than any candidate set: nothing is dropped, the draw is deterministic.
ALL = dict(batch_size=10 ** 6, fg_fraction=1.0)


def run(rule, gt_boxes, feat_hw, im_hw, base=None):
    """anchor_targets of an image's (H, W) anchor grid, as (A, H, W) labels and (A, 4, H, W)
    targets, inside and outside weights."""
    base = generate_anchors() if base is None else base
    height, width = feat_hw
    num = len(base)
    gt = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 5)
    labels, targets, inside, outside = anchor_targets(
        shifted_anchors(base, height, width, STRIDE), gt, im_hw[0], im_hw[1], rule)
    # Anchor k = (y * W + x) * A + a.
    return (labels.reshape(height, width, num).transpose(2, 0, 1),
            *(v.reshape(height, width, num, 4).transpose(2, 3, 0, 1)
              for v in (targets, inside, outside)))


def anchor_at(base, a, y, x):
    return [base[a][0] + x * STRIDE, base[a][1] + y * STRIDE,
            base[a][2] + x * STRIDE, base[a][3] + y * STRIDE]


def reference_labels(base, feat_hw, im_hw, gt, border=0, clobber=False, positive_iou=0.7,
                     negative_iou=0.3):
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
        positive = m >= positive_iou or c in best_for_gt
        negative = m < negative_iou
        if negative and (clobber or not positive):
            labels[c] = 0
        elif positive:
            labels[c] = 1
    return labels


@pytest.mark.parametrize('clobber', [False, True])
def test_labels_match_rules_written_out(clobber):
    rng = np.random.RandomState(0)
    feat_hw, im_hw = (16, 20), (256, 320)
    gt = []
    for _ in range(4):
        x1, y1 = rng.randint(0, 250), rng.randint(0, 190)
        w, h = rng.randint(40, 130), rng.randint(40, 130)
        gt.append([x1, y1, min(x1 + w, 319), min(y1 + h, 255), 1 + rng.randint(3)])
    # A box so small that its best anchor is below the negative threshold: the two orders of
    # clobber_positives label that anchor differently.
    gt.append([150, 120, 169, 139, 2])
    labels = run(AnchorLabelling(clobber_positives=clobber, **ALL), gt, feat_hw, im_hw)[0]
    boxes = [g[:4] for g in gt]
    expected = reference_labels(generate_anchors(), feat_hw, im_hw, boxes, clobber=clobber)
    np.testing.assert_array_equal(labels, expected)
    assert (expected == 1).any() and (expected == 0).any() and (expected == -1).any()
    other = reference_labels(generate_anchors(), feat_hw, im_hw, boxes, clobber=not clobber)
    assert (other != expected).any()


def test_other_thresholds_follow_the_rule():
    gt = [[40, 50, 150, 170, 1], [180, 20, 300, 120, 2]]
    rule = AnchorLabelling(positive_iou=0.5, negative_iou=0.4, **ALL)
    labels = run(rule, gt, (12, 20), (200, 320))[0]
    boxes = [g[:4] for g in gt]
    expected = reference_labels(generate_anchors(), (12, 20), (200, 320), boxes,
                                positive_iou=0.5, negative_iou=0.4)
    np.testing.assert_array_equal(labels, expected)
    assert (expected != reference_labels(generate_anchors(), (12, 20), (200, 320), boxes)).any()


def test_best_anchor_of_a_gt_box_is_positive_below_the_threshold():
    # One 32x32 anchor per position (ratio 1, scale 2): at (x, y) it spans x*16-8 .. x*16+23.
    # A 32x32 box shifted by half a stride overlaps two anchors equally, IoU 768/1280 = 0.6.
    gt = [[48, 56, 79, 87, 1]]  # between the anchors of x = 3 (40..71), x = 4 (56..87), y = 4
    base = generate_anchors(16, [1], [2])
    labels = run(AnchorLabelling(**ALL), gt, (8, 8), (128, 128), base)[0][0]
    assert iou(anchor_at(base, 0, 4, 3), gt[0]) == pytest.approx(0.6)
    positives = set(zip(*np.where(labels == 1)))
    assert positives == {(4, 3), (4, 4)}  # both tied anchors, although 0.6 < 0.7


def test_gt_box_far_from_all_anchors_makes_no_positive():
    # A tiny box at the image corner touches no inside anchor (the inside anchors start at 8).
    labels = run(AnchorLabelling(**ALL), [[0, 0, 3, 3, 1]], (8, 8), (128, 128),
                 generate_anchors(16, [1], [2]))[0]
    assert not (labels == 1).any()


@pytest.mark.parametrize('border', [0, 8, 1000])
def test_anchors_crossing_the_border_are_ignored(border):
    feat_hw, im_hw = (5, 7), (80, 112)
    labels, targets, inside, outside = run(AnchorLabelling(allowed_border=border, **ALL), [],
                                           feat_hw, im_hw)
    expected = reference_labels(generate_anchors(), feat_hw, im_hw, [], border=border)
    np.testing.assert_array_equal(labels, expected)
    ignored = np.repeat(expected[:, None] == -1, 4, axis=1)
    assert not outside[ignored].any()
    if border == 1000:
        assert (expected == 0).all()
    else:
        assert (expected == -1).any()


@pytest.mark.parametrize('border,first,last', [(0, 1, 4), (8, 0, 5)])
def test_border_edges(border, first, last):
    # 32 x 32 anchors spanning 16x - 8 .. 16x + 23 in a 103 x 103 image (pixels 0 .. 102): the
    # anchor of x = 5 ends at 103, one pixel past the image.
    labels = run(AnchorLabelling(allowed_border=border, **ALL), [], (8, 8), (103, 103),
                 generate_anchors(16, [1], [2]))[0][0]
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
    labels, targets, inside, outside = run(AnchorLabelling(), gt, feat_hw, im_hw)
    assert (labels == 1).sum() == 128
    assert (labels == 0).sum() == 128
    np.testing.assert_array_equal(outside[outside > 0], 1.0 / 256)


def test_few_positives_are_all_kept_and_negatives_fill_the_batch():
    labels = run(AnchorLabelling(), [[100, 100, 300, 250, 1]], (38, 50), (600, 800))[0]
    num_fg = (labels == 1).sum()
    assert 0 < num_fg < 128
    assert (labels == 0).sum() == 256 - num_fg


def test_image_without_gt_gets_only_negatives():
    labels, targets, inside, outside = run(AnchorLabelling(), np.zeros((0, 5)), (38, 50),
                                           (600, 800))
    assert (labels == 0).sum() == 256
    assert not (labels == 1).any()
    assert not targets.any() and not inside.any()
    assert (outside > 0).sum() == 256 * 4


def test_targets_and_weights_of_positive_anchors():
    base = generate_anchors()
    gt = [[20, 30, 140, 100, 1], [60, 10, 110, 150, 2]]
    rule = AnchorLabelling(inside_weights=(1.0, 0.5, 1.0, 0.25), **ALL)
    labels, targets, inside, outside = run(rule, gt, (10, 10), (160, 160))
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


def test_positive_weight_splits_outside_weights():
    labels, _, _, outside = run(AnchorLabelling(positive_weight=0.25),
                                [[100, 100, 300, 250, 1]], (38, 50), (600, 800))
    num_fg, num_bg = (labels == 1).sum(), (labels == 0).sum()
    pos = np.repeat((labels == 1)[:, None], 4, axis=1)
    neg = np.repeat((labels == 0)[:, None], 4, axis=1)
    np.testing.assert_allclose(outside[pos], 0.25 / num_fg)
    np.testing.assert_allclose(outside[neg], 0.75 / num_bg)


def test_a_positive_weight_outside_the_release_rule_is_refused():
    with pytest.raises(ValueError, match='positive_weight'):
        AnchorLabelling(positive_weight=1.5)


def test_sampling_follows_numpy_seed():
    gt = [[100, 100, 300, 250, 1], [400, 200, 700, 500, 2]]
    np.random.seed(5)
    first = run(AnchorLabelling(), gt, (38, 50), (600, 800))[0]
    np.random.seed(5)
    second = run(AnchorLabelling(), gt, (38, 50), (600, 800))[0]
    third = run(AnchorLabelling(), gt, (38, 50), (600, 800))[0]
    np.testing.assert_array_equal(first, second)
    assert (first != third).any()
