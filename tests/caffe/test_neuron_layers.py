"""The neuron layers AbsVal, BNLL, Clip, ELU, Exp, Log, Power, Sigmoid, Swish, TanH and Threshold
(PReLU, which has a parameter, is in test_prelu_layer.py): forward against float64 formulas
evaluated element by element, Caffe's element-wise gradient check with the parameters Caffe's
own tests (src/caffe/test/test_neuron_layer.cpp, test_power_layer.cpp) use, Caffe's special
cases, and in-place use."""
import math

import numpy as np
import pytest

import caffe
from caffe.common import CaffeError
from caffe.testing import build_layer, check_gradient_eltwise

SHAPE = (2, 3, 4, 5)


def text(kind, params='', top='y'):
    return 'name: "n" type: "%s" bottom: "x" top: "%s" %s' % (kind, top, params)


def gaussian(seed=1701, shape=SHAPE, std=1.0):
    return (np.random.RandomState(seed).randn(*shape) * std).astype(np.float32)


def forward(kind, params, x):
    layer, bottom, top = build_layer(text(kind, params), [x])
    layer.forward(bottom, top)
    return layer, bottom, top


def brute(fn, x):
    """fn applied to every element of x in float64, one at a time."""
    out = np.empty(x.shape, np.float64)
    for i, v in enumerate(x.ravel()):
        out.flat[i] = fn(float(v))
    return out


def sigmoid64(v):
    return 1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v))


def softplus64(v):
    return v + math.log1p(math.exp(-v)) if v > 0 else math.log1p(math.exp(v))


def power64(base, exponent):
    try:
        return math.pow(base, exponent)
    except ValueError:  # a negative base to a fractional power
        return math.nan


# (type, params, float64 function of one element (params bound), input) --------------------------
def exp64(base, scale, shift):
    b = math.e if base == -1 else base
    return lambda v: b ** (shift + scale * v)


def log64(base, scale, shift):
    def f(v):
        t = shift + scale * v
        return math.log(t) / (1.0 if base == -1 else math.log(base))
    return f


def elu64(alpha):
    return lambda v: v if v > 0 else alpha * math.expm1(v)


def exp_params(base, scale, shift):
    return 'exp_param { base: %g scale: %g shift: %g }' % (base, scale, shift)


def log_params(base, scale, shift):
    return 'log_param { base: %g scale: %g shift: %g }' % (base, scale, shift)


def log_input(seed=1701):
    # Caffe's LogBottomInit: exp of Gaussian values (positive).
    return np.exp(gaussian(seed)).astype(np.float32)


FORWARD_CASES = [
    ('AbsVal', '', abs, gaussian()),
    ('BNLL', '', softplus64, gaussian(std=3)),
    ('Clip', 'clip_param { min: -1 max: 2 }', lambda v: min(max(v, -1.0), 2.0), gaussian(std=2)),
    ('ELU', 'elu_param { alpha: 0.5 }', elu64(0.5), gaussian()),
    ('ELU', '', elu64(1.0), gaussian(std=3)),
    ('Exp', '', exp64(-1, 1, 0), gaussian()),
    ('Exp', exp_params(-1, 1, 1), exp64(-1, 1, 1), gaussian()),
    ('Exp', exp_params(2, 1, 0), exp64(2, 1, 0), gaussian()),
    ('Exp', exp_params(2, 1, 1), exp64(2, 1, 1), gaussian()),
    ('Exp', exp_params(2, 3, 0), exp64(2, 3, 0), gaussian()),
    ('Exp', exp_params(2, 3, 1), exp64(2, 3, 1), gaussian()),
    ('Log', '', log64(-1, 1, 0), log_input()),
    ('Log', log_params(2, 1, 0), log64(2, 1, 0), log_input()),
    ('Log', log_params(2, 1, 1), log64(2, 1, 1), log_input()),
    ('Log', log_params(2, 3, 0), log64(2, 3, 0), log_input()),
    ('Log', log_params(2, 3, 1), log64(2, 3, 1), log_input()),
    ('Log', log_params(10, -0.5, 4), log64(10, -0.5, 4), log_input() % 7),
    ('Power', 'power_param { power: 0.37 scale: 0.83 shift: -2.4 }',
     lambda v: power64(-2.4 + 0.83 * v, 0.37), gaussian()),
    ('Power', 'power_param { power: 2 scale: 0.34 shift: -2.4 }',
     lambda v: (-2.4 + 0.34 * v) ** 2, gaussian()),
    ('Power', 'power_param { power: 3 scale: 0.5 }', lambda v: (0.5 * v) ** 3, gaussian()),
    ('Power', 'power_param { power: -1.5 scale: 1.3 shift: 0.5 }',
     lambda v: power64(0.5 + 1.3 * v, -1.5), gaussian()),
    ('Sigmoid', '', sigmoid64, gaussian(std=4)),
    ('Swish', '', lambda v: v * sigmoid64(v), gaussian(std=3)),
    ('Swish', 'swish_param { beta: 1.5 }', lambda v: v * sigmoid64(1.5 * v), gaussian(std=3)),
    ('TanH', '', math.tanh, gaussian(std=3)),
    ('Threshold', 'threshold_param { threshold: 0.3 }', lambda v: 1.0 if v > 0.3 else 0.0,
     gaussian()),
    ('Threshold', '', lambda v: 1.0 if v > 0 else 0.0, gaussian()),
]


