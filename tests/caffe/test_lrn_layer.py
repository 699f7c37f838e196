"""LRN layer: both norm regions against the direct formulas, a hand-computed border value,
gradients by finite differences (Caffe's special cases of the power step included), errors."""
import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.testing import build_layer, check_gradient


def lrn_text(region, size, alpha, beta, k=1.0):
    return ('name: "norm" type: "LRN" bottom: "x" top: "y" lrn_param { local_size: %d '
            'alpha: %r beta: %r k: %r norm_region: %s }' % (size, alpha, beta, k, region))


def brute_across(x, size, alpha, beta, k):
    num, channels, height, width = x.shape
    half = (size - 1) // 2
    y = np.zeros(x.shape)
    for n in range(num):
        for c in range(channels):
            for h in range(height):
                for w in range(width):
                    window = range(max(c - half, 0), min(c + half + 1, channels))
                    total = sum(float(x[n, j, h, w]) ** 2 for j in window)
                    y[n, c, h, w] = x[n, c, h, w] * (k + alpha / size * total) ** -beta
    return y


def brute_within(x, size, alpha, beta):
    # AVE pooling of x^2 over size x size, pad (size-1)/2, stride 1; the divisor is the window
    # clipped to in + pad, which with this pad is always size^2.
    num, channels, height, width = x.shape
    half = (size - 1) // 2
    y = np.zeros(x.shape)
    for n in range(num):
        for c in range(channels):
            for h in range(height):
                for w in range(width):
                    h0, w0 = h - half, w - half
                    divisor = (min(h0 + size, height + half) - h0) * (min(w0 + size, width + half)
                                                                      - w0)
                    total = sum(float(x[n, c, i, j]) ** 2
                                for i in range(max(h0, 0), min(h0 + size, height))
                                for j in range(max(w0, 0), min(w0 + size, width)))
                    y[n, c, h, w] = x[n, c, h, w] * (1 + alpha * total / divisor) ** -beta
    return y


ACROSS = [  # (local_size, alpha, beta, k, shape)
    (5, 0.7, 0.75, 1.5, (2, 7, 3, 4)),
    (3, 2.0, 0.5, 1.0, (1, 4, 5, 3)),
    (7, 0.3, 0.75, 2.0, (2, 3, 2, 3)),   # window wider than the channel count
    (1, 1.0, 0.75, 1.0, (1, 3, 2, 2)),
    # planes longer than the kernels' 512-pixel runs, and enough work for several threads
    (5, 0.0001, 0.75, 1.0, (2, 6, 23, 29)),
    (3, 0.5, 0.75, 1.0, (1, 9, 121, 127)),
]
WITHIN = [  # (local_size, alpha, beta, shape)
    (3, 0.9, 0.75, (2, 2, 5, 6)),
    (5, 1.5, 0.75, (1, 3, 4, 7)),
    (3, 0.00005, 0.75, (1, 2, 4, 4)),    # ZF's norm1/norm2 settings
]


def reference_across(x, dy, size, alpha, beta, k):
    """Caffe's CPU loops (sliding window sums over channels) in numpy float32, one rounding
    per operation in Caffe's order: forward top and backward bottom diff."""
    channels, pre = x.shape[1], (size - 1) // 2
    a = np.float32(alpha) / np.float32(size)
    sq = x * x
    scale = np.empty_like(x)
    scale[:, 0] = np.float32(k)
    for c in range(min(pre + 1, channels)):
        scale[:, 0] += a * sq[:, c]
    for c in range(1, channels):
        scale[:, c] = scale[:, c - 1]
        if c + pre < channels:
            scale[:, c] += a * sq[:, c + pre]
        if c - pre - 1 >= 0:
            scale[:, c] -= a * sq[:, c - pre - 1]
    y = np.power(scale, -np.float32(beta)) * x
    coeff = np.float32(2.0 * float(np.float32(alpha)) * float(np.float32(beta)) / size)
    dx = np.power(scale, -np.float32(beta)) * dy
    ratio = (dy * y) / scale
    accum = np.zeros_like(x[:, 0])
    for c in range(min(pre, channels)):
        accum += ratio[:, c]
    for c in range(channels):
        if c + pre < channels:
            accum += ratio[:, c + pre]
        dx[:, c] -= coeff * (x[:, c] * accum)
        if c - pre >= 0:
            accum -= ratio[:, c - pre]
    return y, dx


