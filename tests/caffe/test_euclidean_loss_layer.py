"""EuclideanLoss against a float64 sum, Caffe's exhaustive gradient check of both bottoms, the
loss weight, and force_backward reaching both bottoms in a net."""
import numpy as np
import pytest

import caffe
from caffe.common import CaffeError
from caffe.testing import build_layer, check_gradient_exhaustive

LAYER = 'name: "l" type: "EuclideanLoss" bottom: "a" bottom: "b" top: "loss"'


def gaussian(seed, *shape):
    return np.random.RandomState(seed).randn(*shape).astype(np.float32)


def brute(a, b):
    d = a.astype(np.float64).ravel() - b.astype(np.float64).ravel()
    return float(np.dot(d, d)) / a.shape[0] / 2


@pytest.mark.parametrize('shapes', [((10, 5, 1, 1), (10, 5, 1, 1)), ((4, 6), (4, 3, 2)),
                                    ((3, 2000), (3, 2000))])
def test_forward_and_backward_match_the_formula(shapes):
    a, b = gaussian(1, *shapes[0]), gaussian(2, *shapes[1])
    layer, bottom, top = build_layer(LAYER, [a, b])
    assert type(layer).default_loss_weight == 1.0
    layer.forward(bottom, top)
    assert top[0].shape == ()
    assert float(top[0].data) == pytest.approx(brute(a, b), rel=1e-6)
    top[0].diff[...] = 3.7    # a loss weight
    layer.backward(top, [True, True], bottom)
    d = (a.astype(np.float64).ravel() - b.astype(np.float64).ravel()) * 3.7 / a.shape[0]
    np.testing.assert_allclose(bottom[0].diff.ravel(), d, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(bottom[1].diff.ravel(), -d, rtol=1e-6, atol=1e-7)


def test_gradient_exhaustive():
    # Caffe: GradientChecker(1e-2, 1e-2, 1701).CheckGradientExhaustive, both bottoms.
    layer, bottom, top = build_layer(LAYER, [gaussian(3, 10, 5, 1, 1), gaussian(4, 10, 5, 1, 1)])
    check_gradient_exhaustive(layer, bottom, top, threshold=1e-2)


def test_only_the_asked_bottom_gets_a_gradient():
    layer, bottom, top = build_layer(LAYER, [gaussian(5, 3, 4), gaussian(6, 3, 4)])
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    bottom[0].diff[...] = 7
    layer.backward(top, [False, True], bottom)
    assert (bottom[0].diff == 7).all()
    assert not (bottom[1].diff == 7).any()


def test_force_backward_reaches_both_bottoms(tmp_path):
    # Caffe's EuclideanLossLayer::AllowForceBackward is true for both bottoms.
    net = tmp_path / 'net.prototxt'
    net.write_text('force_backward: true\ninput: "a" input_shape { dim: 2 dim: 3 }\n'
                   'input: "b" input_shape { dim: 2 dim: 3 }\n'
                   'layer { name: "l" type: "EuclideanLoss" bottom: "a" bottom: "b" '
                   'top: "loss" }\n')
    n = caffe.Net(str(net), caffe.TRAIN)
    a, b = gaussian(7, 2, 3), gaussian(8, 2, 3)
    out = n.forward(a=a, b=b)
    assert float(out['loss']) == pytest.approx(brute(a, b), rel=1e-6)
    n.backward()
    np.testing.assert_allclose(n.blobs['a'].diff, (a - b) / 2, rtol=1e-6)
    np.testing.assert_allclose(n.blobs['b'].diff, (b - a) / 2, rtol=1e-6)


def test_shape_errors():
    with pytest.raises(CaffeError, match="EuclideanLoss layer 'l': inputs must have the same "
                                         "dimension"):
        build_layer(LAYER, [gaussian(1, 2, 3), gaussian(2, 2, 4)])
    with pytest.raises(CaffeError, match="EuclideanLoss layer 'l'.*same first dimension"):
        build_layer(LAYER, [gaussian(1, 2, 3), gaussian(2, 3, 2)])
