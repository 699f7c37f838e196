"""Every Caffe solver (SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam) against a float64 hand
computation of its update rule, written here from the rules as Caffe documents them; get_solver
dispatch on `type` and the old `solver_type`; snapshot/restore continuing bit for bit; pycaffe's
callbacks, share_weights, apply_update and the data-parallel settings."""
import contextlib
import io as text_io

import numpy as np
import pytest

import caffe
from caffe import common
from caffe.proto import caffe_pb2
from test_solver import BATCHES, TARGETS, W0, B0, net_text

LR_MULT = (1, 2)        # the test net's weights and biases
DECAY_MULT = (1, 0)

# Each solver's hyperparameters. The deltas are large enough that where a rule puts delta
# (inside or outside the root, corrected or not) changes the numbers well beyond rounding.
METHODS = {
    'SGD': 'base_lr: 0.1\nmomentum: 0.9\n',
    'Nesterov': 'base_lr: 0.1\nmomentum: 0.9\n',
    'AdaGrad': 'base_lr: 0.2\ndelta: 0.1\n',
    'RMSProp': 'base_lr: 0.05\nrms_decay: 0.9\ndelta: 0.1\n',
    'AdaDelta': 'base_lr: 1.0\nmomentum: 0.9\ndelta: 0.01\n',
    'Adam': 'base_lr: 0.05\nmomentum: 0.9\nmomentum2: 0.99\ndelta: 0.1\n',
}
CLASSES = {'SGD': 'SGDSolver', 'Nesterov': 'NesterovSolver', 'AdaGrad': 'AdaGradSolver',
           'RMSProp': 'RMSPropSolver', 'AdaDelta': 'AdaDeltaSolver', 'Adam': 'AdamSolver'}
TWO_SETS = ('AdaDelta', 'Adam')


def write_solver(tmp_path, method, extra='', type_line=None):
    """A solver file for the linear-regression net of test_solver: a step lr policy, weight
    decay 0.01, iter_size 2, the method's METHODS settings; lines of `extra` replace those of
    the same field."""
    (tmp_path / 'net.prototxt').write_text(net_text())
    if type_line is None:
        type_line = 'type: "%s"\n' % method
    base = ('net: "%s"\nlr_policy: "step"\ngamma: 0.5\nstepsize: 2\nweight_decay: 0.01\n'
            'iter_size: 2\nmax_iter: 6\ndisplay: 0\nsnapshot_prefix: "%s"\n%s'
            % (tmp_path / 'net.prototxt', tmp_path / 'snap', METHODS[method]))
    overridden = {line.split(':')[0] for line in extra.splitlines()}
    kept = ''.join(line + '\n' for line in base.splitlines()
                   if line.split(':')[0] not in overridden)
    path = tmp_path / 'solver.prototxt'
    path.write_text(type_line + kept + extra)
    return str(path)


def start(solver):
    solver.net.params['ip'][0].data[...] = W0
    solver.net.params['ip'][1].data[...] = B0
    return solver


def make(tmp_path, method, extra=''):
    return start(caffe.get_solver(write_solver(tmp_path, method, extra)))


def quiet(fn, *args):
    with contextlib.redirect_stdout(text_io.StringIO()):
        return fn(*args)


def hyper(method, name, default=0.0):
    """A hyperparameter of METHODS[method] as float32 holds it, in float64."""
    for line in METHODS[method].splitlines():
        key, value = line.split(':')
        if key == name:
            return float(np.float32(value))
    return default


# The hand computation -----------------------------------------------------------------------------

def summed_gradients(params, k, iter_size=2):
    """Gradients of the net's half squared error, summed over iter_size passes (Caffe
    accumulates, then divides); FixedData hands out the two batches in turn."""
    W, b = params
    gW, gb = np.zeros_like(W), np.zeros_like(b)
    for _ in range(iter_size):
        x, t = np.array(BATCHES[k % 2]), np.array(TARGETS[k % 2])
        k += 1
        d = x @ W.T + b - t
        gW += d.T @ x / 4
        gb += d.sum(0) / 4
    return [gW, gb], k


