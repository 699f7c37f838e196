"""Pooling layer: Caffe's ceil-rounded output size (floor with round_mode FLOOR), MAX (with its
mask top) and AVE (padding counted in the divisor) against brute-force loops and hand-computed
numbers, STOCHASTIC (draws in proportion to the values in training, the self-weighted average at
test), gradients by finite differences, and parameter errors."""
import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.layers.pooling import pooled_size
from caffe.testing import build_layer, check_gradient

FLT_MAX = float(np.finfo(np.float32).max)


def pool_text(params, tops=('y',)):
    return ('name: "pool" type: "Pooling" bottom: "x" %s pooling_param { %s }'
            % (' '.join('top: "%s"' % t for t in tops), params))


def brute_out_size(size, k, p, s, floor=False):
    # Caffe: ceil (or floor) division, then (with padding only) drop a last window starting at
    # in + pad.
    out = ((size + 2 * p - k) // s if floor else -(-(size + 2 * p - k) // s)) + 1
    if p > 0 and (out - 1) * s >= size + p:
        out -= 1
    return out


def brute_pool(x, method, k, p, s, floor=False):
    """Returns (top, argmax) from the window rules written out per output position."""
    num, channels, height, width = x.shape
    out_h = brute_out_size(height, k[0], p[0], s[0], floor)
    out_w = brute_out_size(width, k[1], p[1], s[1], floor)
    top = np.zeros((num, channels, out_h, out_w))
    argmax = np.full(top.shape, -1)
    for n in range(num):
        for c in range(channels):
            for oh in range(out_h):
                for ow in range(out_w):
                    h0, w0 = oh * s[0] - p[0], ow * s[1] - p[1]
                    rows = [h for h in range(h0, h0 + k[0]) if 0 <= h < height]
                    cols = [w for w in range(w0, w0 + k[1]) if 0 <= w < width]
                    if method == 'MAX':
                        best, where = -np.inf, -1
                        for h in rows:
                            for w in cols:
                                if x[n, c, h, w] > best:
                                    best, where = x[n, c, h, w], h * width + w
                        top[n, c, oh, ow], argmax[n, c, oh, ow] = best, where
                    else:
                        # The divisor counts padding but not what lies past in + pad.
                        size_h = min(h0 + k[0], height + p[0]) - h0
                        size_w = min(w0 + k[1], width + p[1]) - w0
                        total = sum(float(x[n, c, h, w]) for h in rows for w in cols)
                        top[n, c, oh, ow] = total / (size_h * size_w)
    return top, argmax


@pytest.mark.parametrize('size,k,p,s,expected', [
    (7, 3, 1, 2, 4),    # ceil((7+2-3)/2)+1 = 4; the last window starts at 5 < 8: kept
    (6, 3, 0, 2, 3),    # ceil(3/2)+1 = 3 where floor rounding would give 2
    (5, 2, 1, 2, 3),    # ceil(5/2)+1 = 4, but window 3 would start at 6 >= 5+1: dropped
    (4, 3, 2, 3, 2),    # ceil(5/3)+1 = 3, window 2 would start at 6 >= 4+2: dropped
    (13, 3, 0, 2, 6),   # exact division: (13-3)/2+1
    (5, 1, 0, 3, 3),    # no padding: Caffe keeps a last window that starts past the image
])
def test_pooled_size_follows_caffe(size, k, p, s, expected):
    assert pooled_size(size, k, p, s) == expected
    assert brute_out_size(size, k, p, s) == expected


# (pool params, (kh, kw), (ph, pw), (sh, sw), input shape)
CASES = {
    'k3_s2_p1_keeps_last': ('kernel_size: 3 stride: 2 pad: 1', (3, 3), (1, 1), (2, 2),
                            (2, 2, 7, 7)),
    'k2_s2_p1_drops_last': ('kernel_size: 2 stride: 2 pad: 1', (2, 2), (1, 1), (2, 2),
                            (1, 2, 5, 5)),
    'k3_s3_p2_drops_last': ('kernel_size: 3 stride: 3 pad: 2', (3, 3), (2, 2), (3, 3),
                            (1, 2, 4, 4)),
    'ceil_no_pad': ('kernel_size: 3 stride: 2', (3, 3), (0, 0), (2, 2), (2, 3, 6, 8)),
    'rectangular_hw': ('kernel_h: 3 kernel_w: 2 pad_h: 1 pad_w: 0 stride_h: 2 stride_w: 1',
                       (3, 2), (1, 0), (2, 1), (1, 2, 7, 5)),
    'overlapping_k3_s1_p1': ('kernel_size: 3 stride: 1 pad: 1', (3, 3), (1, 1), (1, 1),
                             (1, 2, 5, 6)),
}


def distinct_input(shape, seed):
    # Values at least 0.05 apart: a finite-difference step of 0.01 cannot change any argmax.
    r = np.random.RandomState(seed)
    return (r.permutation(int(np.prod(shape))).reshape(shape) * 0.05 - 2.0).astype(np.float32)


@pytest.mark.parametrize('method', ['MAX', 'AVE'])
@pytest.mark.parametrize('case', sorted(CASES))
def test_forward_matches_brute_force(case, method):
    params, k, p, s, shape = CASES[case]
    x = np.random.RandomState(0).randn(*shape).astype(np.float32)
    tops = ('y', 'mask') if method == 'MAX' else ('y',)
    layer, bottom, top = build_layer(pool_text('pool: %s %s' % (method, params), tops), [x])
    layer.forward(bottom, top)
    expected, argmax = brute_pool(x, method, k, p, s)
    assert top[0].shape == expected.shape
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-6, atol=1e-6)
    if method == 'MAX':
        np.testing.assert_array_equal(top[1].data, argmax)


