"""Every solver's device update (caffe.gpu.*_update, kernels in elementwise.cu) against its host
update: the same apply_update calls on the same weights, gradients and history give the same
float32 bits in weights, diffs (the update values) and history; and a few whole training steps
in GPU mode agree with CPU mode."""
import os

import numpy as np
import pytest

import caffe

HERE = os.path.dirname(os.path.abspath(__file__))
METHODS = ('SGD', 'Nesterov', 'AdaGrad', 'RMSProp', 'AdaDelta', 'Adam')


@pytest.fixture
def solver_tests(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(os.path.dirname(HERE), 'caffe'))
    import test_solvers
    return test_solvers


def state_of(solver):
    blobs = list(solver.net.params['ip']) + list(solver.history)
    return [(b.data.copy(), b.diff.copy()) for b in blobs]


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('extra', [
    '',                                                         # L2, iter_size 2
    'regularization_type: "L1"\niter_size: 1\nclip_gradients: 0.5\n'])
def test_device_update_matches_the_host_bit_for_bit(backend, solver_tests, tmp_path, method,
                                                     extra):
    (tmp_path / 'host').mkdir()
    (tmp_path / 'dev').mkdir()
    host = solver_tests.make(tmp_path / 'host', method, extra)
    dev = solver_tests.make(tmp_path / 'dev', method, extra)
    for solver in (host, dev):
        solver.net.params['ip'][0].data[0, :2] = 0     # sign(0) = 0 for L1
    rs = np.random.RandomState(7)
    for _ in range(4):
        grads = [rs.randn(*p.data.shape).astype(np.float32) for p in host.net.params['ip']]
        for solver in (host, dev):
            for p, g in zip(solver.net.params['ip'], grads):
                p.diff[...] = g
        solver_tests.quiet(host.apply_update)
        caffe.set_mode_gpu()
        try:
            solver_tests.quiet(dev.apply_update)
        finally:
            caffe.set_mode_cpu()
        for (a_data, a_diff), (b_data, b_diff) in zip(state_of(host), state_of(dev)):
            np.testing.assert_array_equal(b_data, a_data)
            np.testing.assert_array_equal(b_diff, a_diff)
    assert dev.iter == host.iter == 4


@pytest.mark.parametrize('method', METHODS)
def test_training_steps_on_the_device_match_the_host(backend, solver_tests, tmp_path, method):
    """Three solver steps (forward/backward on the device too) and a snapshot of the device
    history that restores exactly."""
    (tmp_path / 'host').mkdir()
    (tmp_path / 'dev').mkdir()
    host = solver_tests.make(tmp_path / 'host', method)
    solver_tests.quiet(host.step, 3)
    dev = solver_tests.make(tmp_path / 'dev', method)
    caffe.set_mode_gpu()
    try:
        solver_tests.quiet(dev.step, 3)
        _, state = solver_tests.quiet(dev.snapshot)
    finally:
        caffe.set_mode_cpu()
    for a, b in zip(host.net.params['ip'], dev.net.params['ip']):
        np.testing.assert_allclose(b.data, a.data, rtol=1e-5, atol=1e-6)
    for a, b in zip(host.history, dev.history):
        np.testing.assert_allclose(b.data, a.data, rtol=1e-5, atol=1e-7)
    restored = solver_tests.make(tmp_path / 'dev', method)
    solver_tests.quiet(restored.restore, state)
    for a, b in zip(dev.history, restored.history):
        np.testing.assert_array_equal(a.data, b.data)
