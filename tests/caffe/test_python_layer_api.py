"""The fork's Python-layer API, which the release's layers are written against: `param_str_`
beside BVLC's `param_str`, and Phase, whose str() is 'TRAIN'/'TEST' while it equals 0/1 (the
fork's boost.python enum), so `cfg[str(self.phase)]` works. The layers in
release_style_layers.py are written in the release's style."""
import copy
import pickle

import numpy as np
import pytest
from easydict import EasyDict

import caffe
from caffe.proto import caffe_pb2

ROWS = np.array([[0.9, 1], [0.2, 2], [0.7, 3], [0.6, 4], [0.95, 5], [0.4, 6]], np.float32)

NET = '''name: "release_style"
layer { name: "rows" type: "Input" top: "rows" input_param { shape { dim: 6 dim: 2 } } }
layer { name: "top_rows" type: "Python" bottom: "rows" top: "kept" %s
        python_param { module: "release_style_layers" layer: "TopRowsLayer"
                       param_str: "'scale': 3" } }
layer { name: "keys" type: "Python" top: "keys"
        python_param { module: "release_style_layers" layer: "PhaseKeysLayer" } }
'''


def write_net(tmp_path, phase):
    count_top = 'top: "count"' if phase == caffe.TRAIN else ''
    path = tmp_path / ('net_%s.prototxt' % phase)
    path.write_text(NET % count_top)
    return str(path)


# Phase ------------------------------------------------------------------------------------------

def test_phase_prints_its_name_and_equals_its_number():
    assert (str(caffe.TRAIN), str(caffe.TEST)) == ('TRAIN', 'TEST')
    assert ('%s' % caffe.TEST, '{}'.format(caffe.TRAIN), f'{caffe.TEST}') == ('TEST', 'TRAIN',
                                                                                 'TEST')
    assert '%d' % caffe.TEST == '1' and int(caffe.TEST) == 1
    assert caffe.TRAIN == 0 and caffe.TEST == 1 and caffe.TRAIN != caffe.TEST
    assert hash(caffe.TRAIN) == hash(0) and hash(caffe.TEST) == hash(1)
    assert isinstance(caffe.TRAIN, int) and caffe.TRAIN.name == 'TRAIN'
    # caffe.proto's values are the same numbers
    assert caffe.TRAIN == caffe_pb2.TRAIN and caffe.TEST == caffe_pb2.TEST


def test_phase_works_as_a_key_both_ways():
    assert {0: 'a', 1: 'b'}[caffe.TEST] == 'b'
    assert {caffe.TRAIN: 'a', caffe.TEST: 'b'}[1] == 'b'
    assert len({caffe.TRAIN, 0, caffe.TEST, 1}) == 2
    cfg = EasyDict({'TRAIN': {'N': 12000}, 'TEST': {'N': 6000}})
    assert cfg[str(caffe.TRAIN)].N == 12000 and cfg[str(caffe.TEST)].N == 6000
    assert ['train', 'test'][caffe.TEST] == 'test'


def test_phase_members_are_the_only_instances():
    assert caffe.Phase(0) is caffe.TRAIN and caffe.Phase(caffe_pb2.TEST) is caffe.TEST
    assert caffe.Phase.names == {'TRAIN': caffe.TRAIN, 'TEST': caffe.TEST}
    assert caffe.Phase.values == {0: caffe.TRAIN, 1: caffe.TEST}
    for phase in (caffe.TRAIN, caffe.TEST):
        assert pickle.loads(pickle.dumps(phase)) is phase
        assert copy.deepcopy(phase) is phase
    for bad in (2, -1, 'TRAIN', 0.5, None):
        with pytest.raises(ValueError, match='0 \\(TRAIN\\) or 1 \\(TEST\\)'):
            caffe.Phase(bad)


def test_phase_goes_into_protobuf_and_numpy():
    state = caffe_pb2.NetState(phase=caffe.TRAIN)
    assert state.phase == 0
    state.phase = caffe.TEST
    assert state.phase == caffe_pb2.TEST
    a = np.zeros(2, np.float32)
    a[0] = caffe.TEST
    assert a.tolist() == [1.0, 0.0]


def test_net_and_layers_carry_a_phase(tmp_path):
    for given, expected in ((0, caffe.TRAIN), (caffe.TEST, caffe.TEST)):
        net = caffe.Net(write_net(tmp_path, expected), given)
        assert net.phase is expected
        assert all(layer.phase is expected for layer in net.layers)
    with pytest.raises(ValueError, match='not 2'):
        caffe.Net(write_net(tmp_path, caffe.TEST), 2)


# The release's layers ---------------------------------------------------------------------------

def test_release_style_layer_reads_yaml_and_cfg_by_phase(tmp_path):
    order = np.argsort(-ROWS[:, 0], kind='stable')
    for phase, top_n, min_score in ((caffe.TRAIN, 4, 0.5), (caffe.TEST, 2, 0.0)):
        net = caffe.Net(write_net(tmp_path, phase), phase)
        out = net.forward(rows=ROWS)
        best = ROWS[order[:top_n]]
        expected = best[best[:, 0] >= min_score] * 3
        np.testing.assert_array_equal(out['kept'], expected)
        if phase == caffe.TRAIN:
            assert out['count'][0] == len(expected) == 4
        else:
            assert 'count' not in out and len(expected) == 2


def test_every_kind_of_phase_lookup_agrees(tmp_path):
    for phase, expected in ((caffe.TRAIN, [10, 100, 4, 0]), (caffe.TEST, [20, 200, 2, 1])):
        net = caffe.Net(write_net(tmp_path, phase), phase)
        np.testing.assert_array_equal(net.forward()['keys'], expected)


def test_param_str_and_param_str_underscore_are_one_value(tmp_path):
    net = caffe.Net(write_net(tmp_path, caffe.TEST), caffe.TEST)
    layer = net.layer_dict['top_rows']
    assert layer.param_str_ == layer.param_str == "'scale': 3"
    layer.param_str_ = "'scale': 5"            # the fork's name, assigned
    assert layer.param_str == "'scale': 5"
    layer.param_str = "'scale': 7"             # BVLC's name, assigned
    assert layer.param_str_ == "'scale': 7"
    assert net.layer_dict['keys'].param_str_ == ''


def test_solver_nets_give_their_layers_train_and_test(tmp_path):
    train = tmp_path / 'train.prototxt'
    train.write_text(NET % 'top: "count"' + '''
layer { name: "loss" type: "Python" bottom: "kept" top: "loss" loss_weight: 1
        python_param { module: "net_test_layers" layer: "Sum" }
        include { phase: TRAIN } }''')
    test = tmp_path / 'test.prototxt'
    test.write_text(NET % '')
    solver = tmp_path / 'solver.prototxt'
    solver.write_text('train_net: "%s"\ntest_net: "%s"\ntest_iter: 1\ntest_interval: 1000\n'
                      'base_lr: 0.1\nlr_policy: "fixed"\nmax_iter: 1\n' % (train, test))
    s = caffe.SGDSolver(str(solver))
    assert str(s.net.layer_dict['top_rows'].phase) == 'TRAIN'
    assert str(s.test_nets[0].layer_dict['top_rows'].phase) == 'TEST'
    s.net.blobs['rows'].data[...] = ROWS
    s.net.forward()
    assert s.net.blobs['kept'].shape == (4, 2)