def hand_update(method, g, state, rate, t):
    """One parameter's update value by the method's rule; `state` holds its history."""
    if method in ('SGD', 'Nesterov'):
        m = hyper(method, 'momentum')
        before = state.get('h', np.zeros_like(g))
        state['h'] = m * before + rate * g
        if method == 'SGD':
            return state['h']
        return (1 + m) * state['h'] - m * before
    delta = hyper(method, 'delta')
    if method == 'AdaGrad':
        state['h'] = state.get('h', 0) + g ** 2
        return rate * g / (np.sqrt(state['h']) + delta)
    if method == 'RMSProp':
        d = hyper(method, 'rms_decay')
        state['h'] = d * state.get('h', 0) + (1 - d) * g ** 2
        return rate * g / (np.sqrt(state['h']) + delta)
    if method == 'AdaDelta':
        m = hyper(method, 'momentum')
        state['h'] = m * state.get('h', 0) + (1 - m) * g ** 2
        step = g * np.sqrt((state.get('h2', 0) + delta) / (state['h'] + delta))
        state['h2'] = m * state.get('h2', 0) + (1 - m) * step ** 2
        return rate * step
    if method == 'Adam':
        b1, b2 = hyper(method, 'momentum'), hyper(method, 'momentum2')
        state['h'] = b1 * state.get('h', 0) + (1 - b1) * g
        state['h2'] = b2 * state.get('h2', 0) + (1 - b2) * g ** 2
        correction = np.sqrt(1 - b2 ** t) / (1 - b1 ** t)   # folded into the rate
        return rate * correction * state['h'] / (np.sqrt(state['h2']) + delta)
    raise AssertionError(method)


