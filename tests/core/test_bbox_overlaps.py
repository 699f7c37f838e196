import numpy as np
import pytest

from core.boxes import box_coverage, box_overlaps as bbox_overlaps


def brute_force_iou(a, b):
    """IoU of two boxes with inclusive pixel corners; 0 when they do not overlap."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return iw * ih / (area_a + area_b - iw * ih)


def random_boxes(rng, n, degenerate=True):
    x1 = rng.randint(0, 50, n).astype(float)
    y1 = rng.randint(0, 50, n).astype(float)
    boxes = np.stack([x1, y1, x1 + rng.randint(0, 30, n), y1 + rng.randint(0, 30, n)], axis=1)
    boxes[: n // 3] += rng.rand(n // 3, 4) * 3  # fractional coordinates
    if degenerate:
        boxes[0, 2] = boxes[0, 0] - 1  # zero width
        boxes[1, 3] = boxes[1, 1] - 1  # zero height
        boxes[2, 2:] = boxes[2, :2]  # one pixel
        boxes[3, 2] = boxes[3, 0] - 5  # inverted
        boxes[4] = boxes[5]  # duplicate
    return boxes


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_matches_brute_force(seed):
    rng = np.random.RandomState(seed)
    boxes, query = random_boxes(rng, 40), random_boxes(rng, 25)
    expected = np.array([[brute_force_iou(b, q) for q in query] for b in boxes])
    out = bbox_overlaps(boxes, query)
    assert out.shape == (40, 25) and out.dtype == np.float64
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=0)
    assert (expected > 0).sum() > 50  # the random sets do overlap


def test_known_values():
    box = np.array([[0, 0, 9, 9]], dtype=np.float64)
    query = np.array([
        [0, 0, 9, 9],  # same box
        [0, 0, 9, 19],  # twice as tall: 100 / 200
        [5, 5, 14, 14],  # 25 / (100 + 100 - 25)
        [9, 0, 18, 9],  # one shared column: 10 / 190
        [10, 0, 19, 9],  # touching, no shared pixel
    ], dtype=np.float64)
    np.testing.assert_allclose(bbox_overlaps(box, query),
                               [[1, 0.5, 25 / 175, 10 / 190, 0]], rtol=1e-15)


def test_float32_and_extra_columns():
    rng = np.random.RandomState(3)
    boxes = random_boxes(rng, 10, degenerate=False).round()
    gt = np.hstack([random_boxes(rng, 4, degenerate=False).round(), np.arange(4)[:, None] + 1])
    expected = bbox_overlaps(boxes, gt[:, :4])
    np.testing.assert_array_equal(bbox_overlaps(boxes.astype(np.float32), gt), expected)
    np.testing.assert_array_equal(bbox_overlaps(boxes.astype(np.int64).tolist(), gt), expected)


def test_empty_inputs():
    assert bbox_overlaps(np.zeros((0, 4)), np.ones((3, 4))).shape == (0, 3)
    assert bbox_overlaps(np.ones((2, 4)), np.zeros((0, 4))).shape == (2, 0)


def test_bad_shape():
    with pytest.raises(ValueError, match='query_boxes'):
        bbox_overlaps(np.zeros((2, 4)), np.zeros((2, 3)))


def test_box_coverage_counts_pixels_and_agrees_with_pycocotools_crowd_iou():
    from pycocotools import mask as coco_mask

    rng = np.random.RandomState(3)

    def integer_boxes(n):
        x1, y1 = rng.randint(0, 60, n), rng.randint(0, 60, n)
        return np.stack([x1, y1, x1 + rng.randint(0, 35, n), y1 + rng.randint(0, 35, n)],
                        axis=1).astype(float)
    boxes, regions = integer_boxes(40), integer_boxes(7)
    coverage = box_coverage(boxes, regions)
    # brute force: the box's pixels that are also the region's, over the box's pixels
    for i, b in enumerate(boxes.astype(int)):
        inside = np.zeros((100, 100), bool)
        inside[b[1]:b[3] + 1, b[0]:b[2] + 1] = True
        for k, r in enumerate(regions.astype(int)):
            region = np.zeros((100, 100), bool)
            region[r[1]:r[3] + 1, r[0]:r[2] + 1] = True
            assert coverage[i, k] == pytest.approx((inside & region).sum() / inside.sum())
    # COCO's own measure for a detection against a crowd ([x, y, w, h], w = x2 - x1 + 1)
    xywh = lambda b: np.hstack((b[:, :2], b[:, 2:4] - b[:, :2] + 1))  # noqa: E731
    expected = coco_mask.iou(xywh(boxes), xywh(regions), [1] * len(regions))
    np.testing.assert_allclose(coverage, expected, rtol=1e-12)
    assert box_coverage(np.zeros((0, 4)), regions).shape == (0, 7)
