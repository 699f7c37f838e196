import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.testing import build_layer, check_gradient

LAYER = '''name: "loss_bbox" type: "SmoothL1Loss" bottom: "pred" bottom: "target" %s
top: "loss" %s'''
WEIGHTS = 'bottom: "inside" bottom: "outside"'


def brute_smooth_l1(pred, target, inside=None, outside=None, sigma=1.0):
    s2 = sigma * sigma
    total = 0.0
    for k in range(pred.size):
        w_in = 1.0 if inside is None else float(inside.flat[k])
        w_out = 1.0 if outside is None else float(outside.flat[k])
        d = w_in * (float(pred.flat[k]) - float(target.flat[k]))
        if abs(d) < 1.0 / s2:
            total += w_out * 0.5 * s2 * d * d
        else:
            total += w_out * (abs(d) - 0.5 / s2)
    return total / pred.shape[0]


def brute_grad(pred, target, inside, outside, sigma):
    s2 = sigma * sigma
    g = np.zeros(pred.shape)
    for k in range(pred.size):
        d = float(inside.flat[k]) * (float(pred.flat[k]) - float(target.flat[k]))
        slope = s2 * d if abs(d) < 1.0 / s2 else np.sign(d)
        g.flat[k] = float(outside.flat[k]) * float(inside.flat[k]) * slope
    return g / pred.shape[0]


def inputs(shape=(3, 8), seed=0):
    rs = np.random.RandomState(seed)
    pred = rs.randn(*shape).astype(np.float32)
    target = rs.randn(*shape).astype(np.float32)
    # Box-target style weights: some coordinates off, the rest weighted.
    inside = (rs.rand(*shape) > 0.3).astype(np.float32) * rs.choice([0.5, 1.0, 2.0], shape)
    outside = rs.choice([0.0, 0.25, 1.0], shape).astype(np.float32)
    return pred, target, inside.astype(np.float32), outside


def test_sigma_3_four_bottoms():
    pred, target, inside, outside = inputs((2, 4, 3, 3))
    # Put some differences in the quadratic zone |d| < 1/9.
    pred.flat[::4] = target.flat[::4] + 0.05
    layer, bottom, top = build_layer(
        LAYER % (WEIGHTS, 'smooth_l1_loss_param { sigma: 3.0 } loss_weight: 1'),
        [pred, target, inside, outside])
    assert type(layer).default_loss_weight == 0.0
    assert top[0].shape == ()
    layer.forward(bottom, top)
    expect = brute_smooth_l1(pred, target, inside, outside, sigma=3.0)
    assert float(top[0].data) == pytest.approx(expect, rel=1e-5)
    check_gradient(layer, bottom, top, check_bottom=[0, 1], max_checks=25)


def test_two_bottoms_default_sigma():
    pred, target, _, _ = inputs((4, 5), seed=1)
    pred[0] = target[0] + np.float32(0.3)  # quadratic zone
    layer, bottom, top = build_layer(LAYER % ('', ''), [pred, target])
    layer.forward(bottom, top)
    assert float(top[0].data) == pytest.approx(brute_smooth_l1(pred, target), rel=1e-5)
    check_gradient(layer, bottom, top)


def test_backward_scales_by_weights_and_loss_weight():
    pred, target, inside, outside = inputs((3, 8), seed=2)
    layer, bottom, top = build_layer(
        LAYER % (WEIGHTS, 'smooth_l1_loss_param { sigma: 3.0 }'), [pred, target, inside, outside])
    layer.forward(bottom, top)
    top[0].diff[...] = 0.5
    for b in bottom:
        b.diff[...] = 7.0
    layer.backward(top, [True, True, True, True], bottom)
    g = brute_grad(pred, target, inside, outside, 3.0) * 0.5
    np.testing.assert_allclose(bottom[0].diff, g, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(bottom[1].diff, -g, rtol=1e-5, atol=1e-7)
    assert (bottom[2].diff == 0).all() and (bottom[3].diff == 0).all()
    assert type(layer).non_differentiable_bottoms == (2, 3)


def test_three_bottoms_is_an_error():
    pred, target, inside, _ = inputs()
    with pytest.raises(CaffeError, match='loss_bbox.*2 or 4'):
        build_layer(LAYER % ('bottom: "inside"', ''), [pred, target, inside])


def test_shape_mismatch_is_an_error():
    pred, target, _, _ = inputs()
    with pytest.raises(CaffeError, match='target'):
        build_layer(LAYER % ('', ''), [pred, target[:, :4]])


def test_trailing_unit_axes_match_like_the_fork():
    pred, target, inside, outside = inputs((3, 8), seed=3)
    layer, bottom, top = build_layer(
        LAYER % (WEIGHTS, ''),
        [pred, target.reshape(3, 8, 1, 1), inside.reshape(3, 8, 1), outside])
    layer.forward(bottom, top)
    assert float(top[0].data) == pytest.approx(brute_smooth_l1(pred, target, inside, outside),
                                               rel=1e-5)
    top[0].diff[...] = 1.0
    layer.backward(top, [False, True, False, False], bottom)
    assert bottom[1].diff.shape == (3, 8, 1, 1)
    np.testing.assert_allclose(bottom[1].diff.reshape(3, 8),
                               -brute_grad(pred, target, inside, outside, 1.0),
                               rtol=1e-5, atol=1e-7)
