import numpy as np
import pytest

from caffe.testing import build_layer, check_gradient

RELU = 'name: "relu" type: "ReLU" bottom: "x" top: "y" %s'


def brute_relu(x, slope):
    out = np.empty_like(x)
    for i, v in enumerate(x.ravel()):
        out.flat[i] = v if v > 0 else slope * v
    return out


@pytest.mark.parametrize('slope', [0.0, 0.1])
def test_forward_matches_definition(slope):
    x = np.random.RandomState(0).randn(2, 3, 4, 5).astype(np.float32)
    x.flat[:3] = 0.0
    layer, bottom, top = build_layer(RELU % ('relu_param { negative_slope: %g }' % slope), [x])
    layer.forward(bottom, top)
    assert top[0].shape == x.shape
    np.testing.assert_array_equal(top[0].data, brute_relu(x, np.float32(slope)))


@pytest.mark.parametrize('slope', [0.0, 0.1])
def test_gradient(slope):
    x = np.random.RandomState(1).randn(2, 3, 3, 4).astype(np.float32)
    layer, bottom, top = build_layer(RELU % ('relu_param { negative_slope: %g }' % slope), [x])
    check_gradient(layer, bottom, top, kink=0.0, kink_range=0.02)


def test_backward_masks_by_sign():
    x = np.array([-2.0, -0.0, 0.0, 0.5, 3.0], dtype=np.float32)
    layer, bottom, top = build_layer(RELU % 'relu_param { negative_slope: 0.25 }', [x])
    layer.forward(bottom, top)
    top[0].diff[...] = [1, 2, 3, 4, 5]
    layer.backward(top, [True], bottom)
    # Caffe's rule: slope where x <= 0 (zero included), 1 where x > 0.
    np.testing.assert_allclose(bottom[0].diff, [0.25, 0.5, 0.75, 4, 5])


def test_in_place():
    rs = np.random.RandomState(2)
    x = rs.randn(3, 4).astype(np.float32)
    layer, bottom, _ = build_layer(RELU % 'relu_param { negative_slope: 0.1 }', [x])
    top = bottom  # set up with its own top, then run in place as a Net would
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(bottom[0].data, brute_relu(x, np.float32(0.1)))
    dy = rs.randn(3, 4).astype(np.float32)
    bottom[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, np.where(x > 0, dy, np.float32(0.1) * dy))


def test_no_backward_when_not_asked():
    x = np.ones((2, 2), np.float32)
    layer, bottom, top = build_layer(RELU % '', [x])
    layer.forward(bottom, top)
    bottom[0].diff[...] = 7
    top[0].diff[...] = 1
    layer.backward(top, [False], bottom)
    assert (bottom[0].diff == 7).all()
