"""Tile: the top against numpy's tiling of the (outer, inner) view, the gradient (the sum of
the tiles, exhaustive check), and errors."""
import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.testing import build_layer, check_gradient_exhaustive


def tile_text(params):
    return 'name: "t" type: "Tile" bottom: "x" top: "y" tile_param { %s }' % params


@pytest.mark.parametrize('axis', [0, 1, 2, -1])
def test_forward_backward(axis):
    r = np.random.RandomState(0)
    x = r.randn(2, 3, 4).astype(np.float32)
    layer, bottom, top = build_layer(tile_text('tiles: 3 axis: %d' % axis), [x])
    layer.forward(bottom, top)
    a = axis % 3
    expected = np.concatenate([x] * 3, axis=a) if a == 0 else \
        np.stack([x.reshape(x.shape[:a] + (-1,))] * 3, axis=a).reshape(
            x.shape[:a] + (3 * x.shape[a],) + x.shape[a + 1:])
    np.testing.assert_array_equal(top[0].data, expected)
    dy = r.randn(*top[0].shape).astype(np.float32)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    pieces = dy.reshape(x.shape[:a] + (3, -1)).astype(np.float64).sum(axis=a)
    np.testing.assert_allclose(bottom[0].diff, pieces.reshape(x.shape), rtol=1e-6, atol=1e-6)


def test_gradient_exhaustive():
    layer, bottom, top = build_layer(tile_text('tiles: 2'),
                                     [np.random.RandomState(1).randn(2, 2, 2)])
    check_gradient_exhaustive(layer, bottom, top)


@pytest.mark.parametrize('params,message', [('axis: 1', 'tiles is required'),
                                            ('tiles: 0', 'positive'),
                                            ('tiles: 2 axis: 3', 'out of range')])
def test_errors(params, message):
    with pytest.raises(CaffeError, match=message):
        build_layer(tile_text(params), [np.zeros((2, 3))])
