"""A LeNet-shaped net (two conv/pool stages, a 500-unit hidden layer, 10 outputs; Data layers
for TRAIN and TEST as in Caffe's MNIST example) trains from a generated MNIST-like LMDB through
SGDSolver, with the loss going down and the TEST net's accuracy well above chance; a seeded run
repeats exactly with the data layer's prefetch thread on. The same files laid out as Caffe's
examples/mnist go through the `caffe` command (tools/caffe.py train, test, time) as a Caffe user
types it, from the folder above examples/."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import caffe
from caffe.testing import mnist_like_digits, write_datum_db

NET = '''
name: "LeNetLike"
layer { name: "digits" type: "Data" top: "data" top: "label" include { phase: TRAIN }
        transform_param { scale: 0.00390625 }
        data_param { source: "%(train)s" backend: LMDB batch_size: 32 } }
layer { name: "digits" type: "Data" top: "data" top: "label" include { phase: TEST }
        transform_param { scale: 0.00390625 }
        data_param { source: "%(test)s" backend: LMDB batch_size: 50 } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        param { lr_mult: 1 } param { lr_mult: 2 }
        convolution_param { num_output: 20 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        param { lr_mult: 1 } param { lr_mult: 2 }
        convolution_param { num_output: 50 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1"
        param { lr_mult: 1 } param { lr_mult: 2 }
        inner_product_param { num_output: 500 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        param { lr_mult: 1 } param { lr_mult: 2 }
        inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "accuracy" type: "Accuracy" bottom: "ip2" bottom: "label" top: "accuracy"
        include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
'''

SOLVER = '''
net: "%(net)s"
test_iter: 4
test_interval: 1000
test_initialization: false
base_lr: 0.01
momentum: 0.9
weight_decay: 0.0005
lr_policy: "inv"
gamma: 0.0001
power: 0.75
display: 0
max_iter: 1000
snapshot: 0
snapshot_after_train: false
snapshot_prefix: "%(prefix)s"
random_seed: 1701
solver_mode: CPU
'''

ITERATIONS = 80
TOOL = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                    'tools', 'caffe.py')
LAYERS = ['digits', 'conv1', 'pool1', 'conv2', 'pool2', 'ip1', 'relu1', 'ip2', 'loss']


@pytest.fixture(scope='module')
def lenet_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp('lenet')
    paths = {}
    for split, count, seed in (('train', 800, 0), ('test', 200, 1)):
        images, labels = mnist_like_digits(count, seed)
        records = [caffe.io.array_to_datum(im, int(l)) for im, l in zip(images, labels)]
        paths[split] = write_datum_db(str(folder / ('digits_%s_lmdb' % split)), records)
    net = folder / 'lenet_train_test.prototxt'
    net.write_text(NET % paths)
    solver = folder / 'lenet_solver.prototxt'
    solver.write_text(SOLVER % {'net': net, 'prefix': folder / 'lenet'})
    return str(solver), folder


def train(solver_file, iterations):
    solver = caffe.SGDSolver(solver_file)
    losses = []
    for _ in range(iterations):
        solver.step(1)
        losses.append(float(solver.net.blobs['loss'].data))
    return solver, losses


@pytest.mark.slow
def test_lenet_trains_from_the_lmdb(lenet_files):
    solver_file, folder = lenet_files
    solver, losses = train(solver_file, ITERATIONS)
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    test_net = solver.test_nets[0]
    accuracy = float(np.mean([test_net.forward()['accuracy'] for _ in range(4)]))
    (folder / 'losses.json').write_text(json.dumps({'losses': losses, 'accuracy': accuracy}))
    print('LeNet on generated digits: loss %.3f (iterations 1-10) -> %.3f (%d-%d), TEST '
          'accuracy %.3f' % (first, last, ITERATIONS - 9, ITERATIONS, accuracy))
    assert first > 1.9                  # about ln 10 = 2.30 at the start
    assert last < 0.5 * first
    assert accuracy > 0.6               # chance is 0.1


def test_seeded_training_repeats_with_prefetching(lenet_files):
    solver_file, _ = lenet_files
    _, a = train(solver_file, 8)
    _, b = train(solver_file, 8)
    assert a == b


def write_digits_lmdb(path, count, seed):
    images, labels = mnist_like_digits(count, seed)
    records = [caffe.io.array_to_datum(im, int(l)) for im, l in zip(images, labels)]
    return write_datum_db(str(path), records)


def caffe_command(folder, *args):
    r = subprocess.run([sys.executable, TOOL] + list(args), cwd=str(folder), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r


def test_lenet_through_the_caffe_command(tmp_path):
    mnist = tmp_path / 'examples' / 'mnist'
    mnist.mkdir(parents=True)
    write_digits_lmdb(mnist / 'mnist_train_lmdb', 640, 0)
    write_digits_lmdb(mnist / 'mnist_test_lmdb', 200, 1)
    # Paths relative to the folder the command runs in, as Caffe's examples/mnist files are.
    (mnist / 'lenet_train_test.prototxt').write_text(NET % {
        'train': 'examples/mnist/mnist_train_lmdb', 'test': 'examples/mnist/mnist_test_lmdb'})
    solver = SOLVER % {'net': 'examples/mnist/lenet_train_test.prototxt',
                       'prefix': 'examples/mnist/lenet'}
    solver = solver.replace('display: 0', 'display: 10\naverage_loss: 10')
    # 60 iterations at 3 times the rate: 2.40 -> 0.45 (smoothed over 10), TEST accuracy 0.87.
    solver = solver.replace('max_iter: 1000', 'max_iter: 60')
    solver = solver.replace('base_lr: 0.01', 'base_lr: 0.03')
    solver = solver.replace('snapshot_after_train: false', 'snapshot_after_train: true')
    (mnist / 'lenet_solver.prototxt').write_text(solver)

    caffe_command(tmp_path, 'train', '--solver=examples/mnist/lenet_solver.prototxt',
                  '-result=train.json')
    losses = json.loads((tmp_path / 'train.json').read_text())['losses']
    assert [r['iter'] for r in losses] == list(range(0, 61, 10))
    assert losses[0]['loss'] > 1.9                     # about ln 10 at the start
    assert losses[-1]['loss'] < 0.5 * losses[0]['loss']
    assert (mnist / 'lenet_iter_60.caffemodel').is_file()

    caffe_command(tmp_path, 'test', '-model=examples/mnist/lenet_train_test.prototxt',
                  '-weights=examples/mnist/lenet_iter_60.caffemodel', '-iterations=4',
                  '-result=test.json')
    assert json.loads((tmp_path / 'test.json').read_text())['scores']['accuracy'][0] > 0.6

    r = caffe_command(tmp_path, 'time', '-model=examples/mnist/lenet_train_test.prototxt',
                      '-iterations=2', '-result=time.json')
    timed = json.loads((tmp_path / 'time.json').read_text())['layers']
    assert [layer['name'] for layer in timed] == LAYERS
    for name in LAYERS:
        assert '%10s\tforward: ' % name in r.stdout and '%10s\tbackward: ' % name in r.stdout