@pytest.mark.parametrize('method', ['MAX', 'AVE'])
@pytest.mark.parametrize('case', sorted(CASES))
def test_gradient(case, method):
    params, _, _, _, shape = CASES[case]
    layer, bottom, top = build_layer(pool_text('pool: %s %s' % (method, params)),
                                     [distinct_input(shape, 1)])
    check_gradient(layer, bottom, top, max_checks=40)


def test_ave_border_divisors_count_padding_by_hand():
    # 4x4 ones, kernel 3, stride 2, pad 1 -> 3x3 outputs. A window's divisor is its extent
    # clipped to in + pad = 5: 3 for windows starting at -1 or 1, 2 for the one at 3.
    layer, bottom, top = build_layer(pool_text('pool: AVE kernel_size: 3 stride: 2 pad: 1'),
                                     [np.ones((1, 1, 4, 4))])
    layer.forward(bottom, top)
    expected = [[4 / 9., 6 / 9., 2 / 6.],
                [6 / 9., 9 / 9., 3 / 6.],
                [2 / 6., 3 / 6., 1 / 4.]]
    np.testing.assert_allclose(top[0].data[0, 0], expected, rtol=1e-6)


def test_max_ignores_padding_and_takes_first_of_ties():
    x = np.full((1, 1, 3, 4), -5.0, np.float32)
    x[0, 0, 2, 3] = -1.0
    layer, bottom, top = build_layer(pool_text('pool: MAX kernel_size: 2 stride: 2 pad: 1',
                                               ('y', 'mask')), [x])
    layer.forward(bottom, top)
    # Padding is never the maximum, even against all-negative inputs.
    np.testing.assert_array_equal(top[0].data[0, 0], [[-5, -5, -5], [-5, -5, -1]])
    # Ties go to the first position in row-major scan order of the clipped window.
    np.testing.assert_array_equal(top[1].data[0, 0], [[0, 1, 3], [4, 5, 11]])


def test_max_backward_routes_to_argmax_and_sums_overlaps():
    x = np.zeros((1, 1, 3, 3), np.float32)
    x[0, 0, 1, 1] = 1.0   # the centre wins all four overlapping 2x2 windows
    layer, bottom, top = build_layer(pool_text('pool: MAX kernel_size: 2 stride: 1'), [x])
    layer.forward(bottom, top)
    top[0].diff[...] = [[[[1, 2], [3, 4]]]]
    bottom[0].diff[...] = 99
    layer.backward(top, [True], bottom)
    expected = np.zeros((3, 3))
    expected[1, 1] = 10
    np.testing.assert_array_equal(bottom[0].diff[0, 0], expected)


def test_ave_backward_spreads_diff_over_pool_size():
    layer, bottom, top = build_layer(pool_text('pool: AVE kernel_size: 3 stride: 2 pad: 1'),
                                     [np.ones((1, 1, 4, 4))])
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    layer.backward(top, [True], bottom)
    # Per axis, windows starting at -1 and 1 divide by 3 and the one at 3 by 2 (clipped to 5).
    divisors = [[9, 9, 6], [9, 9, 6], [6, 6, 4]]
    expected = np.zeros((4, 4))
    for oh in range(3):
        for ow in range(3):
            for h in range(max(oh * 2 - 1, 0), min(oh * 2 + 2, 4)):
                for w in range(max(ow * 2 - 1, 0), min(ow * 2 + 2, 4)):
                    expected[h, w] += 1.0 / divisors[oh][ow]
    np.testing.assert_allclose(bottom[0].diff[0, 0], expected, rtol=1e-6)


