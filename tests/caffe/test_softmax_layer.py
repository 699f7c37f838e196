import math

import numpy as np
import pytest

from caffe.testing import build_layer, check_gradient

SOFTMAX = 'name: "prob" type: "Softmax" bottom: "x" top: "y" %s'


def brute_softmax(x, axis):
    x = np.moveaxis(x.astype(np.float64), axis, -1)
    out = np.empty_like(x)
    for idx in np.ndindex(*x.shape[:-1]):
        row = [math.exp(v) for v in x[idx] - x[idx].max()]
        out[idx] = [v / sum(row) for v in row]
    return np.moveaxis(out, -1, axis)


@pytest.mark.parametrize('axis', [1, 2, -1])
def test_forward(axis):
    x = np.random.RandomState(0).randn(2, 3, 4).astype(np.float32) * 3
    param = 'softmax_param { axis: %d }' % axis if axis != 1 else ''
    layer, bottom, top = build_layer(SOFTMAX % param, [x])
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, brute_softmax(x, axis), rtol=1e-5, atol=1e-7)


def test_large_inputs_do_not_overflow():
    x = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1000.0, -1000.0]], dtype=np.float32)
    layer, bottom, top = build_layer(SOFTMAX % '', [x])
    layer.forward(bottom, top)
    assert np.isfinite(top[0].data).all()
    np.testing.assert_allclose(top[0].data, brute_softmax(x - x.max(1, keepdims=True), 1),
                               rtol=1e-6)


@pytest.mark.parametrize('axis', [1, 2])
def test_gradient(axis):
    x = np.random.RandomState(1).randn(2, 3, 2, 2).astype(np.float32)
    layer, bottom, top = build_layer(SOFTMAX % ('softmax_param { axis: %d }' % axis), [x])
    check_gradient(layer, bottom, top, max_checks=20)
