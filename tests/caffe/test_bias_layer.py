"""Bias layer: forward against an element-by-element loop (axis/num_axes variants, a scalar
bias, a second bottom), finite-difference gradients, accumulating parameter diffs, in-place use,
the default filler and errors."""
import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.testing import build_layer, check_gradient


def bias_text(param='', bottoms=('x',), top='y'):
    return ('name: "b" type: "Bias" %s top: "%s" bias_param { %s }'
            % (' '.join('bottom: "%s"' % b for b in bottoms), top, param))


GAUSSIAN = 'filler { type: "gaussian" std: 1 } '


def brute(x, b, axis):
    x = np.asarray(x, np.float64)
    k = np.ndim(b)
    y = np.empty(x.shape)
    for idx in np.ndindex(*x.shape):
        y[idx] = x[idx] + float(np.asarray(b)[idx[axis:axis + k]])
    return y


def randn(*shape, seed=0):
    return np.random.RandomState(seed).randn(*shape).astype(np.float32)


@pytest.mark.parametrize('param,shape,bias_shape,axis', [
    ('', (2, 3, 4, 5), (3,), 1),
    ('axis: 0 num_axes: 2', (2, 3, 4), (2, 3), 0),
    ('axis: 2 num_axes: -1', (2, 3, 4, 5), (4, 5), 2),
    ('num_axes: 0', (3, 4), (), 0),
])
def test_forward_and_gradient_one_bottom(param, shape, bias_shape, axis):
    x = randn(*shape)
    layer, bottom, top = build_layer(bias_text(GAUSSIAN + param), [x])
    assert [b.shape for b in layer.blobs] == [bias_shape]
    b = layer.blobs[0].data.copy()
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, brute(x, b, axis), rtol=1e-6, atol=1e-6)
    check_gradient(layer, bottom, top, max_checks=25)


@pytest.mark.parametrize('bias_shape,param,axis', [((3, 4), '', 1), ((5,), 'axis: -1', 3),
                                                   ((), '', 0)])
def test_forward_and_gradient_two_bottoms(bias_shape, param, axis):
    x = randn(2, 3, 4, 5)
    b = randn(*bias_shape, seed=1) if bias_shape else np.float32(-0.3)
    layer, bottom, top = build_layer(bias_text(param, ('x', 'b')), [x, b])
    assert len(layer.blobs) == 0
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, brute(x, b, axis), rtol=1e-6, atol=1e-6)
    check_gradient(layer, bottom, top, max_checks=25)


def test_default_filler_is_zero_and_diffs_accumulate():
    x = randn(2, 3, 4)
    dy = randn(2, 3, 4, seed=2)
    layer, bottom, top = build_layer(bias_text(), [x])
    np.testing.assert_array_equal(layer.blobs[0].data, 0)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, x)
    top[0].diff[...] = dy
    layer.blobs[0].diff[...] = 0.5
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, 0.5 + dy.sum(axis=(0, 2)), rtol=1e-5)
    np.testing.assert_array_equal(bottom[0].diff, dy)
    # A second bottom's diff is written, not added to.
    layer, bottom, top = build_layer(bias_text('', ('x', 'b')), [x, randn(3)])
    layer.forward(bottom, top)
    top[0].diff[...] = dy
    bottom[1].diff[...] = 100
    layer.backward(top, [True, True], bottom)
    np.testing.assert_allclose(bottom[1].diff, dy.sum(axis=(0, 2)), rtol=1e-5)


def test_in_place():
    x = randn(2, 3, 4)
    dy = randn(2, 3, 4, seed=3)
    layer, bottom, top = build_layer(bias_text(GAUSSIAN, top='x'), [x])
    b = layer.blobs[0].data.copy()
    top = bottom
    layer.forward(bottom, top)
    np.testing.assert_allclose(bottom[0].data, brute(x, b, 1), rtol=1e-6)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, dy)
    np.testing.assert_allclose(layer.blobs[0].diff, dy.sum(axis=(0, 2)), rtol=1e-5)


def test_errors():
    x = randn(2, 3, 4)
    with pytest.raises(CaffeError, match='num_axes'):
        build_layer(bias_text('num_axes: -3'), [x])
    with pytest.raises(CaffeError, match='does not match'):
        build_layer(bias_text('', ('x', 'b')), [x, randn(2)])
    with pytest.raises(CaffeError, match='1 or 2 bottom'):
        build_layer(bias_text('', ()), [])