def hand_run(method, iters, regularization='L2', clip=-1.0):
    """float64: weights and per-parameter history after `iters` iterations of Caffe's
    ApplyUpdate: clip (the summed gradients), normalize by iter_size 2, regularize, update."""
    base_lr = hyper(method, 'base_lr')
    params = [W0.astype(np.float64), B0.astype(np.float64)]
    states = [{}, {}]
    k = 0
    for it in range(iters):
        rate = base_lr * 0.5 ** (it // 2)
        g, k = summed_gradients(params, k)
        norm = np.sqrt(sum((x ** 2).sum() for x in g))
        if 0 <= clip < norm:
            g = [x * clip / norm for x in g]
        for j in range(2):
            gj = g[j] / 2
            reg = params[j] if regularization == 'L2' else np.sign(params[j])
            gj = gj + 0.01 * DECAY_MULT[j] * reg
            params[j] = params[j] - hand_update(method, gj, states[j], rate * LR_MULT[j], it + 1)
    return params, states


def history_of(solver, method, set_index, j):
    return solver.history[set_index * 2 + j].data


# Update rules -----------------------------------------------------------------------------------

@pytest.mark.parametrize('method', list(METHODS))
@pytest.mark.parametrize('regularization,clip', [('L2', -1.0), ('L1', -1.0), ('L2', 2.5)])
def test_four_steps_match_the_hand_computation(tmp_path, method, regularization, clip):
    """Momentum/decay rates, lr_mult 1 and 2, decay_mult 1 and 0, iter_size 2, a step lr
    policy, L1 or L2 weight decay, and clipping of the summed gradients (norm about 3.7 at
    first: 2.5 clips it, and would not clip the iter_size mean)."""
    extra = 'regularization_type: "%s"\nclip_gradients: %g\n' % (regularization, clip)
    solver = make(tmp_path, method, extra)
    assert type(solver).__name__ == CLASSES[method] and solver.type == method
    quiet(solver.step, 4)
    params, states = hand_run(method, 4, regularization, clip)
    for j, (blob, expected) in enumerate(zip(solver.net.params['ip'], params)):
        np.testing.assert_allclose(blob.data, expected, rtol=1e-5, atol=2e-6)
        np.testing.assert_allclose(history_of(solver, method, 0, j), states[j]['h'],
                                   rtol=1e-5, atol=1e-7)
        if method in TWO_SETS:
            np.testing.assert_allclose(history_of(solver, method, 1, j), states[j]['h2'],
                                       rtol=1e-5, atol=1e-9)
    assert len(solver.history) == (4 if method in TWO_SETS else 2)
    assert not np.allclose(solver.net.params['ip'][0].data, W0, atol=1e-3)


@pytest.mark.parametrize('method', list(METHODS))
def test_diff_holds_the_update_value(tmp_path, method):
    """As in Caffe, ComputeUpdateValue leaves the update in diff and the net subtracts it."""
    solver = make(tmp_path, method)
    quiet(solver.step, 2)
    before = [b.data.copy() for b in solver.net.params['ip']]
    quiet(solver.step, 1)
    for b, w in zip(solver.net.params['ip'], before):
        assert np.array_equal(b.data, w - b.diff)
        assert np.any(b.diff != 0)


def test_adam_bias_correction_uses_the_iteration(tmp_path):
    """Adam's first step moves each weight by about base_lr * lr_mult * sqrt(1-b2)/(1-b1) times
    m / (sqrt(v) + delta); starting the solver at iteration 10 uses t = 11 instead."""
    fresh = make(tmp_path, 'Adam')
    later = make(tmp_path, 'Adam')
    later.iter = 10
    quiet(later.step, 1)      # the step policy halves the rate every 2 iterations too
    quiet(fresh.step, 1)
    g, _ = summed_gradients([W0.astype(np.float64), B0.astype(np.float64)], 0)
    gW = g[0] / 2 + 0.01 * W0
    b1, b2, delta = 0.9, float(np.float32(0.99)), 0.1
    m, v = (1 - b1) * gW, (1 - b2) * gW ** 2
    for solver, t, rate in ((fresh, 1, 0.05), (later, 11, 0.05 * 0.5 ** 5)):
        correction = np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        expected = W0 - rate * correction * m / (np.sqrt(v) + delta)
        np.testing.assert_allclose(solver.net.params['ip'][0].data, expected, rtol=1e-5,
                                   atol=1e-7)


# get_solver and the constructors ------------------------------------------------------------

@pytest.mark.parametrize('method', list(METHODS))
def test_get_solver_follows_type(tmp_path, method):
    solver = caffe.get_solver(write_solver(tmp_path, method))
    assert isinstance(solver, getattr(caffe, CLASSES[method]))
    assert isinstance(solver, caffe.Solver)


@pytest.mark.parametrize('method,enum', [
    ('SGD', 'SGD'), ('Nesterov', 'NESTEROV'), ('AdaGrad', 'ADAGRAD'), ('RMSProp', 'RMSPROP'),
    ('AdaDelta', 'ADADELTA'), ('Adam', 'ADAM')])
def test_get_solver_follows_the_old_solver_type(tmp_path, method, enum):
    path = write_solver(tmp_path, method, type_line='solver_type: %s\n' % enum)
    solver = caffe.get_solver(path)
    assert type(solver).__name__ == CLASSES[method]
    assert solver.param.type == method and not solver.param.HasField('solver_type')


def test_type_and_solver_type_together_are_refused(tmp_path):
    path = write_solver(tmp_path, 'Adam', type_line='type: "Adam"\nsolver_type: ADAM\n')
    with pytest.raises(caffe.CaffeError, match='solver_type.*type'):
        caffe.get_solver(path)


def test_unknown_type_names_the_known_ones(tmp_path):
    path = write_solver(tmp_path, 'SGD', type_line='type: "Adamax"\n')
    with pytest.raises(caffe.CaffeError, match='unknown solver type "Adamax".*AdaDelta, '
                       'AdaGrad, Adam, Nesterov, RMSProp, SGD'):
        caffe.get_solver(path)


def test_a_solver_class_runs_its_own_method_whatever_the_file_says(tmp_path, capsys):
    """pycaffe's caffe.SGDSolver(file) is SGD even for a file that asks for Adam."""
    solver = start(caffe.SGDSolver(write_solver(tmp_path, 'Adam')))
    assert type(solver) is caffe.SGDSolver and len(solver.history) == 2
    assert 'asks for solver type "Adam"; SGDSolver runs SGD' in capsys.readouterr().out


def test_the_base_class_cannot_be_built(tmp_path):
    with pytest.raises(caffe.CaffeError, match='get_solver'):
        caffe.Solver(write_solver(tmp_path, 'SGD'))


@pytest.mark.parametrize('method,extra,message', [
    ('AdaGrad', 'momentum: 0.9\n', 'momentum cannot be used with AdaGrad'),
    ('RMSProp', 'momentum: 0.9\n', 'momentum cannot be used with RMSProp'),
    ('RMSProp', 'rms_decay: 1.0\n', r'rms_decay is 1; it must lie in \[0, 1\)'),
    ('SGD', 'regularization_type: "L3"\n', 'unknown regularization_type "L3"')])
def test_bad_hyperparameters_are_clear_errors(tmp_path, method, extra, message):
    with pytest.raises(caffe.CaffeError, match=message):
        caffe.get_solver(write_solver(tmp_path, method, extra))


# Snapshot and restore ---------------------------------------------------------------------------

def run_interrupted(tmp_path, method, extra='', prepare=None):
    """3 steps, snapshot, 2 more steps; then a fresh solver restored from the snapshot takes
    the same 2 steps. Returns both solvers and the snapshot's paths."""
    solver = make(tmp_path, method, extra)
    if prepare:
        prepare(solver)
    quiet(solver.step, 3)
    model, state = quiet(solver.snapshot)
    quiet(solver.step, 2)
    resumed = make(tmp_path, method, extra)
    if prepare:
        prepare(resumed)
    resumed.net.params['ip'][0].data[...] = 0     # restore must bring the weights back
    quiet(resumed.restore, state)
    assert resumed.iter == 3
    resumed.net.layers[0].k = 6                   # the data position is not solver state
    quiet(resumed.step, 2)
    return solver, resumed, model, state


@pytest.mark.parametrize('method', list(METHODS))
def test_restore_continues_bit_for_bit(tmp_path, method):
    solver, resumed, model, state = run_interrupted(tmp_path, method)
    assert model.endswith('snap_iter_3.caffemodel') and state.endswith('snap_iter_3.solverstate')
    for a, b in zip(solver.net.params['ip'], resumed.net.params['ip']):
        assert np.array_equal(a.data, b.data)
    for a, b in zip(solver.history, resumed.history):
        assert np.array_equal(a.data, b.data)
    assert resumed.iter == solver.iter == 5


@pytest.mark.parametrize('method', ['SGD', 'AdaDelta', 'Adam'])
def test_solverstate_keeps_the_history_in_caffes_order(tmp_path, method):
    """One step from zero history: the first set (SGD's history, AdaDelta's squared
    gradients, Adam's m) for both parameters, then the second (squared steps, v)."""
    solver = make(tmp_path, method)
    quiet(solver.step, 1)
    _, state_file = quiet(solver.snapshot)
    state = caffe_pb2.SolverState()
    with open(state_file, 'rb') as f:
        state.ParseFromString(f.read())
    g, _ = summed_gradients([W0.astype(np.float64), B0.astype(np.float64)], 0)
    g = [g[0] / 2 + 0.01 * W0, g[1] / 2]
    m = hyper(method, 'momentum')
    if method == 'SGD':
        expected = [0.1 * LR_MULT[j] * g[j] for j in range(2)]
    elif method == 'Adam':
        expected = [(1 - m) * g[0], (1 - m) * g[1],
                    (1 - 0.99) * g[0] ** 2, (1 - 0.99) * g[1] ** 2]
    else:
        steps = [gj * np.sqrt(0.01 / ((1 - m) * gj ** 2 + 0.01)) for gj in g]
        expected = [(1 - m) * g[0] ** 2, (1 - m) * g[1] ** 2,
                    (1 - m) * steps[0] ** 2, (1 - m) * steps[1] ** 2]
    assert len(state.history) == len(expected) and state.iter == 1
    for proto, e in zip(state.history, expected):
        assert tuple(proto.shape.dim) == e.shape
        np.testing.assert_allclose(np.array(proto.data).reshape(e.shape), e, rtol=1e-5,
                                   atol=1e-9)


def test_step_policy_records_its_step_in_the_state(tmp_path):
    solver = make(tmp_path, 'SGD')
    quiet(solver.step, 5)                         # the last update ran at iteration 4
    _, state_file = quiet(solver.snapshot)
    state = caffe_pb2.SolverState()
    with open(state_file, 'rb') as f:
        state.ParseFromString(f.read())
    assert state.current_step == 4 // 2 and state.iter == 5


def test_a_state_of_another_method_is_refused(tmp_path):
    sgd = make(tmp_path, 'SGD')
    quiet(sgd.step, 1)
    _, state = quiet(sgd.snapshot)
    adam = make(tmp_path, 'Adam')
    with pytest.raises(caffe.CaffeError, match='holds 2 history blobs; this AdamSolver keeps 4'):
        adam.restore(state)


def binary_save_hdf5(solver):
    """Stands in for Net.save_hdf5 where this runtime has none yet: the weights go to the
    .caffemodel.h5 path as a binary NetParameter, which restore reads back by content (as
    Caffe's CopyTrainedLayersFrom decides by content); the state file is real HDF5."""
    if not hasattr(caffe.Net, 'save_hdf5'):
        solver.net.save_hdf5 = lambda path: caffe.io.write_binary(path, solver.net.to_proto())


@pytest.mark.parametrize('method', ['SGD', 'AdaDelta', 'Adam'])
def test_hdf5_snapshot_restores_bit_for_bit(tmp_path, method):
    h5py = pytest.importorskip('h5py')
    solver, resumed, model, state = run_interrupted(
        tmp_path, method, 'snapshot_format: HDF5\n', prepare=binary_save_hdf5)
    assert model.endswith('snap_iter_3.caffemodel.h5')
    assert state.endswith('snap_iter_3.solverstate.h5')
    for a, b in zip(solver.net.params['ip'], resumed.net.params['ip']):
        assert np.array_equal(a.data, b.data)
    for a, b in zip(solver.history, resumed.history):
        assert np.array_equal(a.data, b.data)
    with h5py.File(state, 'r') as f:      # Caffe's layout of an HDF5 solver state
        assert int(f['iter'][0]) == 3 and int(f['current_step'][0]) == 2 // 2
        assert f['learned_net'][()] == model.encode()
        assert sorted(f['history']) == [str(k) for k in range(len(solver.history))]


@pytest.mark.skipif(not hasattr(caffe.Net, 'save_hdf5'),
                    reason='Net.save_hdf5/load_hdf5 are not in this runtime yet')
def test_hdf5_snapshot_with_the_nets_own_hdf5_weights(tmp_path):
    h5py = pytest.importorskip('h5py')
    solver, resumed, model, _ = run_interrupted(tmp_path, 'Adam', 'snapshot_format: HDF5\n')
    assert h5py.is_hdf5(model)
    for a, b in zip(solver.net.params['ip'], resumed.net.params['ip']):
        assert np.array_equal(a.data, b.data)


# pycaffe's hooks --------------------------------------------------------------------------------

class Recorder:
    """A callback object (the form caffe.NCCL takes) that notes what it sees."""

    def __init__(self, solver, name, events):
        self.solver, self.name, self.events = solver, name, events

    def _note(self, event):
        params = self.solver.net.params['ip']
        self.events.append((event, self.name, self.solver.iter,
                            [p.data.copy() for p in params], [p.diff.copy() for p in params]))

    def on_start(self):
        self._note('start')

    def on_gradients_ready(self):
        self._note('gradients')


def test_callbacks_run_where_caffes_step_runs_them(tmp_path, monkeypatch):
    """Per iteration: test nets, every on_start (in the order added) with cleared diffs and
    the weights of the last update, the iter_size passes, every on_gradients_ready with the
    summed gradients and the weights not yet updated, then the update."""
    solver = make(tmp_path, 'SGD', 'test_iter: 1\ntest_interval: 1\n')
    events = []
    monkeypatch.setattr(solver, 'test_all', lambda: events.append(('test', solver.iter)))
    solver.add_callback(Recorder(solver, 'a', events))
    solver.add_callback(lambda: events.append(('start', 'f', solver.iter)),
                        lambda: events.append(('gradients', 'f', solver.iter)))
    quiet(solver.step, 2)
    order = [e[:3] if e[0] != 'test' else e for e in events]
    assert order == [('test', 0), ('start', 'a', 0), ('start', 'f', 0), ('gradients', 'a', 0),
                     ('gradients', 'f', 0), ('test', 1), ('start', 'a', 1), ('start', 'f', 1),
                     ('gradients', 'a', 1), ('gradients', 'f', 1)]
    seen = [e for e in events if e[1] == 'a']
    hand, _ = hand_run('SGD', 1)
    params, k = [W0.astype(np.float64), B0.astype(np.float64)], 0
    for it, (start_event, ready_event) in enumerate(zip(seen[::2], seen[1::2])):
        _, _, _, weights, diffs = start_event
        assert all(not d.any() for d in diffs)
        _, _, _, weights_ready, grads = ready_event
        expected, k = summed_gradients(params, k)
        for w, w_ready, g, e in zip(weights, weights_ready, grads, expected):
            assert np.array_equal(w, w_ready)
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
        if it == 0:
            for w, w0 in zip(weights, (W0, B0)):
                assert np.array_equal(w, w0)
        params = hand
    assert solver.iter == 2


def test_add_callback_refuses_what_it_cannot_call(tmp_path):
    solver = make(tmp_path, 'SGD')
    with pytest.raises(TypeError, match='on_start'):
        solver.add_callback(object())
    with pytest.raises(TypeError, match='two callables'):
        solver.add_callback(lambda: None, 3)


def test_share_weights_makes_a_net_read_the_training_weights(tmp_path):
    solver = make(tmp_path, 'SGD')
    net = caffe.Net(str(tmp_path / 'net.prototxt'), caffe.TEST)
    solver.share_weights(net)
    quiet(solver.step, 1)
    assert np.array_equal(net.params['ip'][0].data, solver.net.params['ip'][0].data)
    solver.net.params['ip'][1].data[...] = 7
    assert (net.params['ip'][1].data == 7).all()


def test_apply_update_steps_the_iteration_and_reports_the_rate(tmp_path, capsys):
    """pycaffe's apply_update: the update from whatever diffs the net holds, iter + 1."""
    solver = make(tmp_path, 'SGD', 'display: 1\n')
    for p in solver.net.params['ip']:
        p.diff[...] = 1
    rate = solver.apply_update()
    assert rate == pytest.approx(0.1) and solver.iter == 1
    assert 'Iteration 0, lr = 0.1' in capsys.readouterr().out
    decay = 0.01 * np.array(DECAY_MULT)
    expected_W = W0 - np.float32(0.1) * (np.float32(0.5) + np.float32(decay[0]) * W0)
    np.testing.assert_allclose(solver.net.params['ip'][0].data, expected_W, rtol=1e-6)
    np.testing.assert_allclose(solver.net.params['ip'][1].data, B0 - 0.2 * 0.5, rtol=1e-6)


def test_solve_runs_caffes_final_display_pass(tmp_path, capsys):
    """Caffe's Solve ends with one more forward pass when display divides max_iter."""
    solver = make(tmp_path, 'SGD', 'display: 2\n')
    solver.param.iter_size = 1
    solver.solve()
    assert solver.iter == 6
    assert solver.net.layers[0].k == 6 + 1
    out = capsys.readouterr().out
    assert 'Iteration 6, loss = ' in out and (tmp_path / 'snap_iter_6.solverstate').exists()


# Data-parallel settings -------------------------------------------------------------------------

@pytest.fixture
def ranks():
    yield
    caffe.set_solver_count(1)
    caffe.set_solver_rank(0)
    caffe.set_multiprocess(False)


def test_solver_settings_are_plain_settings(ranks):
    caffe.set_solver_count(4)
    caffe.set_solver_rank(3)
    caffe.set_multiprocess(True)
    assert (caffe.solver_count(), caffe.solver_rank(), common.multiprocess()) == (4, 3, True)
    assert not common.root_solver()
    with pytest.raises(ValueError):
        caffe.set_solver_rank(-1)
    with pytest.raises(ValueError):
        caffe.set_solver_count(0)


def test_only_the_root_rank_tests_displays_and_snapshots(tmp_path, ranks, capsys, monkeypatch):
    extra = 'snapshot: 1\ntest_iter: 1\ntest_interval: 1\ndisplay: 1\nrandom_seed: 5\n'
    caffe.set_solver_count(2)
    caffe.set_solver_rank(1)
    worker = make(tmp_path, 'SGD', extra)
    # each rank seeds with random_seed + rank
    assert common.rng().randint(1 << 30) == np.random.RandomState(5 + 1).randint(1 << 30)
    tests = []
    monkeypatch.setattr(worker, 'test_all', lambda: tests.append(worker.iter))
    worker.step(2)
    assert worker.iter == 2 and not tests and capsys.readouterr().out == ''
    assert not list(tmp_path.glob('snap_iter_*'))

    caffe.set_solver_rank(0)
    root = make(tmp_path, 'SGD', extra)
    monkeypatch.setattr(root, 'test_all', lambda: tests.append(root.iter))
    root.step(2)
    assert tests == [0, 1] and 'Iteration 1, lr = ' in capsys.readouterr().out
    assert (tmp_path / 'snap_iter_2.solverstate').exists()
