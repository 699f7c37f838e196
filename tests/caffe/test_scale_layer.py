"""Scale layer: forward against an element-by-element loop (axis/num_axes variants, a scalar
scale, a second bottom, the internal bias), finite-difference gradients of bottoms and
parameters, accumulating parameter diffs, in-place use (with and without a learned scale), the
default fillers and parameter errors."""
import numpy as np
import pytest

import caffe
from caffe.common import CaffeError
from caffe.testing import build_layer, check_gradient


def scale_text(param='', bottoms=('x',), top='y'):
    return ('name: "sc" type: "Scale" %s top: "%s" scale_param { %s }'
            % (' '.join('bottom: "%s"' % b for b in bottoms), top, param))


GAUSSIAN = 'filler { type: "gaussian" std: 1 } '
BIAS = 'bias_term: true bias_filler { type: "gaussian" std: 1 } '


def brute(x, s, b, axis):
    """y[i] = x[i] * s[i on the scale's axes] (+ b[...]), one element at a time."""
    x = np.asarray(x, np.float64)
    k = np.ndim(s)
    y = np.empty(x.shape)
    for idx in np.ndindex(*x.shape):
        j = idx[axis:axis + k]
        y[idx] = x[idx] * float(np.asarray(s)[j]) + (0.0 if b is None else float(np.asarray(b)[j]))
    return y


def randn(*shape, seed=0):
    return np.random.RandomState(seed).randn(*shape).astype(np.float32)


# (param, input shape, scale shape, axis used by the loop)
ONE_BOTTOM = {
    'default_axis1': ('', (2, 3, 4, 5), (3,), 1),
    'axis0_all_axes': ('axis: 0 num_axes: -1', (2, 3, 4), (2, 3, 4), 0),
    'axis2_two_axes': ('axis: 2 num_axes: 2', (2, 3, 4, 5), (4, 5), 2),
    'axis_minus1': ('axis: -1', (2, 3, 4), (4,), 2),
    'axis1_to_end': ('num_axes: -1', (2, 3, 2, 2), (3, 2, 2), 1),
    'scalar': ('num_axes: 0', (2, 3, 4), (), 0),
}


@pytest.mark.parametrize('bias', [False, True], ids=['no_bias', 'bias'])
@pytest.mark.parametrize('case', sorted(ONE_BOTTOM))
def test_forward_and_gradient_one_bottom(case, bias):
    param, shape, scale_shape, axis = ONE_BOTTOM[case]
    x = randn(*shape)
    layer, bottom, top = build_layer(scale_text(GAUSSIAN + (BIAS if bias else '') + param), [x])
    assert [b.shape for b in layer.blobs] == [scale_shape] * (2 if bias else 1)
    s = layer.blobs[0].data.copy()
    b = layer.blobs[1].data.copy() if bias else None
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, brute(x, s, b, axis), rtol=1e-6, atol=1e-6)
    check_gradient(layer, bottom, top, max_checks=25)


@pytest.mark.parametrize('bias', [False, True], ids=['no_bias', 'bias'])
@pytest.mark.parametrize('scale_shape,param,axis', [
    ((3, 4), '', 1),
    ((4, 5), 'axis: 2', 2),
    ((), '', 0),                   # a scalar second bottom starts at axis 0
    ((2, 3, 4, 5), 'axis: 0', 0),
])
def test_forward_and_gradient_two_bottoms(scale_shape, param, axis, bias):
    x = randn(2, 3, 4, 5)
    s = randn(*scale_shape, seed=1) if scale_shape else np.float32(1.7)
    layer, bottom, top = build_layer(scale_text((BIAS if bias else '') + param, ('x', 's')),
                                     [x, s])
    assert [p.shape for p in layer.blobs] == ([tuple(scale_shape)] if bias else [])
    b = layer.blobs[0].data.copy() if bias else None
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, brute(x, s, b, axis), rtol=1e-6, atol=1e-6)
    check_gradient(layer, bottom, top, max_checks=25)


def test_default_fillers_are_one_and_zero():
    x = randn(2, 3, 2)
    layer, bottom, top = build_layer(scale_text('bias_term: true'), [x])
    np.testing.assert_array_equal(layer.blobs[0].data, 1)
    np.testing.assert_array_equal(layer.blobs[1].data, 0)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, x)


