"""Net construction and passes: phases and stages, splits, in-place layers, loss weights,
need-backward pruning, lr_mult 0 freezing, Python layers, weights round trip, V1 upgrade, errors."""
import numpy as np
import pytest
from google.protobuf import text_format

import caffe
from caffe import io
from caffe.proto import caffe_pb2

import net_test_layers


def write(tmp_path, text, name='net.prototxt'):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


INPUT = '''
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
'''


def py(name, bottom, top, cls, param_str='', extra=''):
    bottoms = ''.join('bottom: "%s" ' % b for b in bottom)
    tops = ''.join('top: "%s" ' % t for t in top)
    return ('layer { name: "%s" type: "Python" %s %s python_param { module: "net_test_layers" '
            'layer: "%s" param_str: "%s" } %s }\n' % (name, bottoms, tops, cls, param_str, extra))


def test_phase_and_stage_rules(tmp_path):
    text = INPUT + (
        py('train_only', ['x'], ['a'], 'Scale', '2', 'include { phase: TRAIN }') +
        py('test_only', ['x'], ['a'], 'Scale', '3', 'include { phase: TEST }') +
        py('staged', ['a'], ['b'], 'Scale', '5', 'include { stage: "deploy" }') +
        py('not_staged', ['a'], ['b'], 'Scale', '7', 'exclude { stage: "deploy" }') +
        py('leveled', ['b'], ['c'], 'Scale', '1', 'include { min_level: 1 }'))
    path = write(tmp_path, text)
    train = caffe.Net(path, caffe.TRAIN)
    assert list(train.layer_dict) == ['x', 'train_only', 'not_staged']
    assert train.layer_dict['train_only'].seen_phase == caffe.TRAIN
    test = caffe.Net(path, phase=caffe.TEST, stages=['deploy'], level=1)
    assert list(test.layer_dict) == ['x', 'test_only', 'staged', 'leveled']
    assert test.layer_dict['test_only'].seen_phase == caffe.TEST
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert np.allclose(test.forward(x=x)['c'], 15 * x)


def test_split_inserted_and_diffs_add(tmp_path):
    text = INPUT + (py('s2', ['x'], ['a'], 'Scale', '2') + py('s3', ['x'], ['b'], 'Scale', '3') +
                    py('sum_a', ['a'], ['la'], 'Sum', '', 'loss_weight: 1') +
                    py('sum_b', ['b'], ['lb'], 'Sum', '', 'loss_weight: 1'))
    net = caffe.Net(write(tmp_path, 'force_backward: true\n' + text), caffe.TRAIN)
    types = [l.type for l in net.layers]
    assert types.count('Split') == 1
    assert net.bottom_names['s2'] == ['x_x_0_split_0']
    assert net.bottom_names['s3'] == ['x_x_0_split_1']
    x = np.random.RandomState(0).randn(2, 3).astype(np.float32)
    net.forward(x=x)
    diffs = net.backward()
    assert np.allclose(net.blobs['x'].diff, 5.0)
    assert 'x' in diffs


def test_in_place_layers_share_the_blob(tmp_path):
    text = INPUT + py('s', ['x'], ['x'], 'Scale', '2') + py('t', ['x'], ['x'], 'Scale', '3')
    net = caffe.Net(write(tmp_path, text), caffe.TEST)
    assert list(net.blobs) == ['x']
    x = np.ones((2, 3), dtype=np.float32)
    out = net.forward(x=x)
    assert np.allclose(out['x'], 6.0)
    assert net.outputs == ['x']


def test_loss_weight_scales_loss_and_gradient(tmp_path):
    text = INPUT + ('layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" '
                    'inner_product_param { num_output: 2 weight_filler { type: "constant" '
                    'value: 1 } } }\n' +
                    py('loss', ['y'], ['loss'], 'Sum', '', 'loss_weight: 0.5'))
    net = caffe.Net(write(tmp_path, text), caffe.TRAIN)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    net.blobs['x'].data[...] = x
    loss = net.forward_backward()
    assert loss == pytest.approx(0.5 * (2 * x.sum()))
    # d loss / d W[o, k] = 0.5 * sum_n x[n, k]
    assert np.allclose(net.params['ip'][0].diff, 0.5 * x.sum(0)[None, :].repeat(2, 0))
    assert np.allclose(net.params['ip'][1].diff, 0.5 * 2)
    assert net.blob_loss_weights['loss'] == 0.5