def case_id(c):
    return '%s-%s' % (c[0], c[1].replace(' ', '').replace('{', '(').replace('}', ')'))


@pytest.mark.parametrize('kind,params,fn,x', FORWARD_CASES, ids=[case_id(c) for c in FORWARD_CASES])
def test_forward_matches_float64_formula(kind, params, fn, x):
    _, _, top = forward(kind, params, x)
    assert top[0].shape == x.shape
    expect = brute(fn, x)
    np.testing.assert_array_equal(np.isnan(top[0].data), np.isnan(expect))
    finite = ~np.isnan(expect)
    np.testing.assert_allclose(top[0].data[finite], expect[finite], rtol=2e-6, atol=1e-6)


# Gradients: Caffe's CheckGradientEltwise and its checker settings per layer ---------------------
def away_from(x, points, margin):
    """x with values within `margin` of any point moved `margin` further off (Caffe's Clip
    gradient test does this at min and max)."""
    x = x.copy()
    for p in points:
        near = np.abs(x - p) <= margin
        x[near] = np.where(x[near] < p, x[near] - margin, x[near] + margin)
    return x


GRADIENT_CASES = [
    ('AbsVal', '', gaussian(), dict(kink=0.0, kink_range=0.01)),
    ('BNLL', '', gaussian(), {}),
    ('Clip', 'clip_param { min: -1 max: 2 }', away_from(gaussian(std=2), (-1, 2), 1e-2), {}),
    ('ELU', 'elu_param { alpha: 0.5 }', gaussian(), dict(kink=0.0, kink_range=0.01)),
    ('ELU', 'elu_param { alpha: 0 }', gaussian(), dict(kink=0.0, kink_range=0.01)),
    ('Exp', '', gaussian(), {}),
    ('Exp', exp_params(-1, 1, 1), gaussian(), {}),
    ('Exp', exp_params(2, 1, 0), gaussian(), {}),
    ('Exp', exp_params(2, 3, 1), gaussian(), {}),
    ('Log', '', log_input(), dict(threshold=1e-2)),
    ('Log', log_params(2, 1, 1), log_input(), dict(threshold=1e-2)),
    ('Log', log_params(2, 3, 0), log_input(), dict(threshold=1e-2)),
    ('Log', log_params(2, 3, 1), log_input(), dict(threshold=1e-2)),
    ('Sigmoid', '', gaussian(), dict(kink=0.0, kink_range=0.01)),
    ('Swish', '', gaussian(), dict(kink=0.0, kink_range=0.01)),
    ('Swish', 'swish_param { beta: 1.5 }', gaussian(), dict(kink=0.0, kink_range=0.01)),
    ('Swish', 'swish_param { beta: 0 }', gaussian(), dict(kink=0.0, kink_range=0.01)),
    ('TanH', '', gaussian(), {}),
]


