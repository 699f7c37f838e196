"""ArgMax: indices and values against a brute-force sort of (value, index) pairs, Caffe's output
shapes with and without an axis, its tie order, and parameter errors."""
import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.testing import build_layer


def argmax_text(params):
    return 'name: "am" type: "ArgMax" bottom: "x" top: "y" argmax_param { %s }' % params


def ranked(values):
    """Indices of `values` by (value, index), largest first (std::greater on pairs)."""
    return sorted(range(len(values)), key=lambda i: (float(values[i]), i), reverse=True)


def run(params, x):
    layer, bottom, top = build_layer(argmax_text(params), [x])
    layer.forward(bottom, top)
    return top[0].data


@pytest.mark.parametrize('shape', [(3, 7), (2, 3, 4), (2, 2, 3, 2), (2, 1, 2, 2, 3)])
@pytest.mark.parametrize('k', [1, 3])
def test_without_axis_over_each_flattened_image(shape, k):
    x = np.random.RandomState(0).randint(-3, 4, size=shape).astype(np.float32)  # ties
    flat = x.reshape(shape[0], -1)
    top = run('top_k: %d' % k, x)
    # Caffe's shape: (num, 1, top_k), then 1s up to the bottom's axis count.
    assert top.shape == (shape[0], 1, k) + (1,) * (len(shape) - 3)
    for n in range(shape[0]):
        np.testing.assert_array_equal(top[n].ravel(), ranked(flat[n])[:k])
    both = run('top_k: %d out_max_val: true' % k, x)
    assert both.shape == (shape[0], 2, k) + (1,) * (len(shape) - 3)
    for n in range(shape[0]):
        order = ranked(flat[n])[:k]
        np.testing.assert_array_equal(both[n, 0].ravel(), order)
        np.testing.assert_array_equal(both[n, 1].ravel(), flat[n][order])


@pytest.mark.parametrize('axis', [0, 1, 2, -1])
def test_with_axis_the_axis_becomes_top_k(axis):
    x = np.random.RandomState(1).randint(-2, 3, size=(3, 4, 5)).astype(np.float32)
    k = 2
    top = run('top_k: %d axis: %d' % (k, axis), x)
    values = run('top_k: %d axis: %d out_max_val: true' % (k, axis), x)
    moved = np.moveaxis(x, axis, -1)
    expected_shape = list(x.shape)
    expected_shape[axis] = k
    assert top.shape == values.shape == tuple(expected_shape)
    got_idx, got_val = np.moveaxis(top, axis, -1), np.moveaxis(values, axis, -1)
    for pos in np.ndindex(*moved.shape[:-1]):
        order = ranked(moved[pos])[:k]
        np.testing.assert_array_equal(got_idx[pos], order)
        # With an axis, out_max_val gives the values alone (Caffe writes no indices then).
        np.testing.assert_array_equal(got_val[pos], moved[pos][order])


def test_ties_put_the_larger_index_first():
    x = np.array([[1, 5, 5, 2, 5]], np.float32)
    np.testing.assert_array_equal(run('top_k: 4', x).ravel(), [4, 2, 1, 3])


def test_top_k_equal_to_the_axis_sorts_it():
    x = np.random.RandomState(2).randn(2, 6).astype(np.float32)
    top = run('top_k: 6 axis: 1', x)
    for n in range(2):
        np.testing.assert_array_equal(top[n], np.argsort(-x[n], kind='stable'))


@pytest.mark.parametrize('params,shape,message', [
    ('top_k: 0', (2, 3), 'at least 1'),
    ('top_k: 7', (2, 2, 3), 'larger than the 6 values'),
    ('top_k: 4 axis: 1', (2, 3, 5), 'larger than axis 1'),
    ('axis: 3', (2, 3), 'out of range'),
])
def test_bad_parameters(params, shape, message):
    with pytest.raises(CaffeError, match=message):
        build_layer(argmax_text(params), [np.zeros(shape)])