def test_lr_mult_zero_freezes_and_prunes_backward(tmp_path):
    text = INPUT + (py('pre', ['x'], ['p'], 'Scale', '2') +
                    'layer { name: "frozen" type: "InnerProduct" bottom: "p" top: "y" '
                    'param { lr_mult: 0 } param { lr_mult: 0 } '
                    'inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }\n'
                    'layer { name: "ip2" type: "InnerProduct" bottom: "y" top: "z" '
                    'inner_product_param { num_output: 1 weight_filler { type: "gaussian" } } }\n' +
                    py('loss', ['z'], ['loss'], 'Sum', '', 'loss_weight: 1'))
    net = caffe.Net(write(tmp_path, text), caffe.TRAIN)
    net.blobs['x'].data[...] = 1
    net_test_layers.Scale.backward_calls = 0
    net.clear_param_diffs()
    net.forward_backward()
    assert np.all(net.params['frozen'][0].diff == 0)
    assert np.any(net.params['ip2'][0].diff != 0)
    assert net_test_layers.Scale.backward_calls == 0     # nothing below the frozen layer learns
    assert net.layer_dict['frozen'].param_propagate_down == [False, False]


def test_force_backward_reaches_inputs_and_zeroes_labels(tmp_path):
    text = ('force_backward: true\n'
            'layer { name: "in" type: "Input" top: "s" top: "label" '
            'input_param { shape { dim: 4 dim: 3 } shape { dim: 4 } } }\n'
            'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "s" bottom: "label" '
            'top: "loss" }\n')
    net = caffe.Net(write(tmp_path, text), caffe.TRAIN)
    s = np.random.RandomState(1).randn(4, 3).astype(np.float32)
    label = np.array([0, 2, 1, 2], dtype=np.float32)
    net.blobs['label'].diff[...] = 7
    net.forward(s=s, label=label)
    diffs = net.backward()
    p = np.exp(s - s.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(4), label.astype(int)] -= 1
    assert np.allclose(diffs['s'], p / 4, atol=1e-6)
    assert np.all(diffs['label'] == 0)


def test_python_layer_param_str_and_phase(tmp_path):
    text = INPUT + py('s', ['x'], ['y'], 'Scale', '4.5')
    net = caffe.Net(write(tmp_path, text), caffe.TEST)
    layer = net.layer_dict['s']
    assert layer.param_str == '4.5' and layer.factor == 4.5 and layer.phase == caffe.TEST


def test_forward_end_and_blobs_argument(tmp_path):
    text = INPUT + py('a', ['x'], ['y'], 'Scale', '2') + py('b', ['y'], ['z'], 'Scale', '3')
    net = caffe.Net(write(tmp_path, text), caffe.TEST)
    x = np.ones((2, 3), dtype=np.float32)
    out = net.forward(end='a', x=x)
    assert list(out) == ['y'] and np.allclose(out['y'], 2)
    out = net.forward(blobs=['y'], x=x)
    assert np.allclose(out['z'], 6) and np.allclose(out['y'], 2)


IP_NET = '''
name: "ipnet"
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 5 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 1 }
                              bias_filler { type: "uniform" } } }
'''


def test_save_and_copy_from_round_trip(tmp_path):
    path = write(tmp_path, IP_NET)
    caffe.set_random_seed(5)
    a = caffe.Net(path, caffe.TEST)
    weights = str(tmp_path / 'w.caffemodel')
    a.save(weights)
    caffe.set_random_seed(6)
    b = caffe.Net(path, weights, caffe.TEST)
    for pa, pb in zip(a.params['ip'], b.params['ip']):
        assert np.array_equal(pa.data, pb.data)
    # what we write is a plain NetParameter with blobs of explicit shape
    proto = io.read_binary(weights, caffe_pb2.NetParameter())
    assert proto.layer[1].name == 'ip' and list(proto.layer[1].blobs[0].shape.dim) == [3, 5]


