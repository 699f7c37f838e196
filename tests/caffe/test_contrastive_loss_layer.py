"""ContrastiveLoss, both versions, against float64 formulas; Caffe's exhaustive gradient check
of a and b; the similarity cast to int; the similarity taking no gradient."""
import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.testing import build_layer, check_gradient_exhaustive

LAYER = ('name: "c" type: "ContrastiveLoss" bottom: "a" bottom: "b" bottom: "y" top: "loss" '
         'contrastive_loss_param { margin: %g legacy_version: %s }')


def inputs(seed, num=12, channels=4):
    # Uniform in [-1, 1] as Caffe's test: distances about the margin, so both sides of it.
    rs = np.random.RandomState(seed)
    a = rs.uniform(-1, 1, (num, channels, 1, 1)).astype(np.float32)
    b = rs.uniform(-1, 1, (num, channels, 1, 1)).astype(np.float32)
    y = (rs.rand(num, 1, 1, 1) > 0.5).astype(np.float32)
    return a, b, y


def brute(a, b, y, margin, legacy):
    loss = 0.0
    grad = np.zeros(a.shape)
    for i in range(a.shape[0]):
        d = a[i].astype(np.float64).ravel() - b[i].astype(np.float64).ravel()
        d2 = float(np.dot(d, d))
        dist = np.sqrt(d2)
        if int(y.ravel()[i]):
            loss += d2
            grad[i] = d.reshape(grad[i].shape)
        elif legacy:
            loss += max(margin - d2, 0.0)
            grad[i] = (-d if margin - d2 > 0 else 0 * d).reshape(grad[i].shape)
        else:
            loss += max(margin - dist, 0.0) ** 2
            scale = -(margin - dist) / (dist + 1e-4) if margin - dist > 0 else 0.0
            grad[i] = (scale * d).reshape(grad[i].shape)
    return loss / a.shape[0] / 2, grad / a.shape[0]


@pytest.mark.parametrize('legacy', [False, True])
@pytest.mark.parametrize('margin', [1.0, 2.5])
def test_forward_and_backward_match_the_formula(legacy, margin):
    a, b, y = inputs(1)
    layer, bottom, top = build_layer(LAYER % (margin, str(legacy).lower()), [a, b, y])
    layer.forward(bottom, top)
    loss, grad = brute(a, b, y, margin, legacy)
    assert float(top[0].data) == pytest.approx(loss, rel=1e-6)
    top[0].diff[...] = 0.7
    layer.backward(top, [True, True, False], bottom)
    np.testing.assert_allclose(bottom[0].diff, 0.7 * grad, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(bottom[1].diff, -0.7 * grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('legacy', [False, True])
def test_gradient_exhaustive(legacy):
    # Caffe: GradientChecker(1e-2, 1e-2, 1701).CheckGradientExhaustive for bottoms 0 and 1.
    a, b, y = inputs(2, num=6, channels=3)
    layer, bottom, top = build_layer(LAYER % (1.0, str(legacy).lower()), [a, b, y])
    check_gradient_exhaustive(layer, bottom, top, check_bottom=[0, 1], threshold=1e-2)


def test_legacy_version_is_a_different_loss():
    # The dissimilar term is max(margin - d^2, 0) in the legacy version, max(margin - d, 0)^2
    # in the current one; d = 0.5 and margin 1 give 0.75 and 0.25.
    a = np.array([[[[0.5]]]], np.float32)
    b = np.zeros((1, 1, 1, 1), np.float32)
    y = np.zeros((1, 1, 1, 1), np.float32)
    for legacy, term in ((True, 0.75), (False, 0.25)):
        layer, bottom, top = build_layer(LAYER % (1.0, str(legacy).lower()), [a, b, y])
        layer.forward(bottom, top)
        assert float(top[0].data) == pytest.approx(term / 2, rel=1e-7)


def test_similarity_is_cast_to_int():
    # static_cast<int>(0.9) is 0: a pair marked 0.9 counts as dissimilar.
    a, b, _ = inputs(3, num=2)
    y = np.array([0.9, 1.0], np.float32).reshape(2, 1, 1, 1)
    layer, bottom, top = build_layer(LAYER % (5.0, 'false'), [a, b, y])
    layer.forward(bottom, top)
    assert float(top[0].data) == pytest.approx(brute(a, b, np.float32([[0], [1]]), 5.0,
                                                     False)[0], rel=1e-6)
    assert type(layer).non_differentiable_bottoms == (2,)


def test_shape_errors():
    a, b, y = inputs(4)
    with pytest.raises(CaffeError, match="ContrastiveLoss layer 'c'.*differ in channels"):
        build_layer(LAYER % (1, 'false'), [a, b[:, :2], y])
    with pytest.raises(CaffeError, match=r"ContrastiveLoss layer 'c'.*\(N, C, 1, 1\)"):
        build_layer(LAYER % (1, 'false'), [a.reshape(12, 2, 2, 1), b.reshape(12, 2, 2, 1), y])
    with pytest.raises(CaffeError, match="ContrastiveLoss layer 'c'.*similarity"):
        build_layer(LAYER % (1, 'false'), [a, b, np.zeros((12, 2, 1, 1), np.float32)])
