import math

import numpy as np
import pytest

from core.boxes import bbox_transform, bbox_transform_inv, clip_boxes


def random_boxes(rng, n, size=200):
    x1 = rng.rand(n) * size
    y1 = rng.rand(n) * size
    return np.stack([x1, y1, x1 + rng.rand(n) * size, y1 + rng.rand(n) * size], axis=1)


def test_targets_known_value():
    # ex: 10 x 10, center (5, 5); gt: 20 x 10, center (15, 5) (paper Eq. 2).
    targets = bbox_transform(np.array([[0., 0., 9., 9.]]), np.array([[5., 0., 24., 9.]]))
    np.testing.assert_allclose(targets, [[1.0, 0.0, math.log(2), 0.0]], atol=1e-15)


def test_targets_match_eq2_elementwise():
    rng = np.random.RandomState(0)
    ex, gt = random_boxes(rng, 30), random_boxes(rng, 30)
    targets = bbox_transform(ex, gt)
    for t, a, g in zip(targets, ex, gt):
        wa, ha = a[2] - a[0] + 1, a[3] - a[1] + 1
        wg, hg = g[2] - g[0] + 1, g[3] - g[1] + 1
        ax, ay = a[0] + 0.5 * wa, a[1] + 0.5 * ha
        gx, gy = g[0] + 0.5 * wg, g[1] + 0.5 * hg
        np.testing.assert_allclose(
            t, [(gx - ax) / wa, (gy - ay) / ha, math.log(wg / wa), math.log(hg / ha)],
            rtol=1e-12, atol=1e-12)


def test_round_trip_follows_the_release_convention():
    # Decoding the targets gives back x1, y1 exactly and x2 + 1, y2 + 1: the release's decoder
    # puts x2 at cx + w/2 where the encoder's x2 is cx + w/2 - 1.
    rng = np.random.RandomState(1)
    ex, gt = random_boxes(rng, 50), random_boxes(rng, 50)
    pred = bbox_transform_inv(ex, bbox_transform(ex, gt))
    np.testing.assert_allclose(pred[:, :2], gt[:, :2], atol=1e-9)
    np.testing.assert_allclose(pred[:, 2:], gt[:, 2:] + 1, atol=1e-9)


def test_inverse_multi_class_matches_per_class_and_formula():
    rng = np.random.RandomState(2)
    boxes = random_boxes(rng, 20)
    deltas = rng.randn(20, 12) * 0.3
    pred = bbox_transform_inv(boxes, deltas)
    assert pred.shape == (20, 12)
    for k in range(3):
        np.testing.assert_array_equal(pred[:, 4 * k:4 * k + 4],
                                      bbox_transform_inv(boxes, deltas[:, 4 * k:4 * k + 4]))
    for b, d, p in zip(boxes, deltas, pred):
        w, h = b[2] - b[0] + 1, b[3] - b[1] + 1
        cx, cy = b[0] + 0.5 * w, b[1] + 0.5 * h
        for k in range(3):
            dx, dy, dw, dh = d[4 * k:4 * k + 4]
            pcx, pcy = dx * w + cx, dy * h + cy
            pw, ph = math.exp(dw) * w, math.exp(dh) * h
            np.testing.assert_allclose(
                p[4 * k:4 * k + 4],
                [pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw, pcy + 0.5 * ph], rtol=1e-12)


def test_zero_deltas_keep_boxes():
    boxes = np.array([[10., 20., 29., 59.]])
    np.testing.assert_array_equal(bbox_transform_inv(boxes, np.zeros((1, 4))),
                                  [[10., 20., 30., 60.]])


def test_dtypes_and_empty():
    rng = np.random.RandomState(3)
    ex, gt = random_boxes(rng, 5).astype(np.float32), random_boxes(rng, 5).astype(np.float32)
    assert bbox_transform(ex, gt).dtype == np.float32
    assert bbox_transform(ex.astype(np.float64), gt.astype(np.float64)).dtype == np.float64
    assert bbox_transform(np.array([[0, 0, 9, 9]]), np.array([[0, 0, 9, 9]])).dtype == np.float64
    assert bbox_transform_inv(ex.astype(np.float64), np.zeros((5, 8), np.float32)).dtype \
        == np.float32
    assert bbox_transform_inv(ex, np.zeros((5, 4))).dtype == np.float64

    empty = bbox_transform(np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32))
    assert empty.shape == (0, 4) and empty.dtype == np.float32
    empty = bbox_transform_inv(np.zeros((0, 4)), np.zeros((0, 84), np.float32))
    assert empty.shape == (0, 84) and empty.dtype == np.float32


def test_mismatched_inputs():
    with pytest.raises(ValueError):
        bbox_transform(np.zeros((2, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError):
        bbox_transform_inv(np.zeros((2, 4)), np.zeros((2, 6)))


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_clip_boxes(dtype):
    rng = np.random.RandomState(4)
    height, width = 50, 80  # not square, so x and y limits cannot be swapped unnoticed
    boxes = (rng.rand(40, 8) * 200 - 50).astype(dtype)
    original = boxes.copy()
    out = clip_boxes(boxes, (height, width, 3))
    assert out is boxes and out.dtype == dtype
    for col in range(8):
        limit = width if col % 2 == 0 else height
        expected = [min(max(v, 0), limit - 1) for v in original[:, col]]
        np.testing.assert_array_equal(out[:, col], np.array(expected, dtype=dtype))
    np.testing.assert_array_equal(clip_boxes(original.copy(), (height, width)), out)
    assert clip_boxes(np.zeros((0, 4), dtype), (10, 10)).shape == (0, 4)
