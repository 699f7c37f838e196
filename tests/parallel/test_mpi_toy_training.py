"""tools/train_net.py on two MPI ranks (CPU, the toy dataset at a small scale): a run interrupted
and resumed ends bit-identical to an uninterrupted one, only rank 0 reports and writes, and the
detector trained on two ranks reaches the mAP band of one process with the same effective batch
(iter_size 2)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mpirun import ROOT, loopback_env, run_mpi

TOY = os.path.join(ROOT, 'models', 'toy', 'TOY', 'faster_rcnn_end2end')
CFGS = ['--cfg', os.path.join(ROOT, 'experiments', 'cfgs', 'faster_rcnn_end2end.yml'),
        '--cfg', os.path.join(ROOT, 'experiments', 'cfgs', 'toy.yml')]
SMALL = ['TRAIN.SCALES', '[120]', 'TRAIN.MAX_SIZE', '200', 'TEST.SCALES', '[120]',
         'TEST.MAX_SIZE', '200']
TOOLS = os.path.join(ROOT, 'tools')


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    from datasets.toy import generate_toy_dataset
    data = tmp_path_factory.mktemp('parallel_toy')
    generate_toy_dataset(str(data / 'toy'), num_train=20, num_test=10)
    return data


def train_args(data_dir, root, iters, exp, *extra, sets=()):
    return ([os.path.join(TOOLS, 'train_net.py'), '--gpu', 'cpu', '--solver',
             os.path.join(TOY, 'solver.prototxt'), '--imdb', 'toy_train', '--iters', str(iters)]
            + CFGS + list(extra) + ['--set', 'DATA_DIR', str(data_dir), 'ROOT_DIR', str(root),
                                    'EXP_DIR', exp] + SMALL + list(sets))


def snapshot(root, exp, it):
    return os.path.join(str(root), 'output', exp, 'toy_train', 'toy_faster_rcnn_iter_%d' % it)


def mpi_train(data_dir, root, iters, exp, *extra, ranks=2, sets=()):
    proc = run_mpi(ranks, train_args(data_dir, root, iters, exp, *extra, sets=sets), timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def read_weights(path):
    from caffe import io
    from caffe.proto import caffe_pb2
    net = io.read_binary(path + '.caffemodel', caffe_pb2.NetParameter())
    return {'%s/%d' % (layer.name, k): io.blobproto_to_array(b)
            for layer in net.layer for k, b in enumerate(layer.blobs)}


def test_resumed_mpi_run_ends_bit_identical_to_an_uninterrupted_one(data_dir, tmp_path):
    root = tmp_path / 'root'
    straight = mpi_train(data_dir, root, 6, 'straight')
    # Only rank 0 reports and writes: one line per reported iteration, one set of snapshot files.
    assert straight.stdout.count('Iteration 6/6') == 1
    assert 'Rank 0 of 2: gradients exchanged over mpi' in straight.stdout
    mpi_train(data_dir, root, 3, 'resumed', sets=('TRAIN.SNAPSHOT_ITERS', '3'))
    state = snapshot(root, 'resumed', 3)
    resumed = mpi_train(data_dir, root, 6, 'resumed', '--restore', state + '.solverstate')
    assert 'Iteration 4/6' in resumed.stdout and 'Iteration 1/6' not in resumed.stdout
    assert 'warning' not in resumed.stdout

    a = read_weights(snapshot(root, 'straight', 6))
    b = read_weights(snapshot(root, 'resumed', 6))
    assert len(a) >= 10 and set(a) == set(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    moved = read_weights(state)
    assert all(not np.array_equal(moved[n], b[n]) for n in b if moved[n].size > 1)

    with open(os.path.join(str(root), 'output', 'resumed', 'toy_train',
                           'toy_faster_rcnn_training.jsonl')) as f:
        assert [json.loads(line)['iter'] for line in f] == [1, 2, 3, 4, 5, 6]


def test_resuming_with_another_number_of_ranks_warns_and_continues(data_dir, tmp_path):
    root = tmp_path / 'root'
    mpi_train(data_dir, root, 2, 'two', sets=('TRAIN.SNAPSHOT_ITERS', '2'))
    state = snapshot(root, 'two', 2) + '.solverstate'
    proc = subprocess.run([sys.executable] + train_args(data_dir, root, 3, 'two', '--restore',
                                                        state),
                          env=loopback_env(), cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'was written by 2 rank(s), this run has 1' in proc.stdout
    assert 'Iteration 3/3' in proc.stdout


def mean_ap(data_dir, root, exp, model):
    result = os.path.join(str(root), exp + '_test.json')
    proc = subprocess.run(
        [sys.executable, os.path.join(TOOLS, 'test_net.py'), '--gpu', 'cpu', '--def',
         os.path.join(TOY, 'test.prototxt'), '--net', model, '--imdb', 'toy_test', '--result',
         result] + CFGS + ['--set', 'DATA_DIR', str(data_dir), 'ROOT_DIR', str(root),
                           'EXP_DIR', exp] + SMALL,
        env=loopback_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(result) as f:
        return json.load(f)['mean_ap']


@pytest.mark.slow
def test_two_ranks_reach_the_map_band_of_one_process(data_dir, tmp_path):
    # 300 iterations of an effective batch of 2 images: 2 ranks x 1, or 1 process x iter_size 2.
    iters, root = 300, tmp_path / 'root'
    proc = subprocess.run([sys.executable] + train_args(
        data_dir, root, iters, 'one', sets=('TRAIN.ITER_SIZE', '2')), env=loopback_env(),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    mpi_train(data_dir, root, iters, 'two')
    one = mean_ap(data_dir, root, 'one', snapshot(root, 'one', iters) + '.caffemodel')
    two = mean_ap(data_dir, root, 'two', snapshot(root, 'two', iters) + '.caffemodel')
    # An untrained toy net scores about 0; both learn, and land within one band of each other
    # (10 test images: a few detections move the mAP by several points).
    assert one > 0.1 and two > 0.1, (one, two)
    assert abs(one - two) < 0.2, (one, two)