def test_param_diffs_accumulate_and_bottom_diff_of_the_scale_is_overwritten():
    x = randn(2, 3, 4)
    dy = randn(2, 3, 4, seed=2)
    layer, bottom, top = build_layer(scale_text(GAUSSIAN + BIAS), [x])
    layer.forward(bottom, top)
    top[0].diff[...] = dy
    for p in layer.blobs:
        p.diff[...] = 0.5
    bottom[0].diff[...] = 7
    layer.backward(top, [True], bottom)
    ds = (dy.astype(np.float64) * x).sum(axis=(0, 2))
    np.testing.assert_allclose(layer.blobs[0].diff, 0.5 + ds, rtol=1e-5)
    np.testing.assert_allclose(layer.blobs[1].diff, 0.5 + dy.sum(axis=(0, 2)), rtol=1e-5)
    np.testing.assert_allclose(bottom[0].diff, dy * layer.blobs[0].data[None, :, None],
                               rtol=1e-6)
    # A second bottom's diff is written, not added to.
    s = randn(3, seed=3)
    layer, bottom, top = build_layer(scale_text('', ('x', 's')), [x, s])
    layer.forward(bottom, top)
    top[0].diff[...] = dy
    bottom[1].diff[...] = 100
    layer.backward(top, [True, True], bottom)
    np.testing.assert_allclose(bottom[1].diff, ds, rtol=1e-5)


@pytest.mark.parametrize('learned', [True, False])
def test_in_place_matches_separate_top(learned):
    x = randn(2, 3, 4, 5)
    dy = randn(2, 3, 4, 5, seed=4)
    results = []
    for in_place in (False, True):
        caffe.set_random_seed(0)  # the same filled parameters both times
        layer, bottom, top = build_layer(scale_text(GAUSSIAN + BIAS, top='x' if in_place
                                                    else 'y'), [x])
        layer.param_propagate_down = [learned, learned]
        if in_place:
            top = bottom
        layer.forward(bottom, top)
        # In place, the input is kept for the scale's gradient only when that is wanted.
        assert (layer.kept_input is not None) == (in_place and learned)
        y = top[0].data.copy()
        top[0].diff[...] = dy
        layer.backward(top, [True], bottom)
        results.append((y, bottom[0].diff.copy(), [p.diff.copy() for p in layer.blobs]))
    (y0, dx0, d0), (y1, dx1, d1) = results
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(dx1, dx0)
    for a, b in zip(d0, d1):
        np.testing.assert_array_equal(a, b)
    if not learned:
        for d in d1:
            np.testing.assert_array_equal(d, 0)


def test_in_place_two_bottoms_gradient():
    x = randn(2, 3, 2, 2)
    s = randn(3, seed=5)
    dy = randn(2, 3, 2, 2, seed=6)
    layer, bottom, top = build_layer(scale_text('', ('x', 's'), top='x'), [x, s])
    top = [bottom[0]]
    layer.forward(bottom, top)
    top[0].diff[...] = dy
    layer.backward(top, [True, True], bottom)
    np.testing.assert_allclose(bottom[1].diff, (dy.astype(np.float64) * x).sum(axis=(0, 2, 3)),
                               rtol=1e-5)
    np.testing.assert_allclose(bottom[0].diff, dy * s[None, :, None, None], rtol=1e-6)


def test_errors():
    x = randn(2, 3, 4)
    with pytest.raises(CaffeError, match='num_axes'):
        build_layer(scale_text('num_axes: -2'), [x])
    with pytest.raises(CaffeError, match='no 3 axes'):
        build_layer(scale_text('axis: 1 num_axes: 3'), [x])
    with pytest.raises(CaffeError, match='axis'):
        build_layer(scale_text('axis: 3'), [x])
    with pytest.raises(CaffeError, match='does not match'):
        build_layer(scale_text('', ('x', 's')), [x, randn(4)])
    with pytest.raises(CaffeError, match='1 or 2 bottom'):
        build_layer(scale_text('', ('x', 's', 't')), [x, randn(3), randn(3)])
