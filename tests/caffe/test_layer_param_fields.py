"""LayerParameter fields Caffe honours for every layer type, found missing by issue 27's audit:
parameter blobs written into the net definition (Caffe's Layer constructor loads them, and setup
skips the fillers), and ParamSpec share_mode PERMISSIVE (shared parameters of equal count but
different shape)."""
import numpy as np
import pytest
from google.protobuf import text_format

import caffe
from caffe.common import CaffeError
from caffe.proto import caffe_pb2

NET = '''
name: "fields"
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 6 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 10 } }
        %s }
layer { name: "ip2" type: "InnerProduct" bottom: "x" top: "z"
        inner_product_param { num_output: 2 bias_term: false }
        param { name: "shared" %s } }
layer { name: "ip3" type: "InnerProduct" bottom: "y" top: "w"
        inner_product_param { num_output: 4 bias_term: false }
        param { name: "shared" %s } }
'''


def _net(blobs='', mode1='', mode2=''):
    return caffe.Net(text_format.Parse(NET % (blobs, mode1, mode2), caffe_pb2.NetParameter()),
                     caffe.TRAIN)


def test_blobs_in_the_net_definition_are_the_weights():
    w = np.arange(18, dtype=np.float32).reshape(3, 6) / 10
    b = np.array([1, -2, 3], np.float32)
    text = ''.join('blobs { shape { %s } %s }' % (' '.join('dim: %d' % d for d in v.shape),
                                                 ' '.join('data: %g' % x for x in v.ravel()))
                   for v in (w, b))
    net = _net(text, 'share_mode: PERMISSIVE', 'share_mode: PERMISSIVE')
    np.testing.assert_allclose(net.params['ip'][0].data, w)
    np.testing.assert_allclose(net.params['ip'][1].data, b)
    x = np.random.RandomState(0).randn(2, 6).astype(np.float32)
    np.testing.assert_allclose(net.forward(blobs=['y'], x=x)['y'], x @ w.T + b, rtol=1e-5)


def test_blobs_of_the_wrong_shape_are_an_error():
    with pytest.raises(CaffeError, match='shape'):
        _net('blobs { shape { dim: 2 dim: 6 } %s }' % ('data: 0 ' * 12),
             'share_mode: PERMISSIVE', 'share_mode: PERMISSIVE')


def test_permissive_sharing_keeps_each_shape_over_one_buffer():
    net = _net(mode1='share_mode: PERMISSIVE', mode2='share_mode: PERMISSIVE')
    a, b = net.params['ip2'][0], net.params['ip3'][0]
    assert a.shape == (2, 6) and b.shape == (4, 3)
    a.data[...] = np.arange(12).reshape(2, 6)
    np.testing.assert_array_equal(b.data, np.arange(12).reshape(4, 3))
    b.diff[...] = 1
    assert (a.diff == 1).all()
    # One learnable parameter: the owner's (the solver updates it once).
    assert any(p is a for p in net.learnable_params)
    assert not any(p is b for p in net.learnable_params)


def test_strict_sharing_needs_equal_shapes():
    with pytest.raises(CaffeError, match='PERMISSIVE'):
        _net()