@pytest.mark.parametrize('method', ['MAX', 'AVE'])
def test_global_pooling(method):
    x = np.random.RandomState(2).randn(2, 3, 4, 5).astype(np.float32)
    layer, bottom, top = build_layer(pool_text('pool: %s global_pooling: true' % method), [x])
    layer.forward(bottom, top)
    assert top[0].shape == (2, 3, 1, 1)
    expected = x.max(axis=(2, 3)) if method == 'MAX' else x.astype(np.float64).mean(axis=(2, 3))
    np.testing.assert_allclose(top[0].data[:, :, 0, 0], expected, rtol=1e-6, atol=1e-6)
    # The kernel follows the bottom when it is reshaped.
    bottom[0].reshape(1, 3, 6, 2)
    layer.reshape(bottom, top)
    assert top[0].shape == (1, 3, 1, 1)


def test_empty_window_without_padding_is_caffes():
    # kernel 1, stride 3 on 5 pixels: Caffe keeps a third window at 6, past the image, which
    # MAX reports as -FLT_MAX with no argmax (and no gradient).
    x = np.arange(5, dtype=np.float32).reshape(1, 1, 1, 5)
    layer, bottom, top = build_layer(
        pool_text('pool: MAX kernel_h: 1 kernel_w: 1 stride_h: 1 stride_w: 3', ('y', 'm')), [x])
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data[0, 0, 0], [0, 3, -FLT_MAX])
    np.testing.assert_array_equal(top[1].data[0, 0, 0], [0, 3, -1])
    top[0].diff[...] = 1
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff[0, 0, 0], [1, 0, 0, 1, 0])


def test_no_bottom_diff_without_propagate_down():
    layer, bottom, top = build_layer(pool_text('pool: MAX kernel_size: 2'),
                                     [np.ones((1, 1, 4, 4))])
    layer.forward(bottom, top)
    bottom[0].diff[...] = 3
    layer.backward(top, [False], bottom)
    assert (bottom[0].diff == 3).all()


@pytest.mark.parametrize('params,tops,message', [
    ('pool: STOCHASTIC kernel_size: 2 pad: 1', ('y',), 'no padding'),
    ('pool: STOCHASTIC kernel_size: 2', ('y', 'mask'), 'mask top only with MAX'),
    ('pool: MAX', ('y',), 'kernel_size'),
    ('pool: MAX kernel_size: 2 kernel_h: 2 kernel_w: 2', ('y',), 'not both'),
    ('pool: MAX kernel_h: 2', ('y',), 'together'),
    ('pool: MAX kernel_size: 2 pad: 2', ('y',), 'pad'),
    ('pool: MAX global_pooling: true kernel_size: 2', ('y',), 'global_pooling'),
    ('pool: AVE global_pooling: true stride: 2', ('y',), 'global_pooling'),
    ('pool: AVE kernel_size: 2', ('y', 'mask'), 'mask'),
    ('pool: MAX kernel_size: 2 stride: 0', ('y',), 'positive'),
    ('pool: MAX kernel_size: 9', ('y',), 'does not fit'),
])
def test_bad_parameters_name_the_layer(params, tops, message):
    with pytest.raises(CaffeError, match=message) as info:
        build_layer('name: "bad_pool" type: "Pooling" bottom: "x" %s pooling_param { %s }'
                    % (' '.join('top: "%s"' % t for t in tops), params), [np.zeros((1, 1, 5, 5))])
    assert 'bad_pool' in str(info.value)


def caffe_ave_loops(x, k, s, p, dy):
    """Caffe's AVE loops in float32: each output sums its window (rows, then columns) from 0 and
    divides by the window clipped to in + pad; backward spreads each share over the window,
    outputs in row-major order."""
    height, width = x.shape
    out_h, out_w = pooled_size(height, k, p, s), pooled_size(width, k, p, s)
    y = np.zeros((out_h, out_w), np.float32)
    dx = np.zeros_like(x)
    for oh in range(out_h):
        for ow in range(out_w):
            hs, ws = oh * s - p, ow * s - p
            he, we = min(hs + k, height + p), min(ws + k, width + p)
            size = np.float32((he - hs) * (we - ws))
            total = np.float32(0)
            for h in range(max(hs, 0), min(he, height)):
                for w in range(max(ws, 0), min(we, width)):
                    total = np.float32(total + x[h, w])
            y[oh, ow] = total / size
            share = np.float32(dy[oh, ow] / size)
            for h in range(max(hs, 0), min(he, height)):
                for w in range(max(ws, 0), min(we, width)):
                    dx[h, w] = np.float32(dx[h, w] + share)
    return y, dx