def test_v1_net_and_weights_upgrade(tmp_path):
    v1 = '''
name: "old"
input: "x"
input_dim: 2 input_dim: 5 input_dim: 1 input_dim: 1
layers { name: "ip" type: INNER_PRODUCT bottom: "x" top: "y" blobs_lr: 1 blobs_lr: 2
         weight_decay: 1 weight_decay: 0
         inner_product_param { num_output: 3 weight_filler { type: "gaussian" } } }
layers { name: "relu" type: RELU bottom: "y" top: "y" }
'''
    net = caffe.Net(write(tmp_path, v1), caffe.TEST)
    assert [l.type for l in net.layers] == ['Input', 'InnerProduct', 'ReLU']
    assert net.inputs == ['x'] and net.blobs['x'].shape == (2, 5, 1, 1)
    assert net.params_lr == [1, 2] and net.params_weight_decay == [1, 0]
    # an old-style weights file with legacy 4-D blob shapes
    old = caffe_pb2.NetParameter()
    layer = old.layers.add(name='ip', type=caffe_pb2.V1LayerParameter.INNER_PRODUCT)
    w = np.arange(15, dtype=np.float32).reshape(3, 5)
    blob = layer.blobs.add(num=1, channels=1, height=3, width=5)
    blob.data.extend(w.ravel().tolist())
    bias = layer.blobs.add(num=1, channels=1, height=1, width=3)
    bias.data.extend([1, 2, 3])
    path = str(tmp_path / 'old.caffemodel')
    io.write_binary(path, old)
    net.copy_from(path)
    assert np.array_equal(net.params['ip'][0].data, w)
    assert np.array_equal(net.params['ip'][1].data, [1, 2, 3])
    x = np.ones((2, 5, 1, 1), dtype=np.float32)
    assert np.allclose(net.forward(x=x)['y'], np.maximum(w.sum(1) + [1, 2, 3], 0))


def test_param_sharing_by_name(tmp_path):
    text = INPUT + ''.join(
        'layer { name: "ip%d" type: "InnerProduct" bottom: "x" top: "y%d" '
        'param { name: "shared_w" } param { name: "shared_b" } '
        'inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }\n' % (i, i)
        for i in (1, 2))
    net = caffe.Net(write(tmp_path, text), caffe.TRAIN)
    assert net.params['ip1'][0] is net.params['ip2'][0]
    assert len(net.learnable_params) == 2


# Errors -----------------------------------------------------------------------------------------

def test_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, 'name: "bad"\nlayer {\n  name: "x"\n  typo_field: 3\n}\n')
    with pytest.raises(caffe.CaffeError) as e:
        caffe.Net(path, caffe.TEST)
    assert '%s:4:' % path in str(e.value) and 'typo_field' in str(e.value)


def test_unknown_layer_type_names_it(tmp_path):
    path = write(tmp_path, INPUT + 'layer { name: "mystery" type: "Frobnicate" bottom: "x" '
                                   'top: "y" }\n')
    with pytest.raises(caffe.CaffeError, match="unknown layer type 'Frobnicate'.*'mystery'"):
        caffe.Net(path, caffe.TEST)


def test_missing_bottom_names_it(tmp_path):
    path = write(tmp_path, INPUT + py('s', ['nowhere'], ['y'], 'Scale'))
    with pytest.raises(caffe.CaffeError, match="'s'.*'nowhere'"):
        caffe.Net(path, caffe.TEST)


def test_python_module_that_cannot_be_imported(tmp_path):
    path = write(tmp_path, INPUT + 'layer { name: "p" type: "Python" bottom: "x" top: "y" '
                                   'python_param { module: "no_such_module_xyz" layer: "L" } }\n')
    with pytest.raises(caffe.CaffeError, match='no_such_module_xyz'):
        caffe.Net(path, caffe.TEST)


