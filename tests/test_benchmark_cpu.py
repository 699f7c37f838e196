"""tools/benchmark_cpu.py: the matrix products it records as the floor, and how it splits a run.
(No timing is asserted: the tool measures, the tests check what it measures.)"""
import os
import sys

import numpy as np
import pytest
from google.protobuf import text_format

import caffe
from caffe.proto import caffe_pb2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, 'tools')


@pytest.fixture(scope='module')
def bench():
    sys.path.insert(0, TOOLS)
    try:
        import benchmark_cpu
    finally:
        sys.path.remove(TOOLS)
    return benchmark_cpu


# Nothing below conv1 needs a gradient: it needs only its weight gradient; conv2 (2 groups) and
# fc need their weight and bottom gradients. With conv1's lr_mult 0 (frozen), conv1 needs no
# backward at all and conv2 no bottom gradient.
NET = '''
name: "tiny"
input: "data" input_shape { dim: 1 dim: 3 dim: 12 dim: 10 }
input: "label" input_shape { dim: 1 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        param { lr_mult: %g } param { lr_mult: %g }
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
        convolution_param { num_output: 6 kernel_size: 3 stride: 2 group: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "conv2" top: "fc"
        inner_product_param { num_output: 5 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
'''


@pytest.mark.parametrize('frozen', [False, True])
def test_recorder_lists_the_products_the_layers_compute(bench, frozen):
    lr = 0 if frozen else 1
    param = text_format.Parse(NET % (lr, lr), caffe_pb2.NetParameter())
    net = caffe.Net(param, caffe.TRAIN)
    recorder = bench.Recorder(net)
    recorder.recording = True
    net.blobs['data'].data[...] = np.random.RandomState(0).randn(1, 3, 12, 10)
    net.blobs['label'].data[...] = 2
    net.forward_backward()
    # conv2: 5x4 outputs (20 columns), K = 2 channels * 9 per group, 3 outputs per group.
    # fc: M = 1 row, K = 6 * 5 * 4 = 120, 5 outputs.
    forward = [('Convolution', 4, 120, 27, False, False)] + \
        [('Convolution', 3, 20, 18, False, False)] * 2 + [('InnerProduct', 5, 1, 120, False, False)]
    backward = [('InnerProduct', 5, 120, 1, False, True),     # dW (5, 120) = dY^T (5, 1) x (1, 120)
                ('InnerProduct', 120, 1, 5, True, False)] + \
        [('Convolution', 3, 18, 20, False, True),              # dW = dY @ col^T
         ('Convolution', 18, 20, 3, True, False)] * 2 + \
        [('Convolution', 4, 27, 120, False, True)]             # conv1: dW only
    if frozen:
        backward = backward[:2] + [('Convolution', 3, 18, 20, False, True)] * 2
    assert recorder.gemms == forward + backward
    assert bench.gemm_flops(recorder.gemms) == 2 * sum(m * n * k for _, m, n, k, _, _ in
                                                       forward + backward)
    floor = bench.Floor(recorder.gemms)
    total, by_type = floor.run()
    assert set(by_type) == {'Convolution', 'InnerProduct'}
    assert total == pytest.approx(sum(by_type.values()))

    parts = bench.summarize(recorder, total=1.0)
    assert set(parts['layers']) == {'Input', 'Convolution', 'ReLU', 'InnerProduct',
                                    'SoftmaxWithLoss'}
    assert parts['layers']['Convolution']['calls'] == 2
    assert parts['layer_math_s'] == pytest.approx(sum(
        v['forward_s'] + v['backward_s'] for v in parts['layers'].values()))
    # Everything outside the layers' math adds up with it to the whole run.
    assert parts['layer_math_s'] + sum(parts['outside'].values()) == pytest.approx(1.0)


def test_net_bytes_counts_shared_buffers_once(bench):
    param = text_format.Parse(NET % (1, 1), caffe_pb2.NetParameter())
    net = caffe.Net(param, caffe.TEST)
    data = sum(b.data.nbytes for name, b in net.blobs.items() if name != 'conv1') + \
        net.blobs['conv1'].data.nbytes   # relu1 runs in place: one buffer
    params = sum(b.data.nbytes for layer in net.layers for b in layer.blobs)
    assert bench.net_bytes(net, training=False) == data + params
    assert bench.net_bytes(net, training=True) == 2 * (data + params)


@pytest.mark.slow
def test_concurrent_jobs_table(tmp_path):
    # The table's shape, not its times: one job alone, two at once, one beside a busy loop, each
    # job's figures relative to the solo job's.
    import json
    import subprocess
    result = tmp_path / 'jobs.json'
    subprocess.run([sys.executable, os.path.join(TOOLS, 'benchmark_cpu.py'), '--concurrent', '2',
                    '--beside-busy-loop', '--runs', '1', '--result', str(result)], check=True,
                   stdout=subprocess.PIPE)
    table, = json.loads(result.read_text())['concurrent']
    rows = table['rows']
    assert table['case'] == 'train:TOY' and table['lib'] == os.path.join(ROOT, 'lib')
    assert [(r['jobs'], r['beside_busy_loop'], len(r['results'])) for r in rows] == \
        [(1, False, 1), (2, False, 2), (1, True, 1), (1, False, 1)]
    solo = (rows[0]['results'][0]['wall_s'] + rows[-1]['results'][0]['wall_s']) / 2
    assert table['solo_wall_s'] == solo
    for row in rows:
        for r in row['results']:
            assert r['runs'] == 1 and r['wall_s'] > 0 and r['cpu_s'] > 0
            assert r['wall_vs_solo'] == r['wall_s'] / solo


WINOGRAD_NET = '''
name: "wino"
input: "data" input_shape { dim: 1 dim: 16 dim: 9 dim: 7 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 20 kernel_size: 3 pad: 1 } }
'''


def test_recorder_lists_winograd_products_and_direct_flops(bench, monkeypatch):
    # A 3x3, 16-channel layer runs F(2x2, 3x3): 16 products per pass over the 5 x 4 tiles of its
    # 9 x 7 output, (K=20, tiles, C=16) forward, (C, tiles of the input, K) for the data
    # gradient and (K, C, tiles) for the weights; the direct count is im2col's 9 * 16 * 20 * 63.
    from caffe.layers import conv_algorithm
    monkeypatch.setattr(conv_algorithm, '_policy', 'auto')
    param = text_format.Parse(WINOGRAD_NET, caffe_pb2.NetParameter())
    param.force_backward = True
    net = caffe.Net(param, caffe.TRAIN)
    recorder = bench.Recorder(net)
    recorder.recording = True
    net.forward()
    net.blobs['conv'].diff[...] = 1
    net.backward()
    assert recorder.gemms == [('Convolution', 20, 20, 16, False, False)] * 16 + \
        [('Convolution', 20, 16, 20, False, True)] * 16 + \
        [('Convolution', 16, 20, 20, False, False)] * 16
    assert recorder.gemm_layers == ['conv'] * 48
    conv = recorder.convolutions['conv']
    assert conv['algorithm'] == 'winograd F(2x2,3x3)'
    assert conv['gflop'] == pytest.approx(3 * 16 * 2e-9 * 20 * 20 * 16)
    assert conv['direct_gflop'] == pytest.approx(3 * 2e-9 * 9 * 16 * 20 * 63)
    by_layer = {}
    total, _ = bench.Floor(recorder.gemms, recorder.gemm_layers).run(by_layer)
    assert by_layer['conv'] == pytest.approx(total)