def check_ave_against_caffe_loops(x, k, s, p, r):
    """AVE pooling of the (1, 1, H, W) x forward, and backward of a diff drawn from r, equal
    bit for bit to Caffe's loops."""
    layer, bottom, top = build_layer(
        'name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: AVE '
        'kernel_size: %d stride: %d pad: %d }' % (k, s, p), [x])
    layer.forward(bottom, top)
    dy = (r.randn(*top[0].shape) * np.exp2(r.randint(-8, 9, top[0].shape))).astype(np.float32)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    y, dx = caffe_ave_loops(x[0, 0], k, s, p, dy[0, 0])
    np.testing.assert_array_equal(top[0].data[0, 0], y)
    np.testing.assert_array_equal(bottom[0].diff[0, 0], dx)


@pytest.mark.parametrize('k,s,p', [(3, 1, 1), (3, 2, 1), (5, 1, 2), (4, 3, 2), (2, 2, 0), (7, 1, 3)])
def test_ave_sums_in_caffes_order(k, s, p):
    # The kernels sum whole rows of outputs at a time where the window is inside the image;
    # every output must still get Caffe's float32 sums, bit for bit, and so must every pixel
    # of the backward pass (their shares added in Caffe's order). Values of widely different
    # magnitudes make any other order round differently.
    r = np.random.RandomState(k * 10 + s)
    x = (r.randn(1, 1, 13, 17) * np.exp2(r.randint(-8, 9, (1, 1, 13, 17)))).astype(np.float32)
    check_ave_against_caffe_loops(x, k, s, p, r)


@pytest.mark.parametrize('k,s,p,width', [(3, 1, 1, 1300), (3, 2, 1, 1300), (3, 1, 1, 515),
                                         (3, 1, 1, 516), (3, 1, 1, 3), (3, 1, 1, 4)])
def test_ave_of_wide_rows_in_caffes_order(k, s, p, width):
    # Output rows wider than the 512 outputs whose shares the backward kernel forms together,
    # ending in a last group of 1 or 2 interior outputs (515, 516 pixels) or having only 1 or
    # 2 (3, 4 pixels): the edges of the one-pass, three-tap loops.
    r = np.random.RandomState(k + s + width)
    x = (r.randn(1, 1, 4, width) * np.exp2(r.randint(-8, 9, (1, 1, 4, width)))).astype(np.float32)
    check_ave_against_caffe_loops(x, k, s, p, r)


@pytest.mark.parametrize('params,k,p,s', [
    ('kernel_size: 3 stride: 2 pad: 1', (3, 3), (1, 1), (2, 2)),   # ZF's pool1/pool2
    ('kernel_size: 2 stride: 1', (2, 2), (0, 0), (1, 1)),
    ('kernel_h: 2 kernel_w: 4 stride_h: 1 stride_w: 3 pad_h: 0 pad_w: 2', (2, 4), (0, 2), (1, 3)),
])
def test_max_wide_rows_with_ties_match_brute_force(params, k, p, s):
    # Rows wide enough for the kernel's row-at-a-time pass over the interior outputs, and
    # values from a handful of levels, so most windows hold ties (the first in scan order
    # wins); a run of -inf inside one row (every window also covers finite rows).
    r = np.random.RandomState(12)
    x = r.randint(-2, 3, size=(2, 3, 9, 61)).astype(np.float32)
    x[0, 0, 4, 10:20] = -np.inf
    layer, bottom, top = build_layer(pool_text('pool: MAX %s' % params, ('y', 'mask')), [x])
    layer.forward(bottom, top)
    expected, argmax = brute_pool(x, 'MAX', k, p, s)
    np.testing.assert_array_equal(top[1].data, argmax)
    np.testing.assert_array_equal(top[0].data, expected)


# round_mode FLOOR ------------------------------------------------------------------------------
@pytest.mark.parametrize('method', ['MAX', 'AVE'])
@pytest.mark.parametrize('size,k,p,s', [(8, 3, 1, 2), (7, 2, 0, 2), (9, 3, 0, 3), (6, 4, 2, 3)])
def test_floor_rounding(method, size, k, p, s):
    x = np.random.RandomState(0).randn(2, 2, size, size - 1).astype(np.float32)
    layer, bottom, top = build_layer(pool_text('pool: %s kernel_size: %d pad: %d stride: %d '
                                               'round_mode: FLOOR' % (method, k, p, s)), [x])
    layer.forward(bottom, top)
    expected, _ = brute_pool(x, method, (k, k), (p, p), (s, s), floor=True)
    assert top[0].shape == expected.shape
    assert pooled_size(size, k, p, s, layer.round_mode) == brute_out_size(size, k, p, s, True)
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-6, atol=1e-6)
    check_gradient(layer, bottom, top, max_checks=30)


