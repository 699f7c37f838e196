import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.testing import build_layer, check_gradient

CONCAT = 'name: "cat" type: "Concat" bottom: "a" bottom: "b" bottom: "c" top: "y" %s'


def brute_concat(arrays, axis):
    out_shape = list(arrays[0].shape)
    out_shape[axis] = sum(a.shape[axis] for a in arrays)
    out = np.zeros(out_shape, np.float32)
    for idx in np.ndindex(*out_shape):
        k = idx[axis]
        for a in arrays:  # walk along the axis to find which input holds position k
            if k < a.shape[axis]:
                out[idx] = a[idx[:axis] + (k,) + idx[axis + 1:]]
                break
            k -= a.shape[axis]
    return out


def inputs(axis, seed=0):
    rs = np.random.RandomState(seed)
    shapes = []
    for n in (2, 1, 3):
        s = [2, 3, 2, 2]
        s[axis] = n
        shapes.append(tuple(s))
    return [rs.randn(*s).astype(np.float32) for s in shapes]


@pytest.mark.parametrize('param,axis', [('', 1), ('concat_param { axis: 0 }', 0),
                                        ('concat_param { axis: -1 }', 3),
                                        ('concat_param { concat_dim: 0 }', 0)])
def test_forward_and_gradient(param, axis):
    xs = inputs(axis)
    layer, bottom, top = build_layer(CONCAT % param, xs)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, brute_concat(xs, axis))
    check_gradient(layer, bottom, top, max_checks=10)


def test_backward_only_where_asked():
    xs = inputs(1)
    layer, bottom, top = build_layer(CONCAT % '', xs)
    layer.forward(bottom, top)
    dy = np.random.RandomState(1).randn(*top[0].shape).astype(np.float32)
    top[0].diff[...] = dy
    for b in bottom:
        b.diff[...] = 9
    layer.backward(top, [True, False, True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, dy[:, 0:2])
    assert (bottom[1].diff == 9).all()
    np.testing.assert_array_equal(bottom[2].diff, dy[:, 3:6])


def test_single_bottom_shares():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    layer, bottom, top = build_layer('name: "cat" type: "Concat" bottom: "a" top: "y"', [x])
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, x)
    top[0].diff[...] = 3
    assert (bottom[0].diff == 3).all()


def test_errors():
    a, b = np.zeros((2, 3), np.float32), np.zeros((3, 4), np.float32)
    with pytest.raises(CaffeError, match="'cat'.*bottom\\[1\\]"):
        build_layer('name: "cat" type: "Concat" bottom: "a" bottom: "b" top: "y"', [a, b])
    with pytest.raises(CaffeError, match='not both'):
        build_layer('name: "cat" type: "Concat" bottom: "a" top: "y" '
                    'concat_param { axis: 1 concat_dim: 1 }', [a])
    with pytest.raises(CaffeError, match='concat_dim'):
        build_layer('name: "cat" type: "Concat" bottom: "a" top: "y" '
                    'concat_param { concat_dim: 2 }', [a])
