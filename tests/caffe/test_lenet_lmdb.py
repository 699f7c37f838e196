"""A LeNet-shaped net (two conv/pool stages, a 500-unit hidden layer, 10 outputs; Data layers
for TRAIN and TEST as in Caffe's MNIST example) trains from a generated MNIST-like LMDB through
SGDSolver, with the loss going down and the TEST net's accuracy well above chance; a seeded run
repeats exactly with the data layer's prefetch thread on."""
import json

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
