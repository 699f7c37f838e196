"""Parameter: a learnable blob as a top; shape, sharing with the parameter, and gradients and
weights through a Net."""
import numpy as np
from google.protobuf import text_format

import caffe
from caffe.proto import caffe_pb2
from caffe.testing import build_layer

NET = '''
name: "p"
force_backward: true
layer { name: "w" type: "Parameter" top: "w" parameter_param { shape { dim: 2 dim: 3 } } }
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "prod" type: "Eltwise" bottom: "w" bottom: "x" top: "prod"
        eltwise_param { operation: PROD } }
layer { name: "loss" type: "Reduction" bottom: "prod" top: "loss" loss_weight: 1 }
'''


def test_top_is_the_parameter():
    layer, bottom, top = build_layer('name: "p" type: "Parameter" top: "y" parameter_param { '
                                     'shape { dim: 2 dim: 1 dim: 3 } }', [])
    assert layer.blobs[0].shape == top[0].shape == (2, 1, 3)
    assert (layer.blobs[0].data == 0).all()     # Caffe fills it with nothing (zeros)
    layer.blobs[0].data[...] = np.arange(6).reshape(2, 1, 3)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, layer.blobs[0].data)
    top[0].diff[...] = 4
    assert (layer.blobs[0].diff == 4).all()


def test_gradient_and_weights_through_a_net(tmp_path):
    net = caffe.Net(text_format.Parse(NET, caffe_pb2.NetParameter()), caffe.TRAIN)
    w = np.random.RandomState(0).randn(2, 3).astype(np.float32)
    net.params['w'][0].data[...] = w
    x = np.random.RandomState(1).randn(2, 3).astype(np.float32)
    out = net.forward(x=x)
    np.testing.assert_allclose(out['loss'], (w * x).sum(), rtol=1e-5)
    net.backward()
    np.testing.assert_allclose(net.params['w'][0].diff, x, rtol=1e-6)
    path = str(tmp_path / 'w.caffemodel')
    net.save(path)
    other = caffe.Net(text_format.Parse(NET, caffe_pb2.NetParameter()), caffe.TEST,
                      weights=path)
    np.testing.assert_array_equal(other.params['w'][0].data, w)
    np.testing.assert_allclose(other.forward(x=x)['loss'], (w * x).sum(), rtol=1e-5)
