"""tools/caffe_model_census.py on a small release written here in BVLC's style (a V1 `layers`
net with an LMDB Data layer, a LevelDB one with a mean file, an old-style deploy net with `input` fields, ImageData with a mean
file, HDF5Data, WindowData, a Python loss layer beside its net, a solver) plus two broken files:
the counts, each net's states, and the broken files reported with the step and the reason."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, 'tools', 'caffe_model_census.py')

FILES = {
    # V1 format with enum types, TRAIN and TEST data layers; the path says MNIST: 1 x 28 x 28.
    'models/mnist_v1/train_test.prototxt': '''
name: "SmallV1"
layers { name: "digits" type: DATA top: "data" top: "label"
  data_param { source: "nowhere/train_lmdb" backend: LMDB batch_size: 64 }
  transform_param { scale: 0.00390625 } include { phase: TRAIN } }
layers { name: "digits" type: DATA top: "data" top: "label"
  data_param { source: "nowhere/test_lmdb" backend: LMDB batch_size: 100 }
  transform_param { scale: 0.00390625 } include { phase: TEST } }
layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 5 stride: 2
                      weight_filler { type: "xavier" } } }
layers { name: "pool" type: POOLING bottom: "conv" top: "pool"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layers { name: "ip" type: INNER_PRODUCT bottom: "pool" top: "ip"
  inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layers { name: "acc" type: ACCURACY bottom: "ip" bottom: "label" top: "acc"
  include { phase: TEST } }
layers { name: "loss" type: SOFTMAX_LOSS bottom: "ip" bottom: "label" top: "loss" }
''',
    'models/mnist_v1/solver.prototxt': '''
net: "models/mnist_v1/train_test.prototxt"
test_iter: 10 test_interval: 50 base_lr: 0.01 lr_policy: "fixed" max_iter: 100
solver_type: NESTEROV momentum: 0.9 snapshot_prefix: "small"
''',
    # No backend: LevelDB, Caffe's default; the path says CIFAR: 3 x 32 x 32, as the mean must be.
    'examples/cifar_like/quick.prototxt': '''
layer { name: "cifar" type: "Data" top: "data" top: "label"
  transform_param { mean_file: "examples/cifar10/mean.binaryproto" }
  data_param { source: "examples/cifar10/cifar10_train_leveldb" batch_size: 100 } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
        inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
''',
    # Old-style inputs, batch 10 (cut to 2).
    'models/mnist_v1/deploy.prototxt': '''
name: "SmallDeploy"
input: "data" input_dim: 10 input_dim: 1 input_dim: 28 input_dim: 28
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 10 } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
''',
    # ImageData resizing to 40 x 36, a crop of 32 and a mean file of the resized size.
    'examples/images/train_val.prototxt': '''
layer { name: "images" type: "ImageData" top: "data" top: "label"
  transform_param { crop_size: 32 mirror: true mean_file: "data/mean.binaryproto" }
  image_data_param { source: "data/list.txt" root_folder: "data/images/" batch_size: 50
                     new_height: 40 new_width: 36 shuffle: true } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
''',
    'examples/vectors/train.prototxt': '''
layer { name: "h5" type: "HDF5Data" top: "data" top: "label"
        hdf5_data_param { source: "data/train.txt" batch_size: 10 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
''',
    # WindowData with a loss layer written without a top (Caffe adds one).
    'examples/windows/finetune.prototxt': '''
layer { name: "windows" type: "WindowData" top: "data" top: "label"
  transform_param { crop_size: 24 mirror: true mean_file: "imagenet_mean.binaryproto" }
  window_data_param { source: "window_file.txt" batch_size: 128 fg_threshold: 0.5
                      bg_threshold: 0.5 fg_fraction: 0.5 context_pad: 4 crop_mode: "warp" } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 3 kernel_size: 3 stride: 2
                            weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "cls" type: "InnerProduct" bottom: "conv" top: "cls"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "cls" bottom: "label" }
''',
    # A Python loss layer whose module lies in the net's layers/ folder.
    'examples/python/sum.prototxt': '''
layer { name: "x" type: "DummyData" top: "x"
        dummy_data_param { shape { dim: 3 dim: 4 } data_filler { type: "gaussian" } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
        inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "Python" bottom: "ip" top: "loss" loss_weight: 1
        python_param { module: "census_square_loss" layer: "SquareLoss" } }
''',
    'examples/python/layers/census_square_loss.py': '''
import caffe


class SquareLoss(caffe.Layer):
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(1)

    def forward(self, bottom, top):
        top[0].data[0] = (bottom[0].data ** 2).sum() / 2

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = bottom[0].data * top[0].diff[0]
''',
    # Runs, but its output is NaN: noted.
    'examples/nan/log.prototxt': '''
layer { name: "x" type: "DummyData" top: "x"
        dummy_data_param { shape { dim: 2 dim: 3 } data_filler { type: "constant" value: -1 } } }
layer { name: "log" type: "Log" bottom: "x" top: "log" }
''',
    # Broken: a field that does not exist (line 4: the text starts with a newline); a layer
    # type that does not exist.
    'examples/broken/typo.prototxt': '''
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
        inner_product_param { num_outputs: 2 } }
''',
    'models/broken/unknown_type.prototxt': '''
input: "data" input_shape { dim: 1 dim: 3 }
layer { name: "mystery" type: "NoSuchLayer" bottom: "data" top: "out" }
''',
}


@pytest.fixture(scope='module')
def census(tmp_path_factory):
    root = tmp_path_factory.mktemp('release')
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    result = root / 'census.json'
    r = subprocess.run([sys.executable, TOOL, '--caffe-root', str(root), '--result',
                        str(result)], capture_output=True, text=True, timeout=300)
    records = json.loads(result.read_text())
    return r, records, {rec['file']: rec for rec in records['files']}


def test_counts(census):
    r, result, _ = census
    assert result['counts'] == {
        'files': 11, 'parsed': 10, 'solvers': 1, 'solvers_parsed': 1, 'nets': 10,
        'nets_parsed': 9, 'built': 8, 'forward': 8, 'train_nets': 6, 'backward': 6}
    assert r.returncode == 1      # not every file got through
    assert ('11 files: 10 parsed (1/1 solvers, 9/10 nets); nets built 8/10, ran forward 8/10, '
            'backward 6/6 train nets') in r.stdout


def test_each_net_runs_in_the_states_it_has(census):
    _, _, by_file = census
    states = {f: rec['states'] for f, rec in by_file.items() if rec['kind'] == 'net'}
    assert states['models/mnist_v1/train_test.prototxt'] == ['TRAIN', 'TEST']
    assert states['models/mnist_v1/deploy.prototxt'] == ['TEST']
    for rel in ('examples/cifar_like/quick.prototxt', 'examples/images/train_val.prototxt',
                'examples/vectors/train.prototxt',
                'examples/windows/finetune.prototxt', 'examples/python/sum.prototxt'):
        assert states[rel] == ['TRAIN'], rel
        assert by_file[rel]['backward'] is True and by_file[rel]['error'] is None, rel
    assert by_file['models/mnist_v1/deploy.prototxt']['backward'] is None
    assert by_file['models/mnist_v1/solver.prototxt']['kind'] == 'solver'
    nan = by_file['examples/nan/log.prototxt']
    assert nan['forward'] is True and nan['nonfinite_outputs'] == ['TEST: log']
    assert all(not rec['nonfinite_outputs'] for f, rec in by_file.items() if rec is not nan)


def test_broken_files_are_reported_with_their_reason(census):
    r, _, by_file = census
    typo = by_file['examples/broken/typo.prototxt']
    assert (typo['kind'], typo['parsed'], typo['step']) == ('net', False, 'parse')
    assert 'typo.prototxt:4:' in typo['error'] and 'num_outputs' in typo['error']
    unknown = by_file['models/broken/unknown_type.prototxt']
    assert (unknown['parsed'], unknown['built'], unknown['forward']) == (True, False, False)
    assert unknown['step'] == 'build'
    assert 'NoSuchLayer' in unknown['error'] and unknown['error'].startswith('TEST: ')
    assert 'build failed: TEST: ' in r.stdout
