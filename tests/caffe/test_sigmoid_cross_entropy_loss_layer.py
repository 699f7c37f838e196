"""SigmoidCrossEntropyLoss against float64, its normalization modes (default BATCH_SIZE, as
Caffe's layer sets it), ignore_label with targets cast to int, Caffe's exhaustive gradient
check, and saturated inputs."""
import numpy as np
import pytest

import caffe
from caffe.testing import build_layer, check_gradient_exhaustive

LAYER = ('name: "s" type: "SigmoidCrossEntropyLoss" bottom: "x" bottom: "t" top: "loss" '
         'loss_param { %s }')


def inputs(seed, shape=(10, 5)):
    rs = np.random.RandomState(seed)
    return rs.randn(*shape).astype(np.float32), rs.rand(*shape).astype(np.float32)


def brute(x, t, ignore=None):
    """(sum of the per-element cross-entropies, their gradients, the number counted)."""
    x64, t64 = x.astype(np.float64).ravel(), t.astype(np.float64).ravel()
    keep = np.ones(x64.size, bool) if ignore is None else t.ravel().astype(int) != ignore
    s = 1 / (1 + np.exp(-x64))
    terms = -(t64 * np.log(s) + (1 - t64) * np.log(1 - s))
    grad = np.where(keep, s - t64, 0).reshape(x.shape)
    return float(terms[keep].sum()), grad, int(keep.sum())


# (loss_param, ignore label, normalizer as a function of (batch, count, valid count))
NORMALIZATIONS = [
    ('', None, lambda n, c, v: n),                                   # Caffe's default
    ('normalization: VALID', None, lambda n, c, v: v),
    ('normalization: VALID ignore_label: -1', -1, lambda n, c, v: v),
    ('normalization: FULL ignore_label: -1', -1, lambda n, c, v: c),
    ('normalization: BATCH_SIZE ignore_label: -1', -1, lambda n, c, v: n),
    ('normalization: NONE', None, lambda n, c, v: 1),
    ('normalize: true ignore_label: -1', -1, lambda n, c, v: v),     # legacy: VALID
    ('normalize: false', None, lambda n, c, v: n),                   # legacy: BATCH_SIZE
    ('normalize: false normalization: FULL', None, lambda n, c, v: c),  # the enum wins
]


@pytest.mark.parametrize('param,ignore,normalizer', NORMALIZATIONS,
                         ids=[p[0] or 'default' for p in NORMALIZATIONS])
def test_forward_and_backward_by_normalization(param, ignore, normalizer):
    x, t = inputs(1, (4, 3, 2, 5))
    t.flat[::7] = -1
    layer, bottom, top = build_layer(LAYER % param, [x, t])
    layer.forward(bottom, top)
    total, grad, valid = brute(x, t, ignore)
    norm = max(1, normalizer(4, x.size, valid))
    assert float(top[0].data) == pytest.approx(total / norm, rel=1e-5)
    top[0].diff[...] = 2
    layer.backward(top, [True, False], bottom)
    np.testing.assert_allclose(bottom[0].diff, 2 * grad / norm, rtol=1e-5, atol=1e-7)


def test_ignore_label_compares_the_target_cast_to_int():
    # static_cast<int>: with ignore_label 0, targets 0.3 and 0.9 are ignored, -0.5 too; 1 is not.
    x = np.array([[0.5, -1, 2, 0.25]], np.float32)
    t = np.array([[0.3, 0.9, -0.5, 1]], np.float32)
    layer, bottom, top = build_layer(LAYER % 'ignore_label: 0 normalization: VALID', [x, t])
    layer.forward(bottom, top)
    assert float(top[0].data) == pytest.approx(np.log1p(np.exp(-0.25)), rel=1e-6)
    top[0].diff[...] = 1
    layer.backward(top, [True, False], bottom)
    np.testing.assert_array_equal(bottom[0].diff[0, :3], 0)


def test_all_ignored_divides_by_one():
    x, t = inputs(2, (2, 3))
    t[...] = -1
    layer, bottom, top = build_layer(LAYER % 'ignore_label: -1 normalization: VALID', [x, t])
    layer.forward(bottom, top)
    assert float(top[0].data) == 0


@pytest.mark.parametrize('param', ['', 'ignore_label: -1 normalization: VALID'])
def test_gradient_exhaustive(param):
    # Caffe: GradientChecker(1e-2, 1e-2, 1701).CheckGradientExhaustive on bottom 0.
    x, t = inputs(3, (4, 3))
    t[0, 1] = -1
    layer, bottom, top = build_layer(LAYER % param, [x, t])
    check_gradient_exhaustive(layer, bottom, top, check_bottom=[0], threshold=1e-2)


def test_saturated_inputs_stay_finite():
    x = np.array([[-100, 100, -100, 100]], np.float32)
    t = np.array([[0, 1, 1, 0]], np.float32)
    layer, bottom, top = build_layer(LAYER % '', [x, t])
    layer.forward(bottom, top)
    assert float(top[0].data) == pytest.approx(200, rel=1e-6)
    top[0].diff[...] = 1
    layer.backward(top, [True, False], bottom)
    np.testing.assert_array_equal(bottom[0].diff, [[0, 0, -1, 1]])


def test_targets_take_no_gradient_in_a_net(tmp_path):
    net = tmp_path / 'net.prototxt'
    net.write_text('force_backward: true\ninput: "x" input_shape { dim: 2 dim: 3 }\n'
                   'input: "t" input_shape { dim: 2 dim: 3 }\n'
                   'layer { name: "s" type: "SigmoidCrossEntropyLoss" bottom: "x" bottom: "t" '
                   'top: "loss" }\n')
    n = caffe.Net(str(net), caffe.TRAIN)
    x, t = inputs(4, (2, 3))
    out = n.forward(x=x, t=t)
    assert float(out['loss']) == pytest.approx(brute(x, t)[0] / 2, rel=1e-6)
    n.blobs['t'].diff[...] = 5
    n.backward()
    assert (n.blobs['t'].diff == 0).all()
    np.testing.assert_allclose(n.blobs['x'].diff, brute(x, t)[1] / 2, rtol=1e-5, atol=1e-7)
