import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.testing import build_layer, check_gradient

ELT = 'name: "e" type: "Eltwise" bottom: "a" bottom: "b" bottom: "c" top: "y" eltwise_param { %s }'


def inputs(seed=0, shape=(2, 3, 4)):
    rs = np.random.RandomState(seed)
    # Away from zero (for the PROD quotient rule) and well apart (no MAX ties under the checker).
    n = int(np.prod(shape)) * 3
    vals = (rs.permutation(n) * 0.1 + 0.5) * rs.choice([-1, 1], n)
    return [v.reshape(shape).astype(np.float32) for v in np.split(vals, 3)]


def brute(op, xs, coeffs=(1, 1, 1)):
    out = np.zeros(xs[0].shape)
    for idx in np.ndindex(*xs[0].shape):
        vals = [float(x[idx]) for x in xs]
        if op == 'PROD':
            out[idx] = vals[0] * vals[1] * vals[2]
        elif op == 'SUM':
            out[idx] = sum(c * v for c, v in zip(coeffs, vals))
        else:
            out[idx] = max(vals)
    return out


@pytest.mark.parametrize('param,op,coeffs', [
    ('operation: PROD', 'PROD', None),
    ('operation: PROD stable_prod_grad: false', 'PROD', None),
    ('operation: SUM', 'SUM', (1, 1, 1)),
    ('operation: SUM coeff: 1 coeff: -0.5 coeff: 2', 'SUM', (1, -0.5, 2)),
    ('operation: MAX', 'MAX', None),
])
def test_forward_and_gradient(param, op, coeffs):
    xs = inputs()
    layer, bottom, top = build_layer(ELT % param, xs)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, brute(op, xs, coeffs or (1, 1, 1)), rtol=1e-6,
                               atol=1e-5)
    check_gradient(layer, bottom, top, max_checks=12)


def test_max_ties_and_backward_routing():
    a = np.array([1, 2, 3, 3], np.float32)
    b = np.array([1, 5, 3, 0], np.float32)
    c = np.array([1, 0, 3, 3], np.float32)
    layer, bottom, top = build_layer(ELT % 'operation: MAX', [a, b, c])
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, [1, 5, 3, 3])
    # Caffe: a tie between bottoms 0 and 1 goes to 1; a later bottom must be strictly larger.
    np.testing.assert_array_equal(layer.max_idx, [1, 1, 1, 0])
    top[0].diff[...] = [10, 20, 30, 40]
    layer.backward(top, [True, True, True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, [0, 0, 0, 40])
    np.testing.assert_array_equal(bottom[1].diff, [10, 20, 30, 0])
    np.testing.assert_array_equal(bottom[2].diff, [0, 0, 0, 0])


def test_stable_prod_grad_handles_zeros():
    a = np.array([0, 2], np.float32)
    b = np.array([3, 0], np.float32)
    c = np.array([4, 5], np.float32)
    layer, bottom, top = build_layer(ELT % 'operation: PROD', [a, b, c])
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    layer.backward(top, [True, True, True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, [12, 0])
    np.testing.assert_array_equal(bottom[1].diff, [0, 10])
    np.testing.assert_array_equal(bottom[2].diff, [0, 0])


def test_errors():
    xs = inputs()
    with pytest.raises(CaffeError, match='coeff'):
        build_layer(ELT % 'operation: SUM coeff: 1', xs)
    with pytest.raises(CaffeError, match='coeff'):
        build_layer(ELT % 'operation: PROD coeff: 1 coeff: 1 coeff: 1', xs)
    with pytest.raises(CaffeError, match='shape'):
        build_layer(ELT % '', [xs[0], xs[1], xs[2][:1]])
    with pytest.raises(CaffeError, match='at least 2'):
        build_layer('name: "e" type: "Eltwise" bottom: "a" top: "y"', xs[:1])
