"""Weights files as real Caffe writes them load through every path (a .caffemodel from
Net::ToProto carries the input names without dims), and HDF5 weights follow Caffe's ToHDF5
layout."""
import h5py
import numpy as np
import pytest
from google.protobuf import text_format

import caffe
from caffe import io
from caffe.proto import caffe_pb2

DEPLOY = '''
name: "deploy"
input: "data"
input_shape { dim: 2 dim: 3 }
input: "extra"
input_shape { dim: 2 dim: 1 }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "y"
        inner_product_param { num_output: 2 } }
layer { name: "ip2" type: "InnerProduct" bottom: "extra" top: "z"
        param { name: "shared_w" } inner_product_param { num_output: 1 bias_term: false } }
layer { name: "ip3" type: "InnerProduct" bottom: "extra" top: "w"
        param { name: "shared_w" } inner_product_param { num_output: 1 bias_term: false } }
'''
W = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32)
B = np.array([0.5, -0.5], dtype=np.float32)
V = np.array([[7]], dtype=np.float32)


def toproto_caffemodel(path):
    """A NetParameter laid out as Caffe's Net::ToProto writes it: the name, the input blob names
    as `input` entries without input_dim/input_shape, then the layers with their blobs."""
    param = caffe_pb2.NetParameter(name='deploy')
    param.input.extend(['data', 'extra'])
    param.layer.add(name='input', type='Input', top=['data', 'extra'])
    ip = param.layer.add(name='ip', type='InnerProduct', bottom=['data'], top=['y'])
    for arr in (W, B):
        blob = ip.blobs.add()
        blob.shape.dim.extend(arr.shape)
        blob.data.extend(arr.ravel().tolist())
    ip2 = param.layer.add(name='ip2', type='InnerProduct', bottom=['extra'], top=['z'])
    blob = ip2.blobs.add()
    blob.shape.dim.extend(V.shape)
    blob.data.extend(V.ravel().tolist())
    param.layer.add(name='ip3', type='InnerProduct', bottom=['extra'], top=['w'])
    with open(path, 'wb') as f:
        f.write(param.SerializeToString())


@pytest.fixture
def files(tmp_path):
    net_file = tmp_path / 'deploy.prototxt'
    net_file.write_text(DEPLOY)
    weights = str(tmp_path / 'caffe_written.caffemodel')
    toproto_caffemodel(weights)
    return str(net_file), weights


def _loaded(net):
    np.testing.assert_array_equal(net.params['ip'][0].data, W)
    np.testing.assert_array_equal(net.params['ip'][1].data, B)
    np.testing.assert_array_equal(net.params['ip2'][0].data, V)
    assert net.params['ip3'][0] is net.params['ip2'][0]


def test_toproto_weights_load_through_every_path(files):
    net_file, weights = files
    _loaded(caffe.Net(net_file, weights, caffe.TEST))
    _loaded(caffe.Net(net_file, caffe.TEST, weights=weights))
    net = caffe.Net(net_file, caffe.TEST)
    net.copy_from(weights)
    _loaded(net)


def test_a_definition_with_bare_inputs_is_still_an_error(tmp_path):
    path = tmp_path / 'bad.prototxt'
    path.write_text('name: "bad"\ninput: "data"\n'
                    'layer { name: "r" type: "ReLU" bottom: "data" top: "r" }\n')
    with pytest.raises(caffe.CaffeError, match='input_dim'):
        caffe.Net(str(path), caffe.TEST)


def test_save_writes_input_names_as_toproto_and_loads_back(files, tmp_path):
    net_file, weights = files
    net = caffe.Net(net_file, weights, caffe.TEST)
    out = str(tmp_path / 'ours.caffemodel')
    net.save(out)
    proto = io.read_binary(out, caffe_pb2.NetParameter())
    assert list(proto.input) == ['data', 'extra'] and not proto.input_dim
    assert not proto.input_shape
    _loaded(caffe.Net(net_file, out, caffe.TEST))


