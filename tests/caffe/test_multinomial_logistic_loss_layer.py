"""MultinomialLogisticLoss against float64, Caffe's exhaustive gradient check, the 1e-20
clipping (kLOG_THRESHOLD), and label checks."""
import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.testing import build_layer, check_gradient_exhaustive

LAYER = 'name: "m" type: "MultinomialLogisticLoss" bottom: "p" bottom: "label" top: "loss"'


def inputs(seed, num=10, dim=5):
    # Caffe's test: PositiveUnitballFiller, rows of positive values summing to 1.
    rs = np.random.RandomState(seed)
    p = rs.rand(num, dim, 1, 1)
    p = (p / p.sum(axis=1, keepdims=True)).astype(np.float32)
    labels = rs.randint(0, dim, (num, 1, 1, 1)).astype(np.float32)
    return p, labels


def test_forward_and_backward_match_the_formula():
    p, labels = inputs(1)
    layer, bottom, top = build_layer(LAYER, [p, labels])
    layer.forward(bottom, top)
    rows, cols = np.arange(10), labels.ravel().astype(int)
    picked = p.reshape(10, 5)[rows, cols].astype(np.float64)
    assert float(top[0].data) == pytest.approx(-np.log(picked).mean(), rel=1e-6)
    top[0].diff[...] = 3
    layer.backward(top, [True, False], bottom)
    expect = np.zeros((10, 5))
    expect[rows, cols] = -3 / (10 * picked)
    np.testing.assert_allclose(bottom[0].diff.reshape(10, 5), expect, rtol=1e-6)


def test_gradient_exhaustive():
    # Caffe: GradientChecker(1e-2, 2e-2, 1701, 0, 0.05).CheckGradientExhaustive on bottom 0.
    p, labels = inputs(2, num=4, dim=3)
    layer, bottom, top = build_layer(LAYER, [p, labels])
    check_gradient_exhaustive(layer, bottom, top, check_bottom=[0], threshold=2e-2, kink=0.0,
                              kink_range=0.05)


def test_zero_probability_is_clipped():
    p = np.array([[0.0, 1.0], [0.5, 0.5]], np.float32)
    labels = np.array([0, 1], np.float32)
    layer, bottom, top = build_layer(LAYER, [p, labels])
    layer.forward(bottom, top)
    expect = (-np.log(np.float64(np.float32(1e-20))) - np.log(0.5)) / 2
    assert float(top[0].data) == pytest.approx(expect, rel=1e-6)
    top[0].diff[...] = 1
    layer.backward(top, [True, False], bottom)
    assert bottom[0].diff[0, 0] == pytest.approx(-0.5 / np.float32(1e-20), rel=1e-6)
    assert np.isfinite(bottom[0].diff).all()


def test_label_errors():
    p, labels = inputs(3)
    with pytest.raises(CaffeError, match=r"MultinomialLogisticLoss layer 'm'.*\(N, 1, 1, 1\)"):
        build_layer(LAYER, [p, np.zeros((10, 2), np.float32)])
    labels[0] = -1
    layer, bottom, top = build_layer(LAYER, [p, labels])
    with pytest.raises(CaffeError, match="label -1 .*out of range"):
        layer.forward(bottom, top)
