"""The fused SGD update (caffe.sgd_kernels) against Caffe's steps written out in numpy float32,
one rounding per operation in Caffe's order (Normalize, Regularize, ComputeUpdateValue,
Update), bit for bit; and the SGD solver's fused update against the step-by-step path of the
Solver base class on a net with lr_mult and decay_mult 0."""
import contextlib
import io as text_io

import numpy as np
import pytest

from caffe import sgd_solvers  # imports caffe.layers (OpenMP's wait policy), then the kernels
from caffe.solver import Solver
sgd_kernels = sgd_solvers.sgd_kernels
from test_solvers import make

f32 = np.float32
# One block, several blocks with a ragged end, and past the threading threshold.
SIZES = [5, 3 * (1 << 14) + 7, (1 << 20) + 3]


def caffe_steps(w, g, h, rate, momentum, decay, iter_size):
    w, g, h = w.copy(), g.copy(), h.copy()
    if iter_size > 1:
        g *= f32(1) / f32(iter_size)
    if decay:
        g += w * f32(decay)
    h *= f32(momentum)
    g *= f32(rate)
    h += g
    g[...] = h
    w -= g
    return w, g, h


@pytest.mark.parametrize('n', SIZES)
@pytest.mark.parametrize('rate,momentum,decay,iter_size', [
    (0.001, 0.9, 0.0005, 1),     # the paper's settings, lr_mult 1
    (0.002, 0.9, 0.0, 1),        # lr_mult 2, decay_mult 0 (biases)
    (0.0, 0.9, 0.0005, 1),       # lr_mult 0: momentum still decays the history
    (0.01, 0.0, 0.01, 3),        # no momentum, iter_size 3
])
def test_matches_caffes_steps_bit_for_bit(n, rate, momentum, decay, iter_size):
    r = np.random.RandomState(n)
    w, g, h = (r.randn(n).astype(np.float32) for _ in range(3))
    expect = caffe_steps(w, g, h, rate, momentum, decay, iter_size)
    sgd_kernels.sgd_update(w, g, h, f32(rate), f32(momentum), f32(decay), iter_size)
    for got, want in zip((w, g, h), expect):
        np.testing.assert_array_equal(got, want)


def test_bad_arguments_are_refused():
    a, b = np.zeros(4, np.float32), np.zeros(5, np.float32)
    with pytest.raises(ValueError, match='4, 5 and 4'):
        sgd_kernels.sgd_update(a, b, a.copy(), 0.1, 0.9, 0.0, 1)
    with pytest.raises(ValueError, match='iter_size'):
        sgd_kernels.sgd_update(a, a.copy(), a.copy(), 0.1, 0.9, 0.0, 0)


@pytest.mark.parametrize('extra', ['', 'regularization_type: "L1"\n'])
def test_sgd_solver_matches_the_step_by_step_update(tmp_path, extra):
    # test_solvers' net: weights lr_mult 1 / decay_mult 1, biases lr_mult 2 / decay_mult 0;
    # iter_size 2, weight decay 0.01. A third solver freezes the weights (lr_mult 0) by hand.
    fused, steps = make(tmp_path, 'SGD', extra), make(tmp_path, 'SGD', extra)
    steps.update_cpu = lambda i, rate: Solver.update_cpu(steps, i, rate)
    with contextlib.redirect_stdout(text_io.StringIO()):
        for solver in (fused, steps):
            solver.net.params_lr[0] = 0.0
            solver.step(3)
    for a, b in zip(fused.net.params['ip'], steps.net.params['ip']):
        np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_array_equal(a.diff, b.diff)
    for a, b in zip(fused.history, steps.history):
        np.testing.assert_array_equal(a.data, b.data)
    assert not np.array_equal(fused.history[0].data, 0)
