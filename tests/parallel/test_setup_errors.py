"""How data-parallel runs are asked for, and the errors of a wrong setup: the GPU lists of the
training tools, a missing mpi4py, ranks that are not the MPI job's, a uid that is missing, and
layer-wise reduction of a net with shared weights."""
import os
import subprocess
import sys

import numpy as np
import pytest

import caffe
from caffe.common import CaffeError
import toy_problem
from mpirun import ROOT, loopback_env

TOOLS = os.path.join(ROOT, 'tools')


@pytest.fixture
def ranks():
    """Sets solver count/rank for a test and puts back a single solver afterwards."""
    def set_ranks(count, rank):
        caffe.set_solver_count(count)
        caffe.set_solver_rank(rank)
    yield set_ranks
    set_ranks(1, 0)


@pytest.fixture
def common_tools(monkeypatch):
    monkeypatch.syspath_prepend(TOOLS)
    import _common
    return _common


def test_gpu_lists_of_the_training_tools(common_tools):
    parse = common_tools.parse_devices
    assert parse('0') == [0] and parse('cpu') is None and parse('-1') is None
    assert parse('0,1,2,3') == [0, 1, 2, 3] and parse(' 2, 5') == [2, 5]
    for bad in ('0,0', '0,-1', '0,x', 'gpu0'):
        with pytest.raises(ValueError, match='--gpu'):
            parse(bad)


def test_one_solver_needs_no_library_and_exchanges_nothing(tmp_path, monkeypatch, ranks):
    monkeypatch.setitem(sys.modules, 'mpi4py', None)      # import mpi4py now fails
    solver = caffe.SGDSolver(toy_problem.write_solver(str(tmp_path), 'one', 1))
    nccl = caffe.NCCL(solver, caffe.NCCL.new_uid())
    assert nccl.engine == 'local' and len(caffe.NCCL.new_uid()) == 128
    nccl.bcast()
    solver.add_callback(nccl)
    solver.net.after_backward(nccl)
    solver.step(2)
    assert solver.iter == 2


def test_several_processes_without_mpi4py_say_what_to_install(tmp_path, monkeypatch, ranks):
    solver = caffe.SGDSolver(toy_problem.write_solver(str(tmp_path), 'two', 1))
    monkeypatch.setitem(sys.modules, 'mpi4py', None)
    ranks(2, 0)
    with pytest.raises(CaffeError, match=r'needs mpi4py .*pip install mpi4py==4.1.2 '
                                         r'mpich==5.0.2'):
        caffe.NCCL(solver)


def test_rank_beyond_the_count_is_refused(tmp_path, ranks):
    solver = caffe.SGDSolver(toy_problem.write_solver(str(tmp_path), 'r', 1))
    ranks(2, 2)
    with pytest.raises(CaffeError, match='solver_rank\\(\\) is 2 but solver_count\\(\\) is 2'):
        caffe.NCCL(solver)


SCRIPT = r'''
import sys
sys.path[:0] = [%r, %r]
import caffe, toy_problem
caffe.set_solver_count(2)
caffe.set_solver_rank(0)
solver = caffe.SGDSolver(toy_problem.write_solver(%r, 'x', 1))
try:
    caffe.NCCL(solver, engine=%r)
except caffe.CaffeError as e:
    print('ERROR', e)
'''


@pytest.mark.parametrize('engine,message', [
    ('mpi', 'this MPI job has 1 process'),
    ('nccl', 'the NCCL engine works on GPUs'),
])
def test_ranks_that_cannot_meet_get_one_clear_error(tmp_path, engine, message):
    if engine == 'mpi':
        pytest.importorskip('mpi4py', reason='mpi4py is not installed (the missing-mpi4py '
                                             'error has its own test)')
    # In a fresh process: the MPI engine initializes MPI (a singleton here).
    here = os.path.dirname(os.path.abspath(__file__))
    code = SCRIPT % (os.path.join(ROOT, 'lib'), here, str(tmp_path), engine)
    proc = subprocess.run([sys.executable, '-c', code], env=loopback_env(), cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert message in proc.stdout, proc.stdout + proc.stderr


SHARED = '''name: "shared"
layer { name: "feed" type: "Python" top: "data" top: "label"
        python_param { module: "toy_problem" layer: "FeedLayer" param_str: "1" } }
layer { name: "a" type: "InnerProduct" bottom: "data" top: "a"
        param { name: "w" } inner_product_param { num_output: 6 bias_term: false
        weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "b" type: "InnerProduct" bottom: "a" top: "b"
        param { name: "w" } inner_product_param { num_output: 6 bias_term: false } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "b" bottom: "label" top: "loss" }
'''


def test_gradient_buffer_views_and_layer_slices(tmp_path):
    from caffe.parallel import GradientBuffer
    solver = caffe.SGDSolver(toy_problem.write_solver(str(tmp_path), 'views', 1))
    net = solver.net
    before = [b.diff.copy() for b in net.learnable_params]
    buf = GradientBuffer(net, on_device=False)
    assert buf.host.size == sum(b.count for b in net.learnable_params)
    for blob, value in zip(net.learnable_params, before):
        np.testing.assert_array_equal(blob.diff, value)   # values kept
    solver.net.forward_backward()
    flat = np.concatenate([b.diff.ravel() for b in net.learnable_params])
    np.testing.assert_array_equal(buf.host, flat)          # the diffs live in the buffer
    names = list(net._layer_names)
    assert set(buf.layer_params) == {names.index('ip1'), names.index('ip2')}
    first, end = buf.layer_params[names.index('ip2')]
    lo, hi = buf.elements(first, end)
    assert hi - lo == sum(b.count for b in net.params['ip2'])


def test_layer_wise_reduction_refuses_shared_weights(tmp_path, monkeypatch, ranks):
    net = tmp_path / 'shared.prototxt'
    net.write_text(SHARED)
    solver_file = tmp_path / 'solver.prototxt'
    solver_file.write_text('train_net: "%s"\nbase_lr: 0.1\nlr_policy: "fixed"\n' % net)
    solver = caffe.SGDSolver(str(solver_file))

    class NoExchange:
        name, on_device = 'test', False
    monkeypatch.setattr('caffe.parallel._engine', lambda *args: NoExchange())
    ranks(2, 0)
    nccl = caffe.NCCL(solver)
    assert nccl.shares_weights
    with pytest.raises(CaffeError, match='shared weights.*layer_wise_reduce: false'):
        nccl.run(list(solver.net._layer_names).index('b'))
