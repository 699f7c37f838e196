import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.testing import build_layer

RESHAPE = 'name: "r" type: "Reshape" bottom: "x" top: "y" reshape_param { %s }'


def shape_of(param, in_shape):
    layer, bottom, top = build_layer(RESHAPE % param, [np.zeros(in_shape, np.float32)])
    return top[0].shape


@pytest.mark.parametrize('param,in_shape,expect', [
    ('shape { dim: 0 dim: -1 }', (2, 3, 4, 5), (2, 60)),
    ('shape { dim: 0 dim: 2 dim: -1 dim: 0 }', (2, 6, 3, 5), (2, 2, 9, 5)),
    ('shape { dim: -1 dim: 4 }', (3, 8), (6, 4)),
    ('shape { dim: 6 dim: 4 }', (2, 3, 4), (6, 4)),
    # The py-faster-rcnn RPN reshape: (1, 2*A, H, W) -> (1, 2, A*H, W).
    ('shape { dim: 0 dim: 2 dim: -1 dim: 0 }', (1, 18, 5, 7), (1, 2, 45, 7)),
    ('shape { dim: 2 dim: 2 } axis: 1 num_axes: 1', (3, 4, 5), (3, 2, 2, 5)),
    ('shape { dim: -1 } axis: 1', (3, 4, 5), (3, 20)),
    ('shape { dim: 1 } axis: -1 num_axes: 0', (3, 4), (3, 4, 1)),
    ('shape { dim: 1 } axis: 0 num_axes: 0', (3, 4), (1, 3, 4)),
    ('shape { }', (1, 1), ()),
])
def test_shapes(param, in_shape, expect):
    assert shape_of(param, in_shape) == expect


def test_shares_data_and_diff():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    layer, bottom, top = build_layer(RESHAPE % 'shape { dim: 0 dim: -1 }', [x])
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, x.reshape(2, 12))
    bottom[0].data[1, 2, 3] = -5
    assert top[0].data[1, 11] == -5
    # The gradient is the identity on the flat order: the top's diff is the bottom's.
    w = np.random.RandomState(0).randn(2, 12).astype(np.float32)
    top[0].diff[...] = w
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, w.reshape(2, 3, 4))


@pytest.mark.parametrize('param,in_shape,match', [
    ('shape { dim: -1 dim: -1 }', (2, 3), 'more than one -1'),
    ('shape { dim: -1 dim: 5 }', (2, 3), 'cannot infer'),
    ('shape { dim: 4 dim: 2 }', (2, 3), 'elements'),
    ('shape { dim: 0 dim: 0 dim: 0 }', (2, 3), 'no axis'),
    ('shape { dim: 2 } axis: 3', (2, 3), 'axis'),
    ('shape { dim: 2 } axis: 1 num_axes: 2', (2, 3), 'out of range'),
    ('shape { dim: -2 dim: 3 }', (2, 3), '>= -1'),
])
def test_errors(param, in_shape, match):
    with pytest.raises(CaffeError, match=match):
        shape_of(param, in_shape)
