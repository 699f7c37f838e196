"""MVN: against a float64 computation of Caffe's formula (eps added to the standard deviation,
not to the variance), across_channels and mean-only modes, Caffe's gradient formula, the
exhaustive gradient check, in-place use."""
import numpy as np
import pytest

from caffe.testing import build_layer, check_gradient_exhaustive


def mvn_text(params='', top='y'):
    return 'name: "m" type: "MVN" bottom: "x" top: "%s" mvn_param { %s }' % (top, params)


def caffe_mvn(x, across, normalize, eps):
    rows = x.reshape(x.shape[0] if across else x.shape[0] * x.shape[1], -1).astype(np.float64)
    centred = rows - rows.mean(axis=1, keepdims=True)
    if not normalize:
        return centred.reshape(x.shape), np.ones((rows.shape[0], 1))
    # MVNLayer::Forward_cpu: sqrt of the (biased) variance, then + eps.
    scale = np.sqrt((centred ** 2).mean(axis=1, keepdims=True)) + eps
    return (centred / scale).reshape(x.shape), scale


@pytest.mark.parametrize('across', [False, True])
@pytest.mark.parametrize('normalize', [True, False])
def test_forward_backward_against_caffe_formula(across, normalize):
    r = np.random.RandomState(0)
    x = (r.randn(2, 3, 4, 5) * 2 + 1).astype(np.float32)
    eps = 0.25    # large, so that where eps goes shows
    params = 'across_channels: %s normalize_variance: %s eps: %g' % (
        str(across).lower(), str(normalize).lower(), eps)
    layer, bottom, top = build_layer(mvn_text(params), [x])
    layer.forward(bottom, top)
    y, scale = caffe_mvn(x, across, normalize, eps)
    np.testing.assert_allclose(top[0].data, y, rtol=1e-5, atol=1e-5)
    if normalize:
        # Not sqrt(var + eps), as BatchNorm and OpenCV's MVN do.
        rows = x.reshape(scale.shape[0], -1).astype(np.float64)
        other = (rows - rows.mean(1, keepdims=True)) / np.sqrt(rows.var(1, keepdims=True) + eps)
        assert np.abs(other.reshape(x.shape) - top[0].data).max() > 1e-2
    dy = r.randn(*x.shape).astype(np.float32)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    d = dy.reshape(scale.shape[0], -1).astype(np.float64)
    yr = top[0].data.reshape(d.shape).astype(np.float64)
    if normalize:
        # MVNLayer::Backward_cpu: (dy - (y * sum(y dy) + sum(dy)) / n) / (sqrt(var) + eps).
        expected = (d - (yr * (yr * d).sum(1, keepdims=True) + d.sum(1, keepdims=True))
                    / d.shape[1]) / scale
    else:
        expected = d - d.mean(1, keepdims=True)
    np.testing.assert_allclose(bottom[0].diff, expected.reshape(x.shape), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('params', ['', 'across_channels: true', 'normalize_variance: false'])
def test_gradient_exhaustive(params):
    # With the default eps (1e-9) Caffe's gradient is the true one.
    x = np.random.RandomState(1).randn(1, 2, 2, 2)
    layer, bottom, top = build_layer(mvn_text(params), [x])
    check_gradient_exhaustive(layer, bottom, top, threshold=2e-3)


def test_in_place_and_lower_rank_blobs():
    r = np.random.RandomState(2)
    x = r.randn(3, 4, 6).astype(np.float32)     # height 6, width 1
    layer, bottom, _ = build_layer(mvn_text(top='x'), [x])
    layer.reshape(bottom, bottom)
    layer.forward(bottom, bottom)
    y, _ = caffe_mvn(x.reshape(3, 4, 6, 1), False, True, 1e-9)
    np.testing.assert_allclose(bottom[0].data, y.reshape(x.shape), rtol=1e-5, atol=1e-5)
