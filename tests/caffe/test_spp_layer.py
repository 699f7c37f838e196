"""SPP: Caffe's pyramid levels (kernel ceil(s / bins), stride = kernel, pad (kernel * bins - s +
1) / 2), the output (each level's pooled map flattened, levels concatenated) against brute-force
pooling windows, pyramid_height 1, STOCHASTIC sampling in either phase, gradients (exhaustive)
and errors."""
import math

import numpy as np
import pytest

import caffe
from caffe.common import CaffeError
from caffe.layers.spp import level_pooling
from caffe.testing import build_layer, check_gradient, check_gradient_exhaustive


def spp_text(params):
    return 'name: "spp" type: "SPP" bottom: "x" top: "y" spp_param { %s }' % params


def brute_level(x, level, method):
    """One level written out from Caffe's rules: the level's kernel, stride and pad, the
    Pooling layer's output size, MAX over the window inside the image, AVE divided by the
    window clipped to in + pad."""
    num, channels, height, width = x.shape
    bins = 2 ** level
    geometry = []
    for size in (height, width):
        k = math.ceil(size / bins)
        p = (k * bins - size + 1) // 2
        out = -(-(size + 2 * p - k) // k) + 1
        if p and (out - 1) * k >= size + p:
            out -= 1
        geometry.append((k, p, out))
    (kh, ph, oh_n), (kw, pw, ow_n) = geometry
    y = np.zeros((num, channels, oh_n, ow_n))
    for oh in range(oh_n):
        for ow in range(ow_n):
            h0, w0 = oh * kh - ph, ow * kw - pw
            window = x[:, :, max(h0, 0):min(h0 + kh, height), max(w0, 0):min(w0 + kw, width)]
            if method == 'MAX':
                y[:, :, oh, ow] = window.max(axis=(2, 3))
            else:
                area = (min(h0 + kh, height + ph) - h0) * (min(w0 + kw, width + pw) - w0)
                y[:, :, oh, ow] = window.astype(np.float64).sum(axis=(2, 3)) / area
    return y


@pytest.mark.parametrize('method', ['MAX', 'AVE'])
@pytest.mark.parametrize('height,shape', [(3, (2, 3, 9, 8)), (2, (1, 2, 5, 7)),
                                          (4, (1, 2, 16, 15))])
def test_forward_matches_brute_force(method, height, shape):
    x = np.random.RandomState(0).randn(*shape).astype(np.float32)
    layer, bottom, top = build_layer(spp_text('pyramid_height: %d pool: %s' % (height, method)),
                                     [x])
    layer.forward(bottom, top)
    levels = [brute_level(x, level, method).reshape(shape[0], -1) for level in range(height)]
    expected = np.concatenate(levels, axis=1)
    assert top[0].shape == expected.shape
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-5, atol=1e-6)


def test_level_parameters():
    # 9 rows in 4 bins: kernel 3, 12 - 9 = 3 rows short, pad (3 + 1) / 2 = 2.
    p = level_pooling(2, 9, 8, 0)
    assert (p.kernel_h, p.stride_h, p.pad_h) == (3, 3, 2)
    assert (p.kernel_w, p.stride_w, p.pad_w) == (2, 2, 0)


def test_one_level_is_the_pooling_unflattened():
    x = np.random.RandomState(1).randn(2, 3, 5, 4).astype(np.float32)
    layer, bottom, top = build_layer(spp_text('pyramid_height: 1'), [x])
    layer.forward(bottom, top)
    assert top[0].shape == (2, 3, 1, 1)
    np.testing.assert_array_equal(top[0].data[:, :, 0, 0], x.max(axis=(2, 3)))


def test_reshape_to_a_new_size_rebuilds_the_levels():
    r = np.random.RandomState(2)
    layer, bottom, top = build_layer(spp_text('pyramid_height: 2'), [r.randn(1, 2, 4, 4)])
    bottom[0].reshape(1, 2, 7, 5)
    bottom[0].data[...] = r.randn(1, 2, 7, 5)
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    expected = np.concatenate([brute_level(bottom[0].data, level, 'MAX').reshape(1, -1)
                               for level in range(2)], axis=1)
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-6)


def test_gradient_exhaustive_ave():
    layer, bottom, top = build_layer(spp_text('pyramid_height: 2 pool: AVE'),
                                     [np.random.RandomState(3).randn(1, 1, 4, 3)])
    check_gradient_exhaustive(layer, bottom, top)


def test_gradient_max():
    r = np.random.RandomState(4)
    x = (r.permutation(2 * 2 * 6 * 7).reshape(2, 2, 6, 7) * 0.1).astype(np.float32)  # no ties
    layer, bottom, top = build_layer(spp_text('pyramid_height: 3'), [x])
    check_gradient(layer, bottom, top, max_checks=60)


def test_stochastic_levels_sample_even_at_test_time():
    # Caffe builds the inner Pooling layers from a fresh LayerParameter (phase TRAIN).
    x = np.abs(np.random.RandomState(5).randn(1, 4, 8, 8)).astype(np.float32) + 0.1
    layer, bottom, top = build_layer(spp_text('pyramid_height: 2 pool: STOCHASTIC'), [x],
                                     phase=caffe.TEST)
    layer.forward(bottom, top)
    whole = top[0].data[0, :4]              # level 0: one window per channel, the whole map
    for c in range(4):
        assert whole[c] in x[0, c]          # a drawn value, not the weighted average


def test_a_level_whose_pad_reaches_its_kernel_is_an_error():
    # 5 rows in 4 bins: kernel 2, pad (8 - 5 + 1) / 2 = 2: Caffe's Pooling refuses pad >= kernel.
    with pytest.raises(CaffeError, match='pad'):
        build_layer(spp_text('pyramid_height: 3'), [np.zeros((1, 1, 5, 8))])


def test_needs_a_pyramid_height():
    with pytest.raises(CaffeError, match='pyramid_height'):
        build_layer(spp_text(''), [np.zeros((1, 1, 4, 4))])
