#!/usr/bin/env python3
"""Writes the seed corpora of the reader harnesses (tests/fuzz/corpus/<harness>/): small valid
files of each kind and format the readers take, from which the fuzzer mutates. Run it again
after changing a seed; crash reproducers found by fuzzing are added by hand, named crash-*."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuzz_harness  # noqa: E402,F401  (puts lib/ on sys.path)

import numpy as np  # noqa: E402

import caffe  # noqa: E402
from caffe.proto import caffe_pb2  # noqa: E402
from targets_readers import FIXTURE_NET, FIXTURE_SOLVER  # noqa: E402

NETS = {
    'fixture': FIXTURE_NET,
    'layer_types': '''name: "layer_types"
layer { name: "data" type: "DummyData" top: "data" top: "rois" top: "label"
        dummy_data_param { shape { dim: 1 dim: 4 dim: 8 dim: 8 } shape { dim: 2 dim: 5 }
                           shape { dim: 2 } data_filler { type: "gaussian" std: 1 } } }
layer { name: "lrn" type: "LRN" bottom: "data" top: "lrn" lrn_param { local_size: 3 } }
layer { name: "pool" type: "Pooling" bottom: "lrn" top: "pool"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "roi" type: "ROIPooling" bottom: "data" bottom: "rois" top: "roi"
        roi_pooling_param { pooled_w: 2 pooled_h: 2 spatial_scale: 0.5 } }
layer { name: "flat" type: "Reshape" bottom: "roi" top: "flat"
        reshape_param { shape { dim: 0 dim: -1 } } }
layer { name: "drop" type: "Dropout" bottom: "flat" top: "flat"
        dropout_param { dropout_ratio: 0.3 } }
layer { name: "fc" type: "InnerProduct" bottom: "flat" top: "fc"
        inner_product_param { num_output: 3 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss"
        include { phase: TRAIN } loss_param { ignore_label: 2 normalization: BATCH_SIZE } }
layer { name: "acc" type: "Accuracy" bottom: "fc" bottom: "label" top: "acc" }
layer { name: "cat" type: "Concat" bottom: "pool" bottom: "pool" top: "cat"
        concat_param { axis: 1 } }
layer { name: "sum" type: "Eltwise" bottom: "cat" bottom: "cat" top: "sum"
        eltwise_param { operation: SUM coeff: 1 coeff: -0.5 } }
layer { name: "silence" type: "Silence" bottom: "sum" }
''',
    'old_input': '''name: "old_input"
input: "data"
input_shape { dim: 1 dim: 2 dim: 5 dim: 5 }
input: "im_info"
input_shape { dim: 1 dim: 3 }
layer { name: "relu" type: "ReLU" bottom: "data" top: "data" relu_param { negative_slope: 0.1 } }
layer { name: "py" type: "Python" bottom: "data" bottom: "im_info" top: "copy" top: "info"
        python_param { module: "fuzz_layers" layer: "Identity" param_str: "'x': 1" } }
layer { name: "bias" type: "Bias" bottom: "copy" top: "biased" bias_param { axis: 1 num_axes: 1 } }
layer { name: "l1" type: "SmoothL1Loss" bottom: "biased" bottom: "copy" top: "l1" loss_weight: 1 }
''',
    'v1_layers': '''name: "v1"
input: "data"
input_dim: 1 input_dim: 1 input_dim: 6 input_dim: 6
layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv"
         blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
         convolution_param { num_output: 2 kernel_size: 3 } }
layers { name: "relu" type: RELU bottom: "conv" top: "conv" }
layers { name: "pool" type: POOLING bottom: "conv" top: "pool"
         pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layers { name: "ip" type: INNER_PRODUCT bottom: "pool" top: "ip"
         inner_product_param { num_output: 2 } }
layers { name: "prob" type: SOFTMAX bottom: "ip" top: "prob" }
''',
    'recurrent': '''name: "recurrent"
layer { name: "seq" type: "DummyData" top: "x" top: "cont" top: "static"
        dummy_data_param { shape { dim: 3 dim: 2 dim: 4 } shape { dim: 3 dim: 2 }
                           shape { dim: 2 dim: 5 } data_filler { type: "constant" value: 1 } } }
layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" bottom: "static" top: "h"
        recurrent_param { num_output: 3 weight_filler { type: "uniform" min: -0.1 max: 0.1 } } }
layer { name: "rnn" type: "RNN" bottom: "h" bottom: "cont" top: "r"
        recurrent_param { num_output: 2 expose_hidden: false } }
''',
}

SOLVERS = {
    'sgd': (FIXTURE_SOLVER.replace('fixed', 'step') % 'SGD'
            + 'stepsize: 10\ngamma: 0.5\nweight_decay: 0.0005\nclip_gradients: 5\n'),
    'adam_test_net': '''train_net: "fixture.prototxt"
test_net: "fixture.prototxt"
test_iter: 1
test_interval: 5
test_state { stage: "val" }
type: "Adam"
base_lr: 0.001
momentum: 0.9
momentum2: 0.999
lr_policy: "multistep"
stepvalue: 10
stepvalue: 20
gamma: 0.1
iter_size: 2
''',
    'old_solver_type': '''net_param { name: "inline"
  layer { name: "x" type: "DummyData" top: "x" top: "y"
          dummy_data_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
  layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
          inner_product_param { num_output: 2 } }
  layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "y" top: "loss" } }
solver_type: NESTEROV
base_lr: 0.1
momentum: 0.9
lr_policy: "inv"
gamma: 0.01
power: 0.75
regularization_type: "L1"
''',
}


def write(folder, name, data):
    os.makedirs(folder, exist_ok=True)
    mode = 'w' if isinstance(data, str) else 'wb'
    with open(os.path.join(folder, name), mode) as f:
        f.write(data)


def blob(shape=None, legacy=None, values=None, double=False):
    proto = caffe_pb2.BlobProto()
    if shape is not None:
        proto.shape.dim.extend(shape)
    if legacy is not None:
        proto.num, proto.channels, proto.height, proto.width = legacy
    n = int(np.prod(shape if shape is not None else legacy))
    values = np.arange(n, dtype=np.float32) / 4 - 1 if values is None else values
    (proto.double_data if double else proto.data).extend(values)
    return proto.SerializeToString()


def main():
    corpus = fuzz_harness.CORPUS_DIR
    for name, text in NETS.items():
        write(os.path.join(corpus, 'net_prototxt'), name + '.prototxt', text)
    for name, text in SOLVERS.items():
        write(os.path.join(corpus, 'solver_prototxt'), name + '.prototxt', text)

    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        write(tmp, 'fixture.prototxt', FIXTURE_NET)
        caffe.set_random_seed(1)
        net = caffe.Net('fixture.prototxt', caffe.TRAIN)
        net.save('w.caffemodel')
        write(os.path.join(corpus, 'caffemodel'), 'fixture.caffemodel',
              open('w.caffemodel', 'rb').read())
        # the same weights as a V1 file (`layers` with blobs and an enum type) of one layer
        v1 = caffe_pb2.NetParameter(name='v1')
        old = v1.layers.add(name='ip', type=caffe_pb2.V1LayerParameter.INNER_PRODUCT)
        old.blobs.add().CopyFrom(caffe_pb2.BlobProto.FromString(
            blob(legacy=(1, 1, 3, net.params['ip'][0].count // 3))))
        old.blobs.add().CopyFrom(caffe_pb2.BlobProto.FromString(blob(legacy=(1, 1, 1, 3))))
        write(os.path.join(corpus, 'caffemodel'), 'v1_ip.caffemodel', v1.SerializeToString())

        for kind in ('SGD', 'Adam'):
            write(tmp, 'solver.prototxt', FIXTURE_SOLVER % kind + 'snapshot_prefix: "s"\n')
            solver = caffe.get_solver('solver.prototxt')
            solver.step(1)
            solver.snapshot()
            state = [f for f in os.listdir(tmp) if f.endswith('.solverstate')][0]
            message = caffe_pb2.SolverState.FromString(open(state, 'rb').read())
            message.learned_net = 'fixture.caffemodel'
            write(os.path.join(corpus, 'solverstate'), kind.lower() + '.solverstate',
                  message.SerializeToString())
            for f in os.listdir(tmp):
                if f.startswith('s_iter'):
                    os.unlink(f)

    binary = os.path.join(corpus, 'binaryproto')
    write(binary, 'mean_legacy.binaryproto', blob(legacy=(1, 3, 4, 4)))
    write(binary, 'shape.binaryproto', blob(shape=(2, 3)))
    write(binary, 'double.binaryproto', blob(shape=(3,), double=True))


if __name__ == '__main__':
    main()
