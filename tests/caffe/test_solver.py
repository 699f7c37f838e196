"""SGDSolver against a hand computation: momentum, weight decay, lr_mult/decay_mult, iter_size,
learning-rate policies, clipping, and snapshot/restore continuing exactly."""
import json

import numpy as np
import pytest

import caffe
from caffe.proto import caffe_pb2
from caffe.solver import learning_rate

RS = np.random.RandomState(3)
BATCHES = [RS.randn(4, 3).round(2).tolist(), RS.randn(4, 3).round(2).tolist()]
TARGETS = [RS.randn(4, 2).round(2).tolist(), RS.randn(4, 2).round(2).tolist()]
W0 = np.array([[0.5, -0.25, 0.1], [0.3, 0.2, -0.4]], dtype=np.float32)
B0 = np.array([0.05, -0.1], dtype=np.float32)


def net_text():
    param_str = json.dumps({'batches': BATCHES, 'targets': TARGETS})
    return '''
name: "linreg"
layer { name: "data" type: "Python" top: "x" top: "t"
        python_param { module: "net_test_layers" layer: "FixedData" param_str: "%s" } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
        param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        inner_product_param { num_output: 2 } }
layer { name: "loss" type: "Python" bottom: "y" bottom: "t" top: "loss" loss_weight: 1
        python_param { module: "net_test_layers" layer: "HalfSquaredError" } }
''' % param_str.replace('"', '\\"').strip()


def make_solver(tmp_path, extra=''):
    (tmp_path / 'net.prototxt').write_text(net_text())
    (tmp_path / 'solver.prototxt').write_text(
        'net: "%s"\nbase_lr: 0.1\nlr_policy: "step"\ngamma: 0.5\nstepsize: 2\nmomentum: 0.9\n'
        'weight_decay: 0.01\niter_size: 2\nmax_iter: 6\ndisplay: 0\nsnapshot_prefix: "%s"\n%s'
        % (tmp_path / 'net.prototxt', tmp_path / 'snap', extra))
    solver = caffe.SGDSolver(str(tmp_path / 'solver.prototxt'))
    solver.net.params['ip'][0].data[...] = W0
    solver.net.params['ip'][1].data[...] = B0
    return solver


def hand_sgd(iters, W, b, hW=None, hb=None, start=0):
    """Independent float64 computation of Caffe's SGD for the linear regression net."""
    W, b = W.astype(np.float64), b.astype(np.float64)
    hW = np.zeros_like(W) if hW is None else hW
    hb = np.zeros_like(b) if hb is None else hb
    k = 0                                         # FixedData alternates batches every forward
    for it in range(start, start + iters):
        rate = 0.1 * 0.5 ** (it // 2)
        gW, gb = np.zeros_like(W), np.zeros_like(b)
        for _ in range(2):                        # iter_size 2
            x, t = np.array(BATCHES[k % 2]), np.array(TARGETS[k % 2])
            k += 1
            d = x @ W.T + b - t
            gW += d.T @ x / 4
            gb += d.sum(0) / 4
        gW, gb = gW / 2, gb / 2                   # iter_size normalization
        gW += 0.01 * 1 * W                        # weight decay * decay_mult
        gb += 0.01 * 0 * b
        hW = 0.9 * hW + rate * 1 * gW             # lr_mult 1 for weights, 2 for biases
        hb = 0.9 * hb + rate * 2 * gb
        W, b = W - hW, b - hb
    return W, b, hW, hb


def test_three_sgd_steps_match_hand_computation(tmp_path):
    solver = make_solver(tmp_path)
    solver.step(3)
    W, b, _, _ = hand_sgd(3, W0, B0)
    assert solver.iter == 3
    assert np.allclose(solver.net.params['ip'][0].data, W, atol=1e-5)
    assert np.allclose(solver.net.params['ip'][1].data, b, atol=1e-5)


def test_snapshot_then_restore_continues_exactly(tmp_path):
    solver = make_solver(tmp_path)
    solver.step(3)
    model, state = solver.snapshot()
    assert model.endswith('snap_iter_3.caffemodel') and state.endswith('snap_iter_3.solverstate')
    solver.step(2)
    expected = [p.data.copy() for p in solver.net.params['ip']]

    resumed = make_solver(tmp_path)
    resumed.net.params['ip'][0].data[...] = 0    # restore must bring the weights back
    resumed.restore(state)
    assert resumed.iter == 3
    # the data layer's position is not solver state; align it with the uninterrupted run
    resumed.net.layers[0].k = 6
    resumed.step(2)
    for p, e in zip(resumed.net.params['ip'], expected):
        assert np.array_equal(p.data, e)


def test_lr_policies_at_chosen_iterations():
    p = caffe_pb2.SolverParameter(base_lr=0.01, gamma=0.1, stepsize=100, power=0.75,
                                  max_iter=1000)
    cases = {
        ('fixed', 555): 0.01,
        ('step', 99): 0.01, ('step', 100): 0.001, ('step', 250): 0.0001,
        ('exp', 2): 0.01 * 0.01,
        ('inv', 10): 0.01 * 2.0 ** -0.75,            # (1 + 0.1 * 10)^-0.75
        ('poly', 500): 0.01 * 0.5 ** 0.75,           # (1 - 500/1000)^0.75
    }
    for (policy, it), expected in cases.items():
        p.lr_policy = policy
        assert learning_rate(p, it) == pytest.approx(expected, rel=1e-6), policy


def test_multistep_through_the_solver(tmp_path):
    solver = make_solver(tmp_path, 'stepvalue: 1\nstepvalue: 3\n')
    solver.param.lr_policy = 'multistep'
    rates = []
    for _ in range(4):
        solver._advance_multistep()
        rates.append(solver.learning_rate())
        solver.iter += 1
    assert rates == pytest.approx([0.1, 0.05, 0.05, 0.025])


def test_clip_gradients_scales_the_update(tmp_path):
    solver = make_solver(tmp_path, 'clip_gradients: 0.01\n')
    solver.param.weight_decay = 0
    solver.param.momentum = 0
    solver.param.iter_size = 1
    solver.net.clear_param_diffs()
    solver.net.forward_backward()
    grads = [p.diff.copy() for p in solver.net.params['ip']]
    norm = np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads))
    before = [p.data.copy() for p in solver.net.params['ip']]
    solver.apply_update()
    for k, (p, g, w) in enumerate(zip(solver.net.params['ip'], grads, before)):
        lr_mult = (1, 2)[k]
        assert np.allclose(w - p.data, 0.1 * lr_mult * g * 0.01 / norm, atol=1e-7)


def test_solve_writes_final_snapshot(tmp_path):
    solver = make_solver(tmp_path)
    solver.solve()
    assert solver.iter == 6
    assert (tmp_path / 'snap_iter_6.caffemodel').exists()
    assert (tmp_path / 'snap_iter_6.solverstate').exists()


def test_solver_with_missing_net_is_a_clear_error(tmp_path):
    (tmp_path / 'solver.prototxt').write_text('net: "%s"\nbase_lr: 0.1\nlr_policy: "fixed"\n'
                                              % (tmp_path / 'absent.prototxt'))
    with pytest.raises(caffe.CaffeError, match='absent.prototxt'):
        caffe.SGDSolver(str(tmp_path / 'solver.prototxt'))