# HDF5 --------------------------------------------------------------------------------------------

def test_save_hdf5_layout_is_caffes(files, tmp_path):
    net_file, weights = files
    net = caffe.Net(net_file, weights, caffe.TEST)
    path = str(tmp_path / 'w.h5')
    net.save_hdf5(path)
    with h5py.File(path, 'r') as f:
        assert set(f) == {'data'}
        # A group for every layer of the net, the inserted Split included (Caffe's layers_).
        assert set(f['data']) == {'input', 'ip', 'ip2', 'ip3', 'extra_input_1_split'}
        np.testing.assert_array_equal(f['data/ip/0'][...], W)
        np.testing.assert_array_equal(f['data/ip/1'][...], B)
        assert f['data/ip/0'].dtype == np.float32
        np.testing.assert_array_equal(f['data/ip2/0'][...], V)
        assert len(f['data/ip3']) == 0                              # shared: the owner writes it
    net.params['ip'][0].diff[...] = 3
    net.save_hdf5(path, write_diff=True)
    with h5py.File(path, 'r') as f:
        np.testing.assert_array_equal(f['diff/ip/0'][...], 3)
        assert '0' in f['diff/ip3']                                 # diffs regardless of sharing


def test_hdf5_round_trip_through_load_hdf5_and_copy_from(files, tmp_path):
    net_file, weights = files
    path = str(tmp_path / 'w.h5')
    caffe.Net(net_file, weights, caffe.TEST).save_hdf5(path)
    fresh = caffe.Net(net_file, caffe.TEST)
    fresh.load_hdf5(path)
    _loaded(fresh)
    _loaded(caffe.Net(net_file, path, caffe.TEST))                  # told by its signature


def test_hdf5_written_by_hand_and_its_errors(files, tmp_path):
    net_file, _ = files
    path = str(tmp_path / 'hand.h5')
    with h5py.File(path, 'w') as f:
        f.create_dataset('data/ip/0', data=W)
        f.create_dataset('data/ip/1', data=B)
        f.create_dataset('data/ip2/0', data=V)
        f.create_dataset('data/not_in_net/0', data=np.zeros(3, np.float32))
    net = caffe.Net(net_file, caffe.TEST)
    net.copy_from(path)
    _loaded(net)
    with h5py.File(path, 'a') as f:
        del f['data/ip/0']
        f.create_dataset('data/ip/0', data=np.zeros((3, 3), np.float32))
    with pytest.raises(caffe.CaffeError, match=r"'ip' param 0 has shape \(3, 3\).*\(2, 3\)"):
        net.load_hdf5(path)
    with h5py.File(path, 'a') as f:
        del f['data/ip/1']
        del f['data/ip/0']
        f.create_dataset('data/ip/1', data=B)
    with pytest.raises(caffe.CaffeError, match="'ip' lacks parameter 0"):
        net.load_hdf5(path)
    with pytest.raises(RuntimeError, match='Could not open file'):
        net.load_hdf5(str(tmp_path / 'missing.h5'))


def test_missing_h5py_is_one_clear_error(files, tmp_path, monkeypatch):
    import sys
    net_file, weights = files
    net = caffe.Net(net_file, weights, caffe.TEST)
    monkeypatch.setitem(sys.modules, 'h5py', None)
    with pytest.raises(caffe.CaffeError, match='pip install h5py'):
        net.save_hdf5(str(tmp_path / 'w.h5'))


def test_deploy_definition_text_round_trip_uses_input_shapes(files):
    # The definition's old-style inputs (with shapes) become an Input layer, as Caffe upgrades.
    net_file, _ = files
    net = caffe.Net(net_file, caffe.TEST)
    assert net.inputs == ['data', 'extra'] and net.blobs['data'].shape == (2, 3)
    param = text_format.Parse(DEPLOY, caffe_pb2.NetParameter())
    assert caffe.io.upgrade_net(param).layer[0].type == 'Input'
