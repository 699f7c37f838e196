"""tools/caffe.py, the `caffe` command: train (weights, snapshot resume, signals), test (scores
against a formula), time (every layer), and its errors."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import caffe
from caffe.proto import caffe_pb2

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, 'tools', 'caffe.py')

NET = '''name: "tiny"
layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 8 dim: 4 } shape { dim: 8 }
                     data_filler { type: "gaussian" std: 1 }
                     data_filler { type: "constant" value: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
'''

SOLVER = '''net: "net.prototxt"
base_lr: %(lr)s
lr_policy: "fixed"
momentum: 0.9
max_iter: %(max_iter)d
display: 1
snapshot: 10
snapshot_prefix: "snaps/tiny"
random_seed: 1
'''


@pytest.fixture
def folder(tmp_path):
    (tmp_path / 'net.prototxt').write_text(NET)
    (tmp_path / 'snaps').mkdir()
    return tmp_path


def write_solver(folder, lr=0.1, max_iter=20, name='solver.prototxt'):
    (folder / name).write_text(SOLVER % {'lr': lr, 'max_iter': max_iter})
    return name


def run(folder, *args, timeout=300):
    return subprocess.run([sys.executable, TOOL] + list(args), cwd=str(folder),
                          capture_output=True, text=True, timeout=timeout)


def weights(path):
    proto = caffe.io.read_binary(str(path), caffe_pb2.NetParameter())
    return {l.name: [np.array(b.data) for b in l.blobs] for l in proto.layer if l.blobs}


def test_train_equals_pycaffe_and_resumes_bit_for_bit(folder):
    write_solver(folder)
    r = run(folder, 'train', '-solver=solver.prototxt')
    assert r.returncode == 0, r.stderr
    assert 'Optimization Done.' in r.stdout
    final = weights(folder / 'snaps' / 'tiny_iter_20.caffemodel')
    # the same solver file through pycaffe's API, in this process
    cwd = os.getcwd()
    os.chdir(str(folder))
    try:
        solver = caffe.get_solver('solver.prototxt')
        solver.param.snapshot = 0
        solver.param.snapshot_after_train = False
        solver.solve()
        ours = {name: [b.data.ravel() for b in blobs] for name, blobs in solver.net.params.items()}
    finally:
        os.chdir(cwd)
    for name in final:
        for a, b in zip(final[name], ours[name]):
            assert np.array_equal(a, b)
    # Resuming restores weights, history and iteration, not the random draws of the data (as in
    # Caffe): with constant data the rest of the run is the same, bit for bit.
    (folder / 'net.prototxt').write_text(NET.replace('type: "gaussian" std: 1',
                                                     'type: "constant" value: 0.5'))
    assert run(folder, 'train', '-solver=solver.prototxt').returncode == 0
    final = weights(folder / 'snaps' / 'tiny_iter_20.caffemodel')
    r = run(folder, 'train', '--solver', 'solver.prototxt',
            '-snapshot', 'snaps/tiny_iter_10.solverstate')
    assert r.returncode == 0, r.stderr
    assert 'Resuming from snaps/tiny_iter_10.solverstate' in r.stdout
    resumed = weights(folder / 'snaps' / 'tiny_iter_20.caffemodel')
    for name in final:
        for a, b in zip(final[name], resumed[name]):
            assert np.array_equal(a, b)


def test_train_from_weights_with_zero_rate_keeps_them(folder):
    write_solver(folder, max_iter=20)
    assert run(folder, 'train', '-solver=solver.prototxt').returncode == 0
    start = folder / 'start.caffemodel'
    os.rename(folder / 'snaps' / 'tiny_iter_20.caffemodel', start)
    write_solver(folder, lr=0, max_iter=3, name='frozen.prototxt')
    r = run(folder, 'train', '-solver=frozen.prototxt', '-weights=start.caffemodel')
    assert r.returncode == 0, r.stderr
    after = weights(folder / 'snaps' / 'tiny_iter_3.caffemodel')
    before = weights(start)
    assert all(np.array_equal(a, b) for n in before for a, b in zip(before[n], after[n]))


def test_test_scores_are_the_mean_over_iterations(folder):
    # constant data and known weights: the loss is a formula
    (folder / 'const.prototxt').write_text(NET.replace('type: "gaussian" std: 1',
                                                       'type: "constant" value: 0.5'))
    net = caffe.Net(str(folder / 'const.prototxt'), caffe.TEST)
    w = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
    net.params['ip'][0].data[...] = w
    net.params['ip'][1].data[...] = [0.1, -0.2, 0.3]
    net.save(str(folder / 'w.caffemodel'))
    r = run(folder, 'test', '-model=const.prototxt', '-weights=w.caffemodel', '-iterations=3',
            '-result=scores.json')
    assert r.returncode == 0, r.stderr
    logits = 0.5 * w.astype(np.float64).sum(1) + [0.1, -0.2, 0.3]
    expected = -(logits[1] - np.log(np.exp(logits).sum()))
    result = json.loads((folder / 'scores.json').read_text())
    assert result['scores']['loss'] == pytest.approx([expected], rel=1e-5)
    assert result['loss'] == pytest.approx(expected, rel=1e-5)
    assert 'loss = %g (* 1 = %g loss)' % (result['scores']['loss'][0],
                                          result['scores']['loss'][0]) in r.stdout
    assert r.stdout.count('Batch ') == 3


def test_time_covers_every_layer(folder):
    r = run(folder, 'time', '-model', 'net.prototxt', '-iterations', '2', '-result', 't.json')
    assert r.returncode == 0, r.stderr
    result = json.loads((folder / 't.json').read_text())
    assert [l['name'] for l in result['layers']] == ['data', 'ip', 'loss']
    assert all(l['forward_ms'] >= 0 and l['backward_ms'] >= 0 for l in result['layers'])
    assert result['total_ms'] >= result['forward_ms']
    assert '*** Benchmark ends ***' in r.stdout and 'ip\tforward:' in r.stdout


def start_long_training(folder):
    write_solver(folder, max_iter=10 ** 7)
    proc = subprocess.Popen([sys.executable, TOOL, 'train', '-solver=solver.prototxt',
                             '-sighup_effect=snapshot'], cwd=str(folder),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith('Iteration 3,'):
            return proc
    raise AssertionError('training did not start: %s' % proc.stderr.read())


def test_sighup_snapshots_and_sigint_stops_after_a_final_snapshot(folder):
    proc = start_long_training(folder)
    try:
        proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 60
        while not any(folder.joinpath('snaps').glob('*.solverstate')):
            assert time.time() < deadline, 'no snapshot after SIGHUP'
            time.sleep(0.05)
        assert proc.poll() is None   # still training
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert 'Optimization stopped early.' in out and 'Optimization Done.' in out
    states = sorted(folder.joinpath('snaps').glob('*.solverstate'))
    assert len(states) >= 2   # the SIGHUP one and the one taken on stopping


def test_errors_are_one_line(folder):
    write_solver(folder)
    r = run(folder, 'train', '-solver=solver.prototxt', '-weights=a', '-snapshot=b')
    assert r.returncode == 1 and 'not both' in r.stderr
    r = run(folder, 'train')
    assert r.returncode == 1 and 'Need a solver definition' in r.stderr
    r = run(folder, 'test', '-model=net.prototxt')
    assert r.returncode == 1 and 'Need model weights' in r.stderr
    r = run(folder, 'train', '-solver=missing.prototxt')
    assert r.returncode == 1 and 'missing.prototxt' in r.stderr