def test_floor_and_ceil_differ_where_a_window_is_partial():
    x = np.zeros((1, 1, 8, 8), np.float32)
    shapes = [build_layer(pool_text('pool: MAX kernel_size: 3 stride: 2 round_mode: %s' % mode),
                          [x])[2][0].shape for mode in ('CEIL', 'FLOOR')]
    assert shapes == [(1, 1, 4, 4), (1, 1, 3, 3)]


# STOCHASTIC ------------------------------------------------------------------------------------
def _stochastic(params, x, phase):
    import caffe
    return build_layer(pool_text('pool: STOCHASTIC ' + params), [x],
                       phase=caffe.TRAIN if phase == 'train' else caffe.TEST)


def _windows(x, k, s):
    """{(n, c, oh, ow): list of (h, w)} for STOCHASTIC's unpadded windows (Caffe's out size)."""
    num, channels, height, width = x.shape
    out_h, out_w = brute_out_size(height, k, 0, s), brute_out_size(width, k, 0, s)
    return {(n, c, oh, ow): [(h, w) for h in range(oh * s, min(oh * s + k, height))
                             for w in range(ow * s, min(ow * s + k, width))]
            for n in range(num) for c in range(channels) for oh in range(out_h)
            for ow in range(out_w)}


def test_stochastic_train_draws_a_window_value_and_routes_its_gradient():
    r = np.random.RandomState(1)
    x = (r.permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6) + 1).astype(np.float32)  # distinct
    layer, bottom, top = _stochastic('kernel_size: 3 stride: 2', x, 'train')
    layer.forward(bottom, top)
    windows = _windows(x, 3, 2)
    assert top[0].shape == (2, 3, 3, 3)
    dy = r.randn(*top[0].shape).astype(np.float32)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    expected = np.zeros(x.shape)
    for (n, c, oh, ow), cells in windows.items():
        value = top[0].data[n, c, oh, ow]
        hits = [(h, w) for h, w in cells if x[n, c, h, w] == value]
        assert len(hits) == 1
        expected[(n, c) + hits[0]] += dy[n, c, oh, ow]
    np.testing.assert_allclose(bottom[0].diff, expected, rtol=1e-6, atol=1e-6)


def test_stochastic_train_frequencies_follow_the_values():
    import caffe
    x = np.array([1, 2, 3, 4], np.float32).reshape(1, 1, 2, 2)
    x = np.tile(x, (1, 500, 1, 1))          # 500 independent draws per forward
    layer, bottom, top = _stochastic('kernel_size: 2 stride: 2', x, 'train')
    counts = np.zeros(4)
    caffe.set_random_seed(5)
    for _ in range(8):
        layer.forward(bottom, top)
        counts += np.bincount(top[0].data.ravel().astype(int) - 1, minlength=4)
    total = counts.sum()
    p = np.array([1, 2, 3, 4]) / 10.0
    sigma = np.sqrt(total * p * (1 - p))
    assert (np.abs(counts - total * p) < 4 * sigma).all(), counts


def test_stochastic_test_is_the_self_weighted_average():
    r = np.random.RandomState(2)
    x = np.abs(r.randn(2, 2, 5, 6)).astype(np.float32)
    x[0, 0, :2, :2] = 0                    # a window of zeros: output 0
    x[1, 1, 2:4, 2:4] = -1                 # a negative sum: output 0
    layer, bottom, top = _stochastic('kernel_size: 2 stride: 2', x, 'test')
    layer.forward(bottom, top)
    for (n, c, oh, ow), cells in _windows(x, 2, 2).items():
        v = np.array([x[n, c, h, w] for h, w in cells], np.float64)
        expected = (v ** 2).sum() / v.sum() if v.sum() > 0 else 0.0
        assert abs(top[0].data[n, c, oh, ow] - expected) < 1e-5 * max(1, expected)
    assert top[0].data[0, 0, 0, 0] == 0 and top[0].data[1, 1, 1, 1] == 0
    check_gradient(layer, bottom, top, max_checks=40)


def test_stochastic_negative_window_takes_its_last_value():
    # Caffe leaves such an output unwritten; here the scan ends on the window's last value.
    x = -np.arange(1, 5, dtype=np.float32).reshape(1, 1, 2, 2)
    layer, bottom, top = _stochastic('kernel_size: 2', x, 'train')
    layer.forward(bottom, top)
    assert top[0].data.ravel()[0] in (-1, -4)
