"""Flatten: Caffe's axis / end_axis shapes, data and diff shared with the bottom, the
element-wise gradient check, and errors."""
import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.testing import build_layer, check_gradient_eltwise


def flatten_text(params=''):
    return 'name: "f" type: "Flatten" bottom: "x" top: "y" flatten_param { %s }' % params


@pytest.mark.parametrize('params,shape', [
    ('', (2, 60)), ('axis: 2', (2, 3, 20)), ('axis: 0 end_axis: 1', (6, 4, 5)),
    ('axis: 1 end_axis: -2', (2, 12, 5)), ('axis: -1', (2, 3, 4, 5)), ('axis: 3 end_axis: 3',
                                                                      (2, 3, 4, 5)),
])
def test_shapes_and_sharing(params, shape):
    x = np.arange(120, dtype=np.float32).reshape(2, 3, 4, 5)
    layer, bottom, top = build_layer(flatten_text(params), [x])
    layer.forward(bottom, top)
    assert top[0].shape == shape
    np.testing.assert_array_equal(top[0].data.ravel(), x.ravel())
    top[0].diff[...] = 3
    layer.backward(top, [True], bottom)
    assert (bottom[0].diff == 3).all()
    bottom[0].data[0, 0, 0, 0] = -1     # shared, not copied
    assert top[0].data.ravel()[0] == -1


def test_gradient_eltwise():
    layer, bottom, top = build_layer(flatten_text(), [np.random.RandomState(0).randn(2, 3, 2)])
    check_gradient_eltwise(layer, bottom, top)


def test_errors():
    layer, bottom, _ = build_layer(flatten_text(), [np.zeros((2, 3))])
    with pytest.raises(CaffeError, match='in place'):
        layer.setup(bottom, bottom)
    with pytest.raises(CaffeError, match='comes before'):
        build_layer(flatten_text('axis: 2 end_axis: 0'), [np.zeros((2, 3, 4))])


def test_end_axis_just_before_axis_inserts_an_axis():
    # Caffe's count(axis, end_axis + 1) of an empty range is 1: a new axis of size 1.
    _, _, top = build_layer(flatten_text('axis: 2 end_axis: 1'), [np.zeros((2, 3, 4))])
    assert top[0].shape == (2, 3, 1, 4)