@pytest.mark.parametrize('size,alpha,beta,k,shape', ACROSS)
def test_across_channels_follows_caffes_loops(size, alpha, beta, k, shape):
    r = np.random.RandomState(5)
    x = r.randn(*shape).astype(np.float32)
    dy = r.randn(*shape).astype(np.float32)
    layer, bottom, top = build_layer(lrn_text('ACROSS_CHANNELS', size, alpha, beta, k), [x])
    layer.forward(bottom, top)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    y, dx = reference_across(x, dy, size, alpha, beta, k)
    np.testing.assert_array_equal(top[0].data, y)
    np.testing.assert_array_equal(bottom[0].diff, dx)


def reference_within(x, dy, size, alpha, beta):
    """Caffe's WITHIN_CHANNEL network (split, x^2, AVE pooling, power, product) and its backward
    in numpy float32, one rounding per operation in Caffe's order; the pooling sums from the
    project's pooling kernels (checked against loops in test_pooling_layer)."""
    from caffe.layers.pooling_kernels import ave_pool_backward, ave_pool_forward
    planes = lambda a: a.reshape(-1, a.shape[2], a.shape[3])  # noqa: E731
    pad, a, b = (size - 1) // 2, np.float32(alpha), np.float32(beta)
    pooled = np.empty_like(x)
    ave_pool_forward(planes(x * x), size, size, pad, pad, 1, 1, planes(pooled))
    base = pooled * a + np.float32(1)
    power = np.power(base, -b)
    y = x * power
    diff_scale = -b * a
    grad_pooled = (power / base) * diff_scale * (x * dy)
    grad_square = np.empty_like(x)
    ave_pool_backward(planes(grad_pooled), size, size, pad, pad, 1, 1, planes(grad_square))
    return y, power * dy + grad_square * (np.float32(2) * x)


@pytest.mark.parametrize('size,alpha,beta,shape', WITHIN + [(3, 0.00005, 0.75, (1, 9, 121, 127))])
def test_within_channel_follows_caffes_chain(size, alpha, beta, shape):
    r = np.random.RandomState(6)
    x = r.randn(*shape).astype(np.float32)
    dy = r.randn(*shape).astype(np.float32)
    layer, bottom, top = build_layer(lrn_text('WITHIN_CHANNEL', size, alpha, beta), [x])
    layer.forward(bottom, top)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    y, dx = reference_within(x, dy, size, alpha, beta)
    np.testing.assert_array_equal(top[0].data, y)
    np.testing.assert_array_equal(bottom[0].diff, dx)


@pytest.mark.parametrize('size,alpha,beta,k,shape', ACROSS)
def test_across_channels_forward(size, alpha, beta, k, shape):
    x = np.random.RandomState(0).randn(*shape).astype(np.float32)
    layer, bottom, top = build_layer(lrn_text('ACROSS_CHANNELS', size, alpha, beta, k), [x])
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, brute_across(x, size, alpha, beta, k),
                               rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize('size,alpha,beta,shape', WITHIN)
def test_within_channel_forward(size, alpha, beta, shape):
    x = (3 * np.random.RandomState(1).randn(*shape)).astype(np.float32)
    layer, bottom, top = build_layer(lrn_text('WITHIN_CHANNEL', size, alpha, beta), [x])
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, brute_within(x, size, alpha, beta),
                               rtol=2e-6, atol=1e-7)


def test_within_channel_border_divides_by_full_window():
    # 2x2 ones, local_size 3: every window holds all 4 pixels and, padding counted, 9 cells.
    layer, bottom, top = build_layer(lrn_text('WITHIN_CHANNEL', 3, 0.9, 0.75),
                                     [np.ones((1, 1, 2, 2))])
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, (1 + 0.9 * 4 / 9.) ** -0.75, rtol=1e-6)


def test_across_channels_by_hand():
    # Channels 1, 2, 3 at one pixel, local_size 3, alpha 3, beta 1, k 1: scale_c = 1 + sum/1.
    layer, bottom, top = build_layer(lrn_text('ACROSS_CHANNELS', 3, 3.0, 1.0),
                                     [np.array([1, 2, 3], np.float32).reshape(1, 3, 1, 1)])
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data.ravel(), [1 / 6., 2 / 15., 3 / 14.], rtol=1e-6)


