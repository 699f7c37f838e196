"""PReLU against float64 loops, Caffe's exhaustive gradient check (bottom and slopes), its
consistency with ReLU, in-place use (Caffe's TestPReLUInPlace), and the slope gradient's sums."""
import numpy as np
import pytest

import caffe
from caffe.blob import Blob
from caffe.common import CaffeError
from caffe.layers.prelu import PReLULayer
from caffe.testing import build_layer, check_gradient_exhaustive, layer_param

PRELU = 'name: "p" type: "PReLU" bottom: "x" top: "y" %s'
GAUSSIAN = 'filler { type: "gaussian" }'


def gaussian(seed, shape=(2, 3, 4, 5)):
    return np.random.RandomState(seed).randn(*shape).astype(np.float32)


def brute_forward(x, slopes, shared):
    out = np.empty(x.shape, np.float64)
    channels, dim = x.shape[1], int(np.prod(x.shape[2:], dtype=np.int64))
    for i, v in enumerate(x.ravel().astype(np.float64)):
        a = float(slopes.ravel()[0 if shared else (i // dim) % channels])
        out.flat[i] = v if v > 0 else a * v
    return out


def brute_slope_gradient(x, dy, shared):
    channels, dim = x.shape[1], int(np.prod(x.shape[2:], dtype=np.int64))
    grad = np.zeros(1 if shared else channels)
    for i, (v, d) in enumerate(zip(x.ravel().astype(np.float64), dy.ravel().astype(np.float64))):
        if v <= 0:
            grad[0 if shared else (i // dim) % channels] += d * v
    return grad


@pytest.mark.parametrize('shared', [False, True])
def test_forward_and_parameter_shape(shared):
    x = gaussian(1)
    params = 'prelu_param { channel_shared: %s %s }' % (str(shared).lower(), GAUSSIAN)
    layer, bottom, top = build_layer(PRELU % params, [x])
    assert layer.blobs[0].shape == (() if shared else (3,))
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, brute_forward(x, layer.blobs[0].data, shared),
                               rtol=1e-7, atol=0)


def test_default_slope_is_a_quarter_and_matches_relu():
    # Caffe's TestPReLUConsistencyReLU: PReLU with its default filler is ReLU with slope 0.25.
    x, dy = gaussian(2), gaussian(3)
    prelu, bottom, top = build_layer(PRELU % '', [x])
    np.testing.assert_array_equal(prelu.blobs[0].data, [0.25] * 3)
    relu, rbottom, rtop = build_layer('name: "r" type: "ReLU" bottom: "x" top: "y" '
                                      'relu_param { negative_slope: 0.25 }', [x])
    for layer, b, t in ((prelu, bottom, top), (relu, rbottom, rtop)):
        layer.forward(b, t)
        t[0].diff[...] = dy
        layer.backward(t, [True], b)
    np.testing.assert_array_equal(top[0].data, rtop[0].data)
    np.testing.assert_array_equal(bottom[0].diff, rbottom[0].diff)


@pytest.mark.parametrize('shared', [False, True])
def test_gradient_exhaustive(shared):
    # Caffe: GradientChecker(1e-2, 1e-3, 1701, 0., 0.01).CheckGradientExhaustive.
    x = gaussian(4, (2, 3, 2, 2))
    params = 'prelu_param { channel_shared: %s %s }' % (str(shared).lower(), GAUSSIAN)
    layer, bottom, top = build_layer(PRELU % params, [x])
    check_gradient_exhaustive(layer, bottom, top, kink=0.0, kink_range=0.01)


@pytest.mark.parametrize('shared', [False, True])
@pytest.mark.parametrize('shape', [(2, 3, 4, 5), (5, 4), (1, 2, 37, 61)])
def test_slope_gradient_accumulates_the_float64_sum(shared, shape):
    x, dy = gaussian(5, shape), gaussian(6, shape)
    params = 'prelu_param { channel_shared: %s %s }' % (str(shared).lower(), GAUSSIAN)
    layer, bottom, top = build_layer(PRELU % params, [x])
    layer.forward(bottom, top)
    top[0].diff[...] = dy
    layer.blobs[0].diff[...] = 0.5
    layer.backward(top, [True], bottom)
    expect = brute_slope_gradient(x, dy, shared) + 0.5
    np.testing.assert_allclose(layer.blobs[0].diff.ravel(), expect, rtol=1e-6)
    slopes = layer.blobs[0].data.ravel()
    channel = np.arange(x.size) // max(x[0, 0].size, 1) % shape[1]
    a = slopes[0] if shared else slopes[channel].reshape(shape)
    np.testing.assert_array_equal(bottom[0].diff, np.where(x > 0, dy, dy * a))


def test_in_place_equals_out_of_place():
    # Caffe's TestPReLUInPlace: in place the layer keeps a copy of its input for backward.
    x, dy = gaussian(7), gaussian(8)
    outs = []
    for in_place in (False, True):
        caffe.set_random_seed(9)  # the same slopes
        layer, bottom, top = build_layer(PRELU % ('prelu_param { %s }' % GAUSSIAN), [x])
        if in_place:
            top = bottom
            layer.reshape(bottom, top)
        layer.forward(bottom, top)
        y = top[0].data.copy()
        top[0].diff[...] = dy
        layer.backward(top, [True], bottom)
        outs.append((y, bottom[0].diff.copy(), layer.blobs[0].diff.copy()))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


def test_needs_two_axes_and_matching_slopes():
    with pytest.raises(CaffeError, match="PReLU layer 'p'.*at least 2 axes"):
        build_layer(PRELU % '', [np.zeros(5, np.float32)])
    layer = PReLULayer(layer_param(PRELU % ''))
    layer.blobs.add_blob(4)
    with pytest.raises(CaffeError, match="PReLU layer 'p'.*slope size 4.*3 channels"):
        layer.setup([Blob((2, 3, 2, 2))], [Blob()])
