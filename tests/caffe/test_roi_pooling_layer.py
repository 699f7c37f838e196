import math

import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.testing import build_layer, check_gradient

ROI = '''name: "roi_pool5" type: "ROIPooling" bottom: "conv5" bottom: "rois" top: "pool5"
roi_pooling_param { pooled_h: %d pooled_w: %d spatial_scale: %r }'''
f32 = np.float32


def c_round(v):
    """C's round(): halves go away from zero (Python's round() goes to even)."""
    return int(math.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)


def roi_box(roi, scale, pooled_h, pooled_w):
    """The fork's box: float32 products rounded, at least 1 x 1, float32 bin sizes."""
    x1, y1, x2, y2 = (c_round(float(f32(v) * f32(scale))) for v in roi[1:])
    bin_h = f32(max(y2 - y1 + 1, 1)) / f32(pooled_h)
    bin_w = f32(max(x2 - x1 + 1, 1)) / f32(pooled_w)
    return x1, y1, x2, y2, bin_h, bin_w


def brute_forward(data, rois, pooled_h, pooled_w, scale):
    _, channels, height, width = data.shape
    out = np.zeros((len(rois), channels, pooled_h, pooled_w), np.float32)
    arg = np.full(out.shape, -1, np.int64)
    for r, roi in enumerate(rois):
        b = int(roi[0])
        x1, y1, _, _, bin_h, bin_w = roi_box(roi, scale, pooled_h, pooled_w)
        for i in range(pooled_h):
            hs = min(max(math.floor(f32(i) * bin_h) + y1, 0), height)
            he = min(max(math.ceil(f32(i + 1) * bin_h) + y1, 0), height)
            for j in range(pooled_w):
                ws = min(max(math.floor(f32(j) * bin_w) + x1, 0), width)
                we = min(max(math.ceil(f32(j + 1) * bin_w) + x1, 0), width)
                for c in range(channels):
                    cells = [(data[b, c, h, w], h * width + w)
                             for h in range(hs, he) for w in range(ws, we)]
                    if cells:
                        best = max(v for v, _ in cells)
                        out[r, c, i, j] = best
                        arg[r, c, i, j] = next(k for v, k in cells if v == best)
    return out, arg


def brute_backward(top_diff, arg, rois, data_shape, pooled_h, pooled_w, scale):
    """The fork's gather: each pixel sums the diffs of bins, in RoIs whose rounded box holds the
    pixel, that the pixel's offset maps back to and that took their max from it."""
    n_img, channels, height, width = data_shape
    diff = np.zeros(data_shape, np.float64)
    for n in range(n_img):
        for c in range(channels):
            for h in range(height):
                for w in range(width):
                    for r, roi in enumerate(rois):
                        if int(roi[0]) != n:
                            continue
                        x1, y1, x2, y2, bin_h, bin_w = roi_box(roi, scale, pooled_h, pooled_w)
                        if not (x1 <= w <= x2 and y1 <= h <= y2):
                            continue
                        lo_h = min(max(math.floor(f32(h - y1) / bin_h), 0), pooled_h)
                        hi_h = min(max(math.ceil(f32(h - y1 + 1) / bin_h), 0), pooled_h)
                        lo_w = min(max(math.floor(f32(w - x1) / bin_w), 0), pooled_w)
                        hi_w = min(max(math.ceil(f32(w - x1 + 1) / bin_w), 0), pooled_w)
                        for i in range(lo_h, hi_h):
                            for j in range(lo_w, hi_w):
                                if arg[r, c, i, j] == h * width + w:
                                    diff[n, c, h, w] += top_diff[r, c, i, j]
    return diff


