"""caffe.gpu.sgd_update (for a solver that keeps its parameters on the GPU) against Caffe's SGD
step written out in float32 numpy, as caffe/solver.py computes it on the host."""
import numpy as np
import pytest

import caffe
from caffe import gpu


def host_step(data, diff, history, rate, momentum, decay, regularization, iter_size):
    f = np.float32
    diff = diff.copy()
    if iter_size > 1:
        diff *= f(1.0 / iter_size)
    if decay:
        diff += f(decay) * (data if regularization == 'L2' else np.sign(data))
    history = history * f(momentum)
    history += f(rate) * diff
    # the diff ends up holding the update value (Caffe copies the history into it)
    return data - history, history.copy(), history


@pytest.mark.parametrize('regularization,decay,iter_size', [
    ('L2', 0.0005, 1), ('L2', 0.0, 2), ('L1', 0.001, 3)])
def test_matches_the_host_update(backend, regularization, decay, iter_size):
    caffe.set_mode_gpu()
    rs = np.random.RandomState(0)
    data, diff, history = (rs.randn(1000).astype(np.float32) for _ in range(3))
    data[:10] = 0  # sign(0) = 0 for L1
    d_data, d_diff, d_history = gpu.to_device(data), gpu.to_device(diff), gpu.to_device(history)
    for _ in range(3):
        gpu.sgd_update(d_data, d_diff, d_history, 0.01 * 2.0, momentum=0.9, decay=decay,
                       regularization=regularization, iter_size=iter_size)
        data, diff, history = host_step(data, diff, history, 0.01 * 2.0, 0.9, decay,
                                        regularization, iter_size)
    np.testing.assert_array_equal(d_data.get(), data)
    np.testing.assert_array_equal(d_diff.get(), diff)
    np.testing.assert_array_equal(d_history.get(), history)


def test_solver_steps_on_the_device_match_the_host(backend, tmp_path, monkeypatch):
    """SGDSolver in GPU mode (history kept on the device, diffs cleared there) takes the same
    three steps of momentum, weight decay, lr_mult/decay_mult and iter_size 2 as on the CPU,
    and its snapshot holds the device history."""
    import os
    here = os.path.dirname(os.path.abspath(__file__))
    monkeypatch.syspath_prepend(os.path.join(os.path.dirname(here), 'caffe'))
    import test_solver
    (tmp_path / 'host').mkdir()
    host = test_solver.make_solver(tmp_path / 'host')
    host.step(3)
    (tmp_path / 'dev').mkdir()
    dev = test_solver.make_solver(tmp_path / 'dev')
    caffe.set_mode_gpu()
    try:
        dev.step(3)
        _, state = dev.snapshot()
    finally:
        caffe.set_mode_cpu()
    for a, b in zip(host.net.params['ip'], dev.net.params['ip']):
        np.testing.assert_allclose(b.data, a.data, rtol=1e-6, atol=1e-7)
    for a, b in zip(host.history, dev.history):
        np.testing.assert_allclose(b.data, a.data, rtol=1e-6, atol=1e-7)
    restored = test_solver.make_solver(tmp_path / 'dev')
    restored.restore(state)
    for a, b in zip(dev.history, restored.history):
        np.testing.assert_array_equal(a.data, b.data)
