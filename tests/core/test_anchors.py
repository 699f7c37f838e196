import numpy as np
import pytest

from core.anchors import RATIOS, SCALES, AnchorGrids, generate_anchors, shifted_anchors

# The anchors of Shaoqing Ren's MATLAB code (1-based pixel indices), as quoted in the release's
# generate_anchors.py; the Python release uses 0-based pixels, i.e. this table minus 1.
MATLAB_ANCHORS = np.array([
    [-83, -39, 100, 56],
    [-175, -87, 192, 104],
    [-359, -183, 376, 200],
    [-55, -55, 72, 72],
    [-119, -119, 136, 136],
    [-247, -247, 264, 264],
    [-35, -79, 52, 96],
    [-79, -167, 96, 184],
    [-167, -343, 184, 360],
], dtype=np.float64)


def test_default_anchors_match_published_table():
    anchors = generate_anchors()
    assert anchors.shape == (9, 4)
    assert anchors.dtype == np.float64
    np.testing.assert_array_equal(anchors, MATLAB_ANCHORS - 1)
    np.testing.assert_array_equal(anchors[0], [-84, -40, 99, 55])


def test_the_named_defaults_give_the_published_anchors():
    # The paper's scales and ratios, as the layers' param_str defaults name them.
    assert SCALES == (8, 16, 32) and RATIOS == (0.5, 1.0, 2.0)
    anchors = generate_anchors(ratios=list(RATIOS), scales=np.array(SCALES))
    np.testing.assert_array_equal(anchors, MATLAB_ANCHORS - 1)


def _sizes(anchors):
    return anchors[:, 2] - anchors[:, 0] + 1, anchors[:, 3] - anchors[:, 1] + 1


def test_anchor_areas_ratios_and_centers():
    ratios = [0.5, 1, 2]
    scales = [8, 16, 32]
    anchors = generate_anchors(16, ratios, np.array(scales))
    w, h = _sizes(anchors)
    for row, (ratio, scale) in enumerate((r, s) for r in ratios for s in scales):
        # Whole-pixel rounding of the 16-pixel base shape moves areas and ratios a little.
        assert abs(w[row] * h[row] / (16.0 * scale) ** 2 - 1) < 0.1
        assert abs(h[row] / w[row] / ratio - 1) < 0.05
    np.testing.assert_allclose((anchors[:, 0] + anchors[:, 2]) / 2, 7.5)
    np.testing.assert_allclose((anchors[:, 1] + anchors[:, 3]) / 2, 7.5)


def test_custom_ratios_and_scales():
    # A 32 x 32 box centered on the base box's center (7.5, 7.5).
    np.testing.assert_array_equal(generate_anchors(16, [1], [2]), [[-8, -8, 23, 23]])
    anchors = generate_anchors(16, (0.5, 1, 2, 3), (4, 8))
    assert anchors.shape == (8, 4)
    w, h = _sizes(anchors)
    # Ratio-major: consecutive rows share a shape and double in size.
    np.testing.assert_allclose(w[1::2] / w[0::2], 2)
    np.testing.assert_allclose(h[1::2] / h[0::2], 2)


def test_shifted_anchors_matches_a_brute_force_loop():
    anchors = generate_anchors()
    feat_h, feat_w, stride = 3, 5, 16
    out = shifted_anchors(anchors, feat_h, feat_w, stride)
    assert out.shape == (feat_h * feat_w * 9, 4)
    expected = []
    for y in range(feat_h):
        for x in range(feat_w):
            for a in range(9):
                expected.append(anchors[a] + [x * stride, y * stride, x * stride, y * stride])
    np.testing.assert_array_equal(out, np.array(expected))


def test_shifted_anchors_order_matches_rpn_output_layout():
    # The RPN predicts (1, A*4, H, W); proposal and anchor-target layers read it as
    # transpose(0, 2, 3, 1).reshape(-1, 4). Row r of that must belong to row r's anchor.
    num_a, feat_h, feat_w = 3, 4, 6
    anchors = generate_anchors(16, [0.5, 1, 2], [8])
    pred = np.zeros((1, num_a * 4, feat_h, feat_w))
    for a in range(num_a):
        for y in range(feat_h):
            for x in range(feat_w):
                pred[0, a * 4:(a + 1) * 4, y, x] = (a, y, x, 0)
    tags = pred.transpose(0, 2, 3, 1).reshape(-1, 4)
    out = shifted_anchors(anchors, feat_h, feat_w, 16)
    for row, (a, y, x, _) in enumerate(tags.astype(int)):
        np.testing.assert_array_equal(out[row], anchors[a] + [16 * x, 16 * y, 16 * x, 16 * y])


def test_shifted_anchors_keeps_float32_and_handles_empty_maps():
    anchors = generate_anchors().astype(np.float32)
    assert shifted_anchors(anchors, 2, 2, 16).dtype == np.float32
    assert shifted_anchors(anchors, 0, 7, 16).shape == (0, 4)
    with pytest.raises(ValueError):
        shifted_anchors(np.zeros((9, 5)), 2, 2, 16)


def test_anchor_grids_keep_each_size_read_only_and_bounded():
    anchors = generate_anchors()
    grids = AnchorGrids(anchors, 16, max_sizes=2)
    first = grids(3, 5)
    np.testing.assert_array_equal(first, shifted_anchors(anchors, 3, 5, 16))
    assert grids(3, 5) is first and not first.flags.writeable
    np.testing.assert_array_equal(grids(4, 2), shifted_anchors(anchors, 4, 2, 16))
    np.testing.assert_array_equal(grids(2, 4), shifted_anchors(anchors, 2, 4, 16))
    assert grids(3, 5) is not first  # the oldest size was dropped past max_sizes
    with pytest.raises(ValueError):
        first[0, 0] = 1