def features(shape, seed=0):
    # Distinct values, at least 0.1 apart, negative and positive: the max never ties and the
    # checker's +-0.01 steps never change which pixel wins.
    rs = np.random.RandomState(seed)
    n = int(np.prod(shape))
    return ((rs.permutation(n) - n // 2) * 0.1).astype(np.float32).reshape(shape)


ROIS = np.array([
    [0, 0, 0, 95, 63],        # most of image 0
    [1, 8, 8, 40, 40],        # 8 * 1/16 = 0.5 rounds to 1 (C), 40/16 = 2.5 rounds to 3
    [1, -24, -40, 30, 20],    # partly outside: -1.5 -> -2, -2.5 -> -3; empty bins
    [0, 80, 10, 50, 30],      # x2 < x1 after scaling: forced to one column
    [0, 33, 33, 34, 34],      # tiny: one pixel
    [1, 200, 200, 260, 300],  # entirely outside: every bin empty
    [0.9, 16, 0, 80, 47],     # batch index truncates to 0
], dtype=np.float32)


@pytest.mark.parametrize('pooled', [(3, 2), (2, 2)])
def test_forward_matches_brute_force(pooled):
    data = features((2, 3, 4, 6))
    ph, pw = pooled
    layer, bottom, top = build_layer(ROI % (ph, pw, 0.0625), [data, ROIS])
    layer.forward(bottom, top)
    out, arg = brute_forward(data, ROIS, ph, pw, 0.0625)
    assert top[0].shape == (len(ROIS), 3, ph, pw)
    np.testing.assert_array_equal(top[0].data, out)
    np.testing.assert_array_equal(layer.argmax, arg)
    # The edge cases really were exercised: empty bins give 0 with argmax -1, and the fully
    # outside RoI pools nothing at all.
    assert (layer.argmax == -1).any() and (layer.argmax[5] == -1).all()
    assert (top[0].data[5] == 0).all()
    assert (top[0].data[layer.argmax >= 0] < 0).any()  # negative maxima are kept, not zeroed


def test_rounding_is_half_away_from_zero():
    data = np.arange(2 * 1 * 8 * 8, dtype=np.float32).reshape(2, 1, 8, 8)
    rois = np.array([[0, 40, 24, 40, 24]], np.float32)  # 2.5 -> 3 and 1.5 -> 2 at scale 1/16
    layer, bottom, top = build_layer(ROI % (1, 1, 0.0625), [data, rois])
    layer.forward(bottom, top)
    assert layer.argmax[0, 0, 0, 0] == 2 * 8 + 3
    assert top[0].data[0, 0, 0, 0] == data[0, 0, 2, 3]


def test_gradient_on_well_separated_values():
    data = features((2, 2, 5, 7), seed=1)
    rois = np.array([[0, 0, 0, 6, 4], [1, 1, 1, 5, 3], [1, 2, 0, 6, 4], [0, -2, -1, 3, 2]],
                    np.float32)
    layer, bottom, top = build_layer(ROI % (2, 3, 1.0), [data, rois])
    check_gradient(layer, bottom, top, check_bottom=[0], max_checks=40)


def test_backward_matches_the_forks_gather():
    data = features((2, 3, 4, 6), seed=2)
    layer, bottom, top = build_layer(ROI % (3, 2, 0.0625), [data, ROIS])
    layer.forward(bottom, top)
    dy = np.random.RandomState(3).randn(*top[0].shape).astype(np.float32)
    top[0].diff[...] = dy
    bottom[0].diff[...] = 5.0
    bottom[1].diff[...] = 5.0
    layer.backward(top, [True, True], bottom)
    expect = brute_backward(dy, layer.argmax, ROIS, data.shape, 3, 2, 0.0625)
    np.testing.assert_allclose(bottom[0].diff, expect, rtol=1e-6, atol=1e-6)
    assert (bottom[1].diff == 0).all()


def test_backward_drops_what_the_fork_drops():
    # Malformed RoI (x2 < x1): forward pools the pixel at the start, the fork's backward passes
    # it nothing. Rows 0..6 into 13 bins: the last bin reaches row 7 (float rounding), outside
    # the RoI, so a maximum there gets no gradient either.
    data = features((1, 1, 9, 9), seed=4)
    data[0, 0, 7, :] = 100 + np.arange(9)
    rois = np.array([[0, 4, 2, 1, 2], [0, 0, 0, 8, 6]], np.float32)
    layer, bottom, top = build_layer(ROI % (13, 1, 1.0), [data, rois])
    layer.forward(bottom, top)
    assert layer.argmax[0, 0, 0, 0] == 2 * 9 + 4
    assert layer.argmax[1, 0, 12, 0] == 7 * 9 + 8
    top[0].diff[...] = 1.0
    layer.backward(top, [True, False], bottom)
    expect = brute_backward(top[0].diff, layer.argmax, rois, data.shape, 13, 1, 1.0)
    np.testing.assert_array_equal(bottom[0].diff, expect)
    assert bottom[0].diff[0, 0, 2, 4] == 0 and bottom[0].diff[0, 0, 7, 8] == 0


def test_rois_may_be_4d_and_empty():
    data = features((1, 2, 3, 3))
    layer, bottom, top = build_layer(ROI % (2, 2, 1.0),
                                     [data, np.zeros((0, 5, 1, 1), np.float32)])
    layer.forward(bottom, top)
    assert top[0].shape == (0, 2, 2, 2)


@pytest.mark.parametrize('index', [2, -1, np.nan])
def test_bad_batch_index(index):
    data = features((2, 1, 3, 3))
    rois = np.array([[index, 0, 0, 1, 1]], np.float32)
    layer, bottom, top = build_layer(ROI % (2, 2, 1.0), [data, rois])
    with pytest.raises(CaffeError, match='roi_pool5.*batch index'):
        layer.forward(bottom, top)


def test_bad_params_and_shapes():
    data = features((1, 1, 3, 3))
    with pytest.raises(CaffeError, match='pooled_h'):
        build_layer(ROI % (0, 2, 1.0), [data, np.zeros((1, 5), np.float32)])
    with pytest.raises(CaffeError, match='rois'):
        build_layer(ROI % (2, 2, 1.0), [data, np.zeros((1, 4), np.float32)])


def test_many_rois_and_channels_split_across_threads():
    # Enough work for the kernels to share RoIs (forward) and channels (backward) out to the
    # OpenMP threads; the results must still be the fork's, RoI by RoI and pixel by pixel.
    rs = np.random.RandomState(7)
    data = features((2, 24, 14, 16), seed=5)
    x1, y1 = rs.randint(-40, 230, 50), rs.randint(-40, 200, 50)
    rois = np.stack([rs.randint(0, 2, 50), x1, y1, x1 + rs.randint(0, 160, 50),
                     y1 + rs.randint(0, 120, 50)], axis=1).astype(np.float32)
    layer, bottom, top = build_layer(ROI % (7, 7, 0.0625), [data, rois])
    layer.forward(bottom, top)
    out, arg = brute_forward(data, rois, 7, 7, 0.0625)
    np.testing.assert_array_equal(top[0].data, out)
    np.testing.assert_array_equal(layer.argmax, arg)
    dy = rs.randn(*top[0].shape).astype(np.float32)
    top[0].diff[...] = dy
    layer.backward(top, [True, False], bottom)
    expect = brute_backward(dy, layer.argmax, rois, data.shape, 7, 7, 0.0625)
    np.testing.assert_allclose(bottom[0].diff, expect, rtol=1e-5, atol=1e-6)