@pytest.mark.parametrize('kind,params,x,checker', GRADIENT_CASES,
                         ids=[case_id(c) for c in GRADIENT_CASES])
def test_gradient_eltwise(kind, params, x, checker):
    layer, bottom, top = build_layer(text(kind, params), [x])
    check_gradient_eltwise(layer, bottom, top, **checker)


def power_input(power, scale, shift, seed=1701):
    # Caffe's power gradient test keeps shift + scale * x away from negative values (and so
    # from NaN) for powers other than 0, 1 and 2.
    x = gaussian(seed)
    if power not in (0, 1, 2):
        low = -shift / scale
        x = np.where((x - low) * np.sign(scale) < 0.01, low + np.sign(scale) * (0.01 + np.abs(x)),
                     x).astype(np.float32)
    return x


# Caffe's test_power_layer.cpp gradient cases: (power, scale, shift).
POWER_CASES = [(0.37, 0.83, -2.4), (0.37, 0.83, 0.0), (0, 0.83, -2.4), (1, 0.83, -2.4),
               (2, 0.34, -2.4), (2, 0.5, -2.4), (2, 0.5, 0), (-1.5, 1.3, 0.5)]


@pytest.mark.parametrize('power,scale,shift', POWER_CASES)
def test_power_gradient(power, scale, shift):
    x = power_input(power, scale, shift)
    layer, bottom, top = build_layer(text('Power', 'power_param { power: %g scale: %g shift: %g }'
                                          % (power, scale, shift)), [x])
    # Caffe: GradientChecker(1e-3, 1e-2, 1701, 0., 0.01).
    check_gradient_eltwise(layer, bottom, top, stepsize=1e-3, threshold=1e-2, kink=0.0,
                           kink_range=0.01)


# Caffe's special cases and oddities ------------------------------------------------------------
def backward(layer, bottom, top, dy):
    top[0].diff[...] = dy
    bottom[0].diff[...] = 7  # a sentinel: backward must overwrite it
    layer.backward(top, [True], bottom)
    return bottom[0].diff.copy()


def test_absval_gradient_at_zero_is_zero_and_in_place_is_refused(tmp_path):
    x = np.array([-2, -0.0, 0, 3], np.float32)
    layer, bottom, top = forward('AbsVal', '', x)
    np.testing.assert_array_equal(top[0].data, [2, 0, 0, 3])
    # caffe_cpu_sign: (0 < x) - (x < 0).
    np.testing.assert_array_equal(backward(layer, bottom, top, np.ones(4, np.float32)),
                                  [-1, 0, 0, 1])
    net = tmp_path / 'net.prototxt'
    net.write_text('input: "x" input_shape { dim: 4 }\n'
                   'layer { name: "abs" type: "AbsVal" bottom: "x" top: "x" }\n')
    with pytest.raises(CaffeError, match="AbsVal layer 'abs'.*in-place"):
        caffe.Net(str(net), caffe.TEST)


def test_bnll_threshold_form():
    # Forward x + log(1 + exp(-x)) for x > 0: no overflow for large x. Backward uses
    # exp(min(x, 50)) (kBNLL_THRESHOLD): the gradient of a large x is exactly 1, where
    # exp(x) / (exp(x) + 1) would be inf / inf.
    # For very negative x Caffe's log(1. + exp(x)) keeps only the absolute accuracy of the
    # double 1 + exp(x) (at x = -100 it is 0), as here.
    x = np.array([-100, -30, 0, 30, 60, 100, 1000], np.float32)
    layer, bottom, top = forward('BNLL', '', x)
    assert top[0].data[0] == 0
    np.testing.assert_allclose(top[0].data, brute(softplus64, x), rtol=1e-7, atol=1e-15)
    dx = backward(layer, bottom, top, np.ones(x.size, np.float32))
    assert np.isfinite(dx).all()
    np.testing.assert_array_equal(dx[-3:], 1)
    np.testing.assert_allclose(dx, brute(sigmoid64, x), rtol=1e-6, atol=1e-30)


