"""BatchReindex: rows picked by the index (repeats and omissions), the gradient added back into
the rows they came from, Caffe's exhaustive gradient check, and index errors."""
import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.testing import build_layer, check_gradient_exhaustive

TEXT = 'name: "ri" type: "BatchReindex" bottom: "x" bottom: "i" top: "y"'


def test_forward_and_backward_against_loops():
    r = np.random.RandomState(0)
    x = r.randn(5, 2, 3).astype(np.float32)
    index = np.array([4, 0, 0, 2, 4, 4], np.float32)   # 1 and 3 never picked
    layer, bottom, top = build_layer(TEXT, [x, index])
    layer.forward(bottom, top)
    assert top[0].shape == (6, 2, 3)
    for i, j in enumerate(index.astype(int)):
        np.testing.assert_array_equal(top[0].data[i], x[j])
    dy = r.randn(*top[0].shape).astype(np.float32)
    top[0].diff[...] = dy
    bottom[0].diff[...] = 9
    layer.backward(top, [True, False], bottom)
    expected = np.zeros(x.shape, np.float64)
    for i, j in enumerate(index.astype(int)):
        expected[j] += dy[i]
    np.testing.assert_allclose(bottom[0].diff, expected, rtol=1e-6, atol=1e-6)
    assert (bottom[0].diff[[1, 3]] == 0).all()


def test_gradient_exhaustive():
    r = np.random.RandomState(1)
    layer, bottom, top = build_layer(TEXT, [r.randn(3, 2).astype(np.float32),
                                            np.array([2, 0, 2, 1], np.float32)])
    check_gradient_exhaustive(layer, bottom, top, check_bottom=[0])


def test_empty_index():
    layer, bottom, top = build_layer(TEXT, [np.ones((3, 2)), np.zeros((0,))])
    layer.forward(bottom, top)
    assert top[0].shape == (0, 2)
    layer.backward(top, [True, False], bottom)
    assert (bottom[0].diff == 0).all()


@pytest.mark.parametrize('index,message', [
    ([0, 3], 'outside the batch'), ([-1], 'outside the batch'), ([[0, 1]], '1-D'),
])
def test_bad_index(index, message):
    with pytest.raises(CaffeError, match=message):
        layer, bottom, top = build_layer(TEXT, [np.ones((3, 2)), np.array(index, np.float32)])
        layer.forward(bottom, top)