@pytest.mark.parametrize('size,alpha,beta,k,shape', ACROSS)
def test_across_channels_gradient(size, alpha, beta, k, shape):
    x = np.random.RandomState(2).randn(*shape).astype(np.float32)
    layer, bottom, top = build_layer(lrn_text('ACROSS_CHANNELS', size, alpha, beta, k), [x])
    check_gradient(layer, bottom, top, threshold=2e-3, max_checks=40)


@pytest.mark.parametrize('size,alpha,beta,shape', WITHIN + [
    # Caffe's power layer takes other routes for exponent 1 and 2 and a zero coefficient.
    (3, 0.5, -1.0, (1, 2, 4, 3)),
    (3, 0.5, -2.0, (1, 2, 4, 3)),
    (3, 0.0, 0.75, (1, 2, 4, 3)),
])
def test_within_channel_gradient(size, alpha, beta, shape):
    x = np.random.RandomState(3).randn(*shape).astype(np.float32)
    layer, bottom, top = build_layer(lrn_text('WITHIN_CHANNEL', size, alpha, beta), [x])
    check_gradient(layer, bottom, top, threshold=2e-3, max_checks=40)


@pytest.mark.parametrize('region', ['ACROSS_CHANNELS', 'WITHIN_CHANNEL'])
def test_no_bottom_diff_without_propagate_down(region):
    layer, bottom, top = build_layer(lrn_text(region, 3, 1.0, 0.75), [np.ones((1, 3, 3, 3))])
    layer.forward(bottom, top)
    bottom[0].diff[...] = 4
    layer.backward(top, [False], bottom)
    assert (bottom[0].diff == 4).all()


@pytest.mark.parametrize('size', [2, 4, 0])
def test_even_local_size_is_an_error(size):
    with pytest.raises(CaffeError, match='bad_norm.*odd'):
        build_layer(lrn_text('ACROSS_CHANNELS', size, 1.0, 0.75).replace('"norm"', '"bad_norm"'),
                    [np.ones((1, 3, 3, 3))])


def test_non_4d_bottom_is_an_error():
    with pytest.raises(CaffeError, match='norm.*4-D'):
        build_layer(lrn_text('ACROSS_CHANNELS', 3, 1.0, 0.75), [np.ones((3, 3))])


def test_kernels_power_is_numpys_float32_power():
    # The fused kernels take scale^-beta with numpy's own float32 loop, so the layer keeps
    # np.power's numbers (on AVX-512 machines they differ from the C library's powf).
    from caffe.layers import lrn_kernels
    r = np.random.RandomState(8)
    x = np.concatenate([1 + r.rand(5000) * 0.01, r.rand(3001) * 100,
                        [1, np.inf, 1e-30]]).astype(np.float32)
    for exponent in (-0.75, -0.5, 2.0, 0.3):
        expect = np.power(x, np.float32(exponent))
        out = np.empty_like(x)
        lrn_kernels.power(x, exponent, out)
        np.testing.assert_array_equal(out, expect)
        inplace = x.copy()
        lrn_kernels.power(inplace, exponent, inplace)
        np.testing.assert_array_equal(inplace, expect)


def test_within_channel_backward_in_place_of_top_diff():
    # within_backward may write dx over dy: each plane's gradient reaches the pooled values
    # before any of the plane's dx is written.
    from caffe.layers import lrn_kernels
    r = np.random.RandomState(9)
    x = r.randn(3, 5, 9, 11).astype(np.float32)
    dy = r.randn(*x.shape).astype(np.float32)
    layer, bottom, top = build_layer(lrn_text('WITHIN_CHANNEL', 3, 0.9, 0.75), [x])
    layer.forward(bottom, top)
    _, expect = reference_within(x, dy, 3, 0.9, 0.75)
    planes = lambda a: a.reshape(-1, a.shape[2], a.shape[3])  # noqa: E731
    diff_scale, mode = layer._power_layer_case()
    dx = dy.copy()
    lrn_kernels.within_backward(planes(x), planes(dx), planes(layer.power), 3, layer.alpha,
                                diff_scale, mode, True, planes(dx))
    np.testing.assert_array_equal(dx, expect)