def test_clip_ends_pass_the_gradient_and_nan_gives_min():
    x = np.array([-3, -1, 0.5, 2, 5, np.nan], np.float32)
    layer, bottom, top = forward('Clip', 'clip_param { min: -1 max: 2 }', x)
    # std::max(min, std::min(x, max)) on Caffe's CPU path turns NaN into min.
    np.testing.assert_array_equal(top[0].data, [-1, -1, 0.5, 2, 2, -1])
    dx = backward(layer, bottom, top, np.full(x.size, 3, np.float32))
    np.testing.assert_array_equal(dx, [0, 3, 3, 3, 0, 0])


def test_clip_needs_min_and_max():
    with pytest.raises(CaffeError, match=r"Clip layer 'n'.*clip_param\.max is required"):
        build_layer(text('Clip', 'clip_param { min: 0 }'), [gaussian()])


def test_elu_alpha_zero_is_relu():
    x = gaussian()
    _, _, top = forward('ELU', 'elu_param { alpha: 0 }', x)
    np.testing.assert_array_equal(top[0].data, np.maximum(x, 0))


def test_exp_and_log_base_minus_one_mean_e():
    x = gaussian()
    _, _, default = forward('Exp', '', x)
    _, _, base_e = forward('Exp', exp_params(math.e, 1, 0), x)
    np.testing.assert_allclose(default[0].data, np.exp(x.astype(np.float64)), rtol=1e-6)
    # base -1 sets log(base) = 1 exactly; base e computes log(float(e)) in float, 1 to an ulp.
    np.testing.assert_allclose(base_e[0].data, default[0].data, rtol=1e-5)
    p = log_input()
    _, _, log_default = forward('Log', '', p)
    np.testing.assert_allclose(log_default[0].data, np.log(p.astype(np.float64)), rtol=1e-6,
                               atol=1e-7)


@pytest.mark.parametrize('kind,params,message', [
    ('Exp', 'exp_param { base: 0 }', 'base must be strictly positive'),
    ('Exp', 'exp_param { base: -2 }', 'base must be strictly positive'),
    ('Log', 'log_param { base: -0.5 }', 'base must be strictly positive'),
    ('Log', 'log_param { base: 1 }', r'1 / log\(base\) is not finite'),
])
def test_exp_and_log_bad_base(kind, params, message):
    with pytest.raises(CaffeError, match="%s layer 'n'.*%s" % (kind, message)):
        build_layer(text(kind, params), [gaussian()])


def test_log_adds_the_shift_only_when_it_is_not_zero():
    # Caffe skips caffe_add_scalar for shift 0, so -0 stays -0: the gradient 1 / x is -inf there.
    x = np.array([-0.0, 0.0, 2], np.float32)
    layer, bottom, top = forward('Log', '', x)
    np.testing.assert_array_equal(top[0].data, [-np.inf, -np.inf, np.log(np.float32(2))])
    with np.errstate(divide='ignore'):
        dx = backward(layer, bottom, top, np.ones(3, np.float32))
    np.testing.assert_array_equal(dx, [-np.inf, np.inf, 0.5])


