"""The shared element-wise CPU kernels (caffe.layers.elementwise_kernels) against numpy formulas,
on sizes that cross their block and threading thresholds, in place and out of place; and the
layers that use them, run in place against the same layers run out of place."""
import os
import subprocess
import sys

import numpy as np
import pytest

import caffe
from caffe.layer import TRAIN
from caffe.layers import elementwise_kernels as k
from caffe.testing import build_layer

# Below one block, several blocks with a ragged end, and above the threading threshold.
SIZES = [7, 3 * (1 << 15) + 11, (1 << 18) + (1 << 15) + 5]


def values(n, seed):
    r = np.random.RandomState(seed)
    x = r.randn(n).astype(np.float32)
    x[::97] = 0
    x[1::131] = -0.0
    return x


@pytest.mark.parametrize('n', SIZES)
@pytest.mark.parametrize('slope', [0.0, 0.25])
def test_relu_forward_and_backward(n, slope):
    x, dy = values(n, 1), values(n, 2)
    s = np.float32(slope)
    expect_y = np.maximum(x, 0) + s * np.minimum(x, 0)
    expect_dx = dy * ((x > 0) + s * (x <= 0)).astype(np.float32)
    y = np.full(n, 7, np.float32)
    k.relu_forward(x, y, slope)
    np.testing.assert_array_equal(y, expect_y)
    dx = np.full(n, 7, np.float32)
    k.relu_backward(x, dy, dx, slope)
    np.testing.assert_array_equal(dx, expect_dx)
    # In place: the output overwrites the input.
    k.relu_forward(x, x, slope)
    np.testing.assert_array_equal(x, expect_y)
    k.relu_backward(values(n, 1), dy, dy, slope)
    np.testing.assert_array_equal(dy, expect_dx)


def test_relu_keeps_nan_and_caffe_infinities():
    x = np.array([np.nan, np.inf, -np.inf, -1, 2], np.float32)
    y = np.empty_like(x)
    k.relu_forward(x, y, 0.0)
    # max(x, 0) + 0 * min(x, 0): -inf gives 0 * -inf = NaN, as Caffe's CPU formula does.
    np.testing.assert_array_equal(y, [np.nan, np.inf, np.nan, 0, 2])


@pytest.mark.parametrize('n', SIZES)
def test_dropout_and_add_scaled(n):
    x = values(n, 3)
    keep = (np.random.RandomState(4).rand(n) < 0.6).astype(np.uint32)
    y = np.empty_like(x)
    k.dropout(x, keep, np.float32(1 / 0.6), y)
    np.testing.assert_array_equal(y, (x * keep.astype(np.float32)) * np.float32(1 / 0.6))
    acc = values(n, 5)
    expect = acc + np.float32(-1.7) * x
    k.add_scaled(-1.7, x, acc)
    np.testing.assert_array_equal(acc, expect)


@pytest.mark.parametrize('n', SIZES)
def test_eltwise_max_and_prod(n):
    a, b, c = values(n, 6), values(n, 7), values(n, 8)
    b[:50] = a[:50]  # ties go to the second bottom first, to the earlier one after
    y = np.empty_like(a)
    idx = np.empty(n, np.int32)
    k.eltwise_max_first(a, b, y, idx)
    k.eltwise_max_next(c, 2, y, idx)
    expect_idx = np.where(a > b, 0, 1)
    m = np.where(a > b, a, b)
    expect_idx = np.where(c > m, 2, expect_idx)
    np.testing.assert_array_equal(idx, expect_idx)
    np.testing.assert_array_equal(y, np.maximum(m, c))
    dy = values(n, 9)
    dx = np.empty_like(dy)
    k.eltwise_max_backward(dy, idx, 1, dx)
    np.testing.assert_array_equal(dx, np.where(expect_idx == 1, dy, 0))
    k.eltwise_prod_backward(y, a, dy, dx)
    with np.errstate(divide='ignore', invalid='ignore'):
        np.testing.assert_array_equal(dx, (y / a) * dy)


def test_size_mismatch_is_an_error():
    with pytest.raises(ValueError, match='relu_forward'):
        k.relu_forward(np.zeros(5, np.float32), np.zeros(4, np.float32), 0.0)


# Layers in place vs out of place ---------------------------------------------------------------
def run_layer(text, x, in_place, dy, seed=None, phase=TRAIN):
    if seed is not None:
        caffe.set_random_seed(seed)
    layer, bottom, top = build_layer(text, [x], phase=phase)
    if in_place:
        top = bottom
        layer.reshape(bottom, top)
    layer.forward(bottom, top)
    y = top[0].data.copy()
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    return y, bottom[0].diff.copy()


@pytest.mark.parametrize('text,phase', [
    ('name: "r" type: "ReLU" bottom: "x" top: "y"', TRAIN),
    ('name: "r" type: "ReLU" bottom: "x" top: "y" relu_param { negative_slope: 0.3 }', TRAIN),
    ('name: "d" type: "Dropout" bottom: "x" top: "y" dropout_param { dropout_ratio: 0.4 }', TRAIN),
    ('name: "d" type: "Dropout" bottom: "x" top: "y" dropout_param { dropout_ratio: 0.4 '
     'scale_train: false }', caffe.TEST),
    ('name: "d" type: "Dropout" bottom: "x" top: "y"', caffe.TEST),
])
def test_in_place_equals_out_of_place(text, phase):
    r = np.random.RandomState(10)
    x = r.randn(3, 70, 40, 41).astype(np.float32)   # above the threading threshold
    dy = r.randn(*x.shape).astype(np.float32)
    y_out, dx_out = run_layer(text, x, False, dy, seed=3, phase=phase)
    y_in, dx_in = run_layer(text, x, True, dy, seed=3, phase=phase)
    np.testing.assert_array_equal(y_in, y_out)
    np.testing.assert_array_equal(dx_in, dx_out)


def test_openmp_workers_sleep_between_regions_by_default():
    # libgomp reads the wait policy once, when the first OpenMP extension loads it; importing
    # the layers must set PASSIVE before that unless the user chose a policy.
    env = {k: v for k, v in os.environ.items() if k not in ('OMP_WAIT_POLICY', 'GOMP_SPINCOUNT')}
    code = ('import os, caffe.layers; print(os.environ.get("OMP_WAIT_POLICY"), '
            'any("libgomp" in l for l in open("/proc/self/maps")))')
    lib = os.path.join(os.path.dirname(__file__), '..', '..', 'lib')
    out = subprocess.run([sys.executable, '-c', code], env=dict(env, PYTHONPATH=lib),
                         stdout=subprocess.PIPE, text=True, check=True).stdout.split()
    assert out == ['PASSIVE', 'True']
    out = subprocess.run([sys.executable, '-c', code],
                         env=dict(env, PYTHONPATH=lib, OMP_WAIT_POLICY='active'),
                         stdout=subprocess.PIPE, text=True, check=True).stdout.split()
    assert out[0] == 'active'
