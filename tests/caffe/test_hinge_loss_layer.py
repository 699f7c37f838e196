"""HingeLoss (L1 and L2) against float64 loops, Caffe's exhaustive gradient check, and label
errors."""
import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.testing import build_layer, check_gradient_exhaustive

LAYER = ('name: "h" type: "HingeLoss" bottom: "x" bottom: "label" top: "loss" '
         'hinge_loss_param { norm: %s }')


def inputs(seed, num=10, dim=5):
    # Caffe's test: Gaussian scores with std 10, kept off the kinks at +-1.
    rs = np.random.RandomState(seed)
    x = (rs.randn(num, dim, 1, 1) * 10).astype(np.float32)
    x[np.abs(np.abs(x) - 1) < 0.05] = 0.5
    labels = rs.randint(0, dim, num).astype(np.float32)
    return x, labels


def brute(x, labels, squared):
    num = x.shape[0]
    rows = x.reshape(num, -1).astype(np.float64)
    loss, grad = 0.0, np.zeros(rows.shape)
    for i in range(num):
        for j in range(rows.shape[1]):
            delta = -1.0 if j == int(labels[i]) else 1.0
            t = max(0.0, 1.0 + delta * rows[i, j])
            loss += t * t if squared else t
            grad[i, j] = delta * (2 * t if squared else np.sign(t))
    return loss / num, grad / num


@pytest.mark.parametrize('norm', ['L1', 'L2'])
def test_forward_and_backward_match_the_formula(norm):
    x, labels = inputs(1)
    layer, bottom, top = build_layer(LAYER % norm, [x, labels])
    layer.forward(bottom, top)
    loss, grad = brute(x, labels, norm == 'L2')
    assert float(top[0].data) == pytest.approx(loss, rel=1e-6)
    top[0].diff[...] = 2.5
    bottom[1].diff[...] = 7
    layer.backward(top, [True, False], bottom)
    np.testing.assert_allclose(bottom[0].diff.reshape(grad.shape), 2.5 * grad, rtol=1e-6)
    assert (bottom[1].diff == 7).all()


def test_default_norm_is_l1():
    x, labels = inputs(2)
    layer, bottom, top = build_layer('name: "h" type: "HingeLoss" bottom: "x" bottom: "l" '
                                     'top: "loss"', [x, labels])
    layer.forward(bottom, top)
    assert float(top[0].data) == pytest.approx(brute(x, labels, False)[0], rel=1e-6)


@pytest.mark.parametrize('norm,threshold', [('L1', 2e-3), ('L2', 1e-2)])
def test_gradient_exhaustive(norm, threshold):
    # Caffe: GradientChecker(1e-2, 2e-3, 1701, 1, 0.01) for L1, (1e-2, 1e-2, 1701) for L2.
    x, labels = inputs(3, num=4, dim=3)
    layer, bottom, top = build_layer(LAYER % norm, [x, labels])
    check_gradient_exhaustive(layer, bottom, top, check_bottom=[0], threshold=threshold)


def test_labels_are_checked():
    x, labels = inputs(4)
    labels[3] = 5
    layer, bottom, top = build_layer(LAYER % 'L1', [x, labels])
    with pytest.raises(CaffeError, match=r"HingeLoss layer 'h': label 5 \(at 3\) is out of "
                                         r"range \[0, 5\)"):
        layer.forward(bottom, top)
    with pytest.raises(CaffeError, match="HingeLoss layer 'h': needs one label per item"):
        build_layer(LAYER % 'L1', [x, np.zeros((10, 2), np.float32)])