def test_power_special_cases():
    x = gaussian()
    nan_dy = np.full(x.shape, np.nan, np.float32)
    # scale 0: the input is ignored; y = shift^power, and the gradient is 0 whatever the top
    # diff holds (Caffe sets it without multiplying).
    layer, bottom, top = forward('Power', 'power_param { power: 2.5 scale: 0 shift: 1.7 }', x)
    np.testing.assert_array_equal(top[0].data, np.float32(1.7) ** np.float32(2.5))
    np.testing.assert_array_equal(backward(layer, bottom, top, nan_dy), 0)
    # power 0: y = 1 (even for shift 0: 0^0 is not computed).
    layer, bottom, top = forward('Power', 'power_param { power: 0 scale: 3 }', x)
    np.testing.assert_array_equal(top[0].data, 1)
    np.testing.assert_array_equal(backward(layer, bottom, top, nan_dy), 0)
    # power 1: y = scale * x + shift with no pow; the gradient is scale * dy.
    layer, bottom, top = forward('Power', 'power_param { scale: 0.5 shift: -1 }', x)
    np.testing.assert_array_equal(top[0].data, np.float32(0.5) * x + np.float32(-1))
    dy = gaussian(3)
    np.testing.assert_array_equal(backward(layer, bottom, top, dy), dy * np.float32(0.5))
    # shift 0: Caffe forms the gradient as power * y / x, which is NaN at x = 0 (0 / 0).
    z = np.array([0, 1, -2], np.float32)
    layer, bottom, top = forward('Power', 'power_param { power: 3 }', z)
    with np.errstate(invalid='ignore'):
        dz = backward(layer, bottom, top, np.ones(3, np.float32))
    assert np.isnan(dz[0])
    np.testing.assert_array_equal(dz[1:], [3, 12])


def test_sigmoid_and_tanh_saturate():
    x = np.array([-200, -50, 0, 50, 200], np.float32)
    layer, bottom, top = forward('Sigmoid', '', x)
    np.testing.assert_array_equal(top[0].data, [0, 0, 0.5, 1, 1])
    np.testing.assert_array_equal(backward(layer, bottom, top, np.ones(5, np.float32)),
                                  [0, 0, 0.25, 0, 0])
    layer, bottom, top = forward('TanH', '', x)
    np.testing.assert_array_equal(top[0].data, [-1, -1, 0, 1, 1])
    np.testing.assert_array_equal(backward(layer, bottom, top, np.ones(5, np.float32)),
                                  [0, 0, 1, 0, 0])


def test_swish_beta_zero_is_half_x():
    x = gaussian()
    _, _, top = forward('Swish', 'swish_param { beta: 0 }', x)
    np.testing.assert_array_equal(top[0].data, x * np.float32(0.5))


def test_threshold_is_strict_and_has_no_backward(tmp_path):
    x = np.array([-1, 0.3, np.nextafter(np.float32(0.3), np.float32(1)), 2], np.float32)
    layer, bottom, top = forward('Threshold', 'threshold_param { threshold: 0.3 }', x)
    np.testing.assert_array_equal(top[0].data, [0, 0, 1, 1])
    top[0].diff[...] = 1
    with pytest.raises(CaffeError, match="Threshold layer 'n': has no backward"):
        layer.backward(top, [True], bottom)
    layer.backward(top, [False], bottom)  # nothing asked, nothing to refuse
    # In a net, forward_backward runs as long as nothing below needs a gradient through it.
    net = tmp_path / 'net.prototxt'
    net.write_text('input: "x" input_shape { dim: 4 }\n'
                   'layer { name: "t" type: "Threshold" bottom: "x" top: "t" }\n'
                   'layer { name: "s" type: "Power" bottom: "t" top: "s" power_param { '
                   'scale: 2 } loss_weight: 1 }\n')
    n = caffe.Net(str(net), caffe.TRAIN)
    n.forward(x=x)
    n.backward()


# In place --------------------------------------------------------------------------------------
IN_PLACE = [('BNLL', ''), ('Clip', 'clip_param { min: -1 max: 1 }'),
            ('ELU', 'elu_param { alpha: 0.7 }'), ('Exp', exp_params(2, 0.5, 0.3)),
            ('Log', log_params(2, 0.5, 3)), ('Power', 'power_param { power: 1.5 shift: 4 }'),
            ('Sigmoid', ''), ('Swish', 'swish_param { beta: 1.3 }'), ('TanH', ''),
            ('Threshold', 'threshold_param { threshold: 0.1 }')]
# Backward reads only the output (or nothing), so in place computes the same gradient.
SAME_GRADIENT_IN_PLACE = {'ELU', 'Exp', 'Sigmoid', 'Swish', 'TanH'}


