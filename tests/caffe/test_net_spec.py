"""caffe.NetSpec, caffe.layers (L), caffe.params (P), caffe.to_proto: the NetParameter pycaffe
would write for the same Python, compared with the prototxt written out by hand."""
import numpy as np
import pytest
from google.protobuf import text_format

import caffe
from caffe import layers as L, params as P
from caffe.proto import caffe_pb2


def parse(text):
    return text_format.Parse(text, caffe_pb2.NetParameter())


def lenet_like():
    n = caffe.NetSpec()
    n.data, n.label = L.DummyData(shape=[dict(dim=[2, 1, 8, 8]), dict(dim=[2])], ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=3, num_output=4,
                            weight_filler=dict(type='xavier'),
                            param=[dict(lr_mult=1), dict(lr_mult=2)])
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.pool1 = L.Pooling(n.relu1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.ip1 = L.InnerProduct(n.pool1, num_output=3, weight_filler=dict(type='gaussian', std=0.1))
    n.loss = L.SoftmaxWithLoss(n.ip1, n.label, loss_weight=2)
    return n


EXPECTED = '''
layer { name: "data" type: "DummyData" top: "data" top: "label"
        dummy_data_param { shape { dim: 2 dim: 1 dim: 8 dim: 8 } shape { dim: 2 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        param { lr_mult: 1 } param { lr_mult: 2 }
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss"
        loss_weight: 2 }
'''


def test_netspec_matches_the_hand_written_prototxt():
    # Protobuf equality: same layers, fields and order (field order within a message is free).
    assert lenet_like().to_proto() == parse(EXPECTED)


def test_generated_net_builds_and_runs():
    net = caffe.Net(lenet_like().to_proto(), caffe.TRAIN)
    assert [l.type for l in net.layers] == ['DummyData', 'Convolution', 'ReLU', 'Pooling',
                                            'InnerProduct', 'SoftmaxWithLoss']
    assert net.blobs['ip1'].shape == (2, 3)
    assert net.blob_loss_weights['loss'] == 2
    assert np.isfinite(net.forward()['loss'])


def test_automatic_names_count_per_type():
    data = L.Input(shape=dict(dim=[1, 2]))
    a = L.ReLU(data)
    b = L.ReLU(a)
    proto = caffe.to_proto(b)
    assert [(l.name, list(l.bottom), list(l.top)) for l in proto.layer] == [
        ('Input1', [], ['Input1']), ('ReLU1', ['Input1'], ['ReLU1']),
        ('ReLU2', ['ReLU1'], ['ReLU2'])]
    assert b.to_proto() == proto


def test_layer_without_tops_and_unnamed_tops():
    n = caffe.NetSpec()
    n.a, n.b = L.DummyData(shape=[dict(dim=[1]), dict(dim=[1])], ntop=2)
    silence = L.Silence(n.a, n.b, ntop=0)
    assert isinstance(silence, caffe.net_spec.Function)
    n.s = L.Python(n.a, module='m', layer='Identity', param_str='{}', ntop=1)
    proto = n.to_proto()
    assert proto.layer[1].python_param.layer == 'Identity'    # python_param from the type
    text = caffe.to_proto(*L.Split(n.a, ntop=2))
    assert [list(l.top) for l in text.layer] == [['DummyData1', 'DummyData2'],
                                                  ['Split1', 'Split2']]


def test_parameters_and_errors():
    assert P.Pooling.AVE == caffe_pb2.PoolingParameter.AVE
    assert P.Eltwise.PROD == caffe_pb2.EltwiseParameter.PROD
    with pytest.raises(AttributeError):
        P.NoSuchLayer.X
    # pycaffe's exact message (scripts and pycaffe's own tests match it)
    with pytest.raises(TypeError) as error:
        L.ReLU('data')
    assert str(error.value) == "ReLU input 0 is not a Top (type is <class 'str'>)"
    tops = L.DummyData(ntop=2)
    with pytest.raises(TypeError) as error:
        L.Silence(tops, ntop=0)               # the tuple of tops itself, not its elements
    assert str(error.value) == "Silence input 0 is not a Top (type is <class 'tuple'>)"
    assert L.Silence(*tops, ntop=0).inputs == tops
    n = caffe.NetSpec()
    n.x = L.Input(shape=dict(dim=[1]))
    n.y = L.ReLU(n.x, no_such_field=1)
    with pytest.raises(AttributeError):
        n.to_proto()
    with pytest.raises(AttributeError):
        n.missing
