"""Reduction: SUM, ASUM, SUMSQ and MEAN over every axis from `axis` on, Caffe's coeff (divided
by the count for MEAN), top shapes, brute-force float64 values and gradients, and Caffe's
exhaustive gradient check."""
import numpy as np
import pytest

from caffe.testing import build_layer, check_gradient_exhaustive

OPS = {'SUM': lambda x: x.sum(1), 'ASUM': lambda x: np.abs(x).sum(1),
       'SUMSQ': lambda x: (x ** 2).sum(1), 'MEAN': lambda x: x.mean(1)}


def reduction_text(op, axis, coeff):
    return ('name: "r" type: "Reduction" bottom: "x" top: "y" reduction_param { '
            'operation: %s axis: %d coeff: %g }' % (op, axis, coeff))


@pytest.mark.parametrize('op', sorted(OPS))
@pytest.mark.parametrize('axis,coeff', [(0, 1), (1, 2.5), (2, -0.5), (-1, 1)])
def test_forward_backward(op, axis, coeff):
    r = np.random.RandomState(0)
    x = r.randn(2, 3, 4).astype(np.float32)
    layer, bottom, top = build_layer(reduction_text(op, axis, coeff), [x])
    layer.forward(bottom, top)
    a = axis % 3
    assert top[0].shape == x.shape[:a]          # axis 0: a scalar (0-axis) top
    rows = x.reshape(int(np.prod(x.shape[:a])), -1).astype(np.float64)
    np.testing.assert_allclose(top[0].data.ravel(), coeff * OPS[op](rows), rtol=1e-5,
                               atol=1e-6)
    dy = np.asarray(r.randn(*top[0].shape), np.float32)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    factor = coeff * np.asarray(dy, np.float64).reshape(-1, 1)
    if op == 'MEAN':
        factor = factor / rows.shape[1]
    local = {'SUM': np.ones_like(rows), 'MEAN': np.ones_like(rows), 'ASUM': np.sign(rows),
             'SUMSQ': 2 * rows}[op]
    np.testing.assert_allclose(bottom[0].diff, (factor * local).reshape(x.shape), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize('op', sorted(OPS))
def test_gradient_exhaustive(op):
    x = np.random.RandomState(1).randn(2, 2, 3)
    x[np.abs(x) < 0.05] = 0.5     # ASUM: keep away from the kink at 0
    layer, bottom, top = build_layer(reduction_text(op, 1, 2), [x])
    check_gradient_exhaustive(layer, bottom, top)


def test_asum_gradient_at_zero_is_zero():
    layer, bottom, top = build_layer(reduction_text('ASUM', 0, 1), [np.array([0, -2, 3.0])])
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, [0, -1, 1])