@pytest.mark.parametrize('kind,params', IN_PLACE, ids=[c[0] for c in IN_PLACE])
def test_in_place(kind, params):
    x, dy = gaussian(5), gaussian(6)
    layer, bottom, top = forward(kind, params, x)
    y = top[0].data.copy()
    layer_in, bottom_in, _ = build_layer(text(kind, params), [x])
    top_in = bottom_in
    layer_in.reshape(bottom_in, top_in)
    layer_in.forward(bottom_in, top_in)
    np.testing.assert_array_equal(bottom_in[0].data, y)
    if kind == 'Threshold':
        return
    dx = backward(layer, bottom, top, dy)
    top_in[0].diff[...] = dy
    layer_in.backward(top_in, [True], bottom_in)
    if kind in SAME_GRADIENT_IN_PLACE:
        np.testing.assert_array_equal(bottom_in[0].diff, dx)
    elif kind == 'Power':
        # Caffe's power * scale * y / (scale * x + shift) with x read from the bottom: y.
        expect = dy * ((y / (y + np.float32(4))) * np.float32(1.5))
        np.testing.assert_array_equal(bottom_in[0].diff, expect)
    else:
        # As in Caffe, backward reads the bottom's data, which in place is the output: the
        # gradient is the one at y (Caffe lets these layers run in place all the same).
        layer_at_y, bottom_y, top_y = forward(kind, params, y)
        np.testing.assert_array_equal(bottom_in[0].diff,
                                      backward(layer_at_y, bottom_y, top_y, dy))


def test_no_backward_when_not_asked():
    for kind, params in IN_PLACE:
        layer, bottom, top = forward(kind, params, gaussian())
        top[0].diff[...] = 1
        bottom[0].diff[...] = 7
        layer.backward(top, [False], bottom)
        assert (bottom[0].diff == 7).all(), kind


# Large blobs: every block, the ragged end, and the threaded path -------------------------------
def vectorized_reference(kind, x):
    v = x.astype(np.float64)
    return {
        'AbsVal': np.abs(v), 'BNLL': np.logaddexp(0, v), 'TanH': np.tanh(v),
        'Sigmoid': 1 / (1 + np.exp(-v)), 'Swish': v / (1 + np.exp(-v)),
        'ELU': np.where(v > 0, v, np.expm1(np.minimum(v, 0))), 'Exp': np.exp(v),
        'Clip': np.clip(v, -1, 1), 'Threshold': (v > 0).astype(np.float64),
        'Power': np.abs(0.5 * v + 4) ** 1.5, 'Log': np.log(0.5 * np.abs(v) + 1),
    }[kind]


@pytest.mark.parametrize('kind', ['AbsVal', 'BNLL', 'Clip', 'ELU', 'Exp', 'Log', 'Power',
                                  'Sigmoid', 'Swish', 'TanH', 'Threshold'])
def test_large_blob_matches_vectorized_reference(kind):
    params = {'Clip': 'clip_param { min: -1 max: 1 }',
              'Power': 'power_param { power: 1.5 scale: 0.5 shift: 4 }',
              'Log': 'log_param { scale: 0.5 shift: 1 }'}.get(kind, '')
    x = gaussian(7, shape=(3, 7, 97, 151), std=2)     # 307,839 elements: 10 blocks, ragged end
    if kind in ('Log', 'Power'):
        x = np.abs(x)
    _, _, top = forward(kind, params, x)
    np.testing.assert_allclose(top[0].data, vectorized_reference(kind, x), rtol=2e-6, atol=2e-6)


def test_the_group_is_registered():
    types = {'AbsVal', 'BNLL', 'Clip', 'ELU', 'Exp', 'Log', 'Power', 'PReLU', 'Sigmoid', 'Swish',
             'TanH', 'Threshold', 'ContrastiveLoss', 'EuclideanLoss', 'HingeLoss', 'InfogainLoss',
             'MultinomialLogisticLoss', 'SigmoidCrossEntropyLoss'}
    assert types <= set(caffe.layer_type_list())
    from caffe.layer import LAYERS
    losses = {t for t in types if t.endswith('Loss')}
    assert all(LAYERS[t].default_loss_weight == 1.0 for t in losses)
    assert all(LAYERS[t].default_loss_weight == 0.0 for t in types - losses)