def test_weights_shape_mismatch_names_layer_and_shapes(tmp_path):
    path = write(tmp_path, IP_NET)
    other = caffe_pb2.NetParameter()
    layer = other.layer.add(name='ip', type='InnerProduct')
    layer.blobs.append(io.array_to_blobproto(np.zeros((4, 5), np.float32)))
    layer.blobs.append(io.array_to_blobproto(np.zeros((4,), np.float32)))
    weights = str(tmp_path / 'w.caffemodel')
    io.write_binary(weights, other)
    with pytest.raises(caffe.CaffeError) as e:
        caffe.Net(path, weights, caffe.TEST)
    msg = str(e.value)
    assert "'ip'" in msg and '(4, 5)' in msg and '(3, 5)' in msg and weights in msg


def test_truncated_and_foreign_weights(tmp_path):
    path = write(tmp_path, IP_NET)
    net = caffe.Net(path, caffe.TEST)
    good = str(tmp_path / 'good.caffemodel')
    net.save(good)
    data = open(good, 'rb').read()
    bad = tmp_path / 'truncated.caffemodel'
    bad.write_bytes(data[:len(data) // 2])
    with pytest.raises(caffe.CaffeError, match='truncated.caffemodel'):
        net.copy_from(str(bad))
    with pytest.raises(caffe.CaffeError, match='not found'):
        net.copy_from(str(tmp_path / 'missing.caffemodel'))
    assert not list(tmp_path.glob('.*.tmp'))


LOGITS = '''force_backward: true
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "y" type: "Input" top: "y" input_param { shape { dim: 2 } } }
'''


def _softmax_loss(x, y):
    """Mean negative log-likelihood over the batch, in float64."""
    x = x.astype(np.float64)
    logp = x - x.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    return -logp[np.arange(len(y)), y.astype(int)].mean()


def test_a_loss_layer_without_a_top_gets_an_anonymous_one(tmp_path):
    # Caffe's AutoTopBlobs: BVLC's finetune_pascal_detection net writes its SoftmaxWithLoss with
    # no top; the loss still counts, in forward's value and in the gradient.
    path = write(tmp_path, LOGITS + '''
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "y" }
layer { name: "l2" type: "EuclideanLoss" bottom: "x" bottom: "x" loss_weight: 0.5 }
''')
    net = caffe.Net(path, caffe.TRAIN)
    x = np.array([[1, 2, 0.5], [0, -1, 3]], np.float32)
    y = np.array([2, 1], np.float32)
    net.blobs['x'].data[...] = x
    net.blobs['y'].data[...] = y
    assert net.outputs == []
    assert '(automatic)' in net.blobs
    assert net.forward_from_to() == pytest.approx(_softmax_loss(x, y), rel=1e-6)
    net.backward()
    e = np.exp(x - x.max(1, keepdims=True))
    expected = e / e.sum(1, keepdims=True)
    expected[[0, 1], [2, 1]] -= 1
    assert np.allclose(net.blobs['x'].diff, expected / 2, atol=1e-6)


def test_two_layers_may_share_a_name(tmp_path):
    # Caffe does not refuse it (BVLC's mnist_autoencoder.prototxt has two layers named "loss");
    # pycaffe's name-keyed views keep the later layer.
    path = write(tmp_path, LOGITS + '''
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "nll" }
layer { name: "loss" type: "EuclideanLoss" bottom: "x" bottom: "x" top: "l2" loss_weight: 0 }
''')
    net = caffe.Net(path, caffe.TRAIN)
    assert [l.type for l in net.layers if l.type != 'Split'] == ['Input', 'Input',
                                                              'SoftmaxWithLoss', 'EuclideanLoss']
    assert net.layer_dict['loss'].type == 'EuclideanLoss'
    assert net.top_names['loss'] == ['l2']
    x = np.array([[1, 2, 0.5], [0, -1, 3]], np.float32)
    y = np.array([0, 2], np.float32)
    out = net.forward(x=x, y=y)
    assert float(out['nll']) == pytest.approx(_softmax_loss(x, y), rel=1e-6)
    assert float(out['l2']) == 0
    assert net.blob_loss_weights['nll'] == 1 and net.blob_loss_weights['l2'] == 0
    net.backward()
    assert np.any(net.blobs['x'].diff)
