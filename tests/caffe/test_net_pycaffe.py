"""The Net behaves as pycaffe's does where scripts rely on it: sorted outputs, loss weights held
in the loss tops' diffs, errors (RuntimeError, ValueError), layer-wise hooks, share_with,
forward_all / forward_backward_all, set_input_arrays, the public NetParameter constructor and
the blob counts layers declare."""
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

import caffe
from caffe.proto import caffe_pb2

LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                   'lib')

W = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]], dtype=np.float32)
B = np.array([0.1, -0.2], dtype=np.float32)


def write(tmp_path, text, name='net.prototxt'):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def py(name, bottom, top, cls, param_str='', extra=''):
    bottoms = ''.join('bottom: "%s" ' % b for b in bottom)
    tops = ''.join('top: "%s" ' % t for t in top)
    return ('layer { name: "%s" type: "Python" %s %s python_param { module: "net_test_layers" '
            'layer: "%s" param_str: "%s" } %s }\n' % (name, bottoms, tops, cls, param_str, extra))


def ip_net(batch=2, loss_weight=None):
    """x (batch, 3) -> ip (2 outputs) -> y; with loss_weight, loss = sum(y) weighted."""
    text = ('name: "ipnet"\n'
            'layer { name: "x" type: "Input" top: "x" input_param { shape { dim: %d dim: 3 } } }\n'
            'layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" '
            'inner_product_param { num_output: 2 } }\n' % batch)
    if loss_weight is not None:
        text += py('loss', ['y'], ['loss'], 'Sum', '', 'loss_weight: %g' % loss_weight)
    return text


def set_ip(net):
    net.params['ip'][0].data[...] = W
    net.params['ip'][1].data[...] = B


# Outputs, types, errors --------------------------------------------------------------------------

def test_outputs_are_sorted_by_name_as_caffes_std_set(tmp_path):
    text = ('layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'
            + py('a', ['x'], ['zeta'], 'Scale') + py('b', ['x'], ['alpha'], 'Scale')
            + py('c', ['x'], ['mid'], 'Scale'))
    net = caffe.Net(write(tmp_path, text), caffe.TEST)
    assert net.outputs == ['alpha', 'mid', 'zeta']
    out = net.forward(x=np.ones((2, 3), np.float32))
    assert sorted(out) == ['alpha', 'mid', 'zeta']


def test_solver_prints_train_outputs_in_sorted_order(tmp_path, capsys):
    # z_loss is produced first, a_loss second; Caffe prints them by name.
    text = (ip_net() + py('lz', ['y'], ['z_loss'], 'Sum', '', 'loss_weight: 1')
            + py('la', ['y'], ['a_loss'], 'Sum', '', 'loss_weight: 1'))
    (tmp_path / 'net.prototxt').write_text(text)
    (tmp_path / 'solver.prototxt').write_text(
        'net: "%s"\nbase_lr: 0\nlr_policy: "fixed"\nmax_iter: 1\ndisplay: 1\n'
        'snapshot_after_train: false\n' % (tmp_path / 'net.prototxt'))
    solver = caffe.SGDSolver(str(tmp_path / 'solver.prototxt'))
    solver.step(1)
    lines = [l for l in capsys.readouterr().out.splitlines() if 'Train net output' in l]
    assert 'a_loss' in lines[0] and '#0' in lines[0]
    assert 'z_loss' in lines[1] and '#1' in lines[1]


def test_python_layer_type_is_python(tmp_path):
    net = caffe.Net(write(tmp_path, ip_net(loss_weight=1)), caffe.TEST)
    assert net.layer_dict['loss'].type == 'Python'
    assert net.layer_dict['ip'].type == 'InnerProduct'


def test_missing_files_raise_runtime_error_could_not_open(tmp_path):
    assert issubclass(caffe.CaffeError, RuntimeError)
    missing = str(tmp_path / 'nope.prototxt')
    with pytest.raises(RuntimeError, match='Could not open file %s' % missing):
        caffe.Net(missing, caffe.TEST)
    path = write(tmp_path, ip_net())
    weights = str(tmp_path / 'nope.caffemodel')
    for make in (lambda: caffe.Net(path, weights, caffe.TEST),
                 lambda: caffe.Net(path, caffe.TEST, weights=weights),
                 lambda: caffe.Net(path, caffe.TEST).copy_from(weights)):
        with pytest.raises(RuntimeError, match='Could not open file %s' % weights):
            make()
    with pytest.raises(RuntimeError, match='Could not open file'):
        caffe.SGDSolver(str(tmp_path / 'nope_solver.prototxt'))


def test_unknown_start_or_end_layer_is_a_value_error(tmp_path):
    net = caffe.Net(write(tmp_path, ip_net()), caffe.TEST)
    with pytest.raises(ValueError, match="'nope'"):
        net.forward(start='nope')
    with pytest.raises(ValueError, match="'nope'"):
        net.forward(end='nope')
    with pytest.raises(ValueError, match="'nope'"):
        net.backward(start='nope')


def test_io_and_proto_work_right_after_import():
    code = ('import caffe, sys\n'
            'assert "caffe.net" not in sys.modules\n'
            'd = caffe.proto.caffe_pb2.Datum(channels=1)\n'
            'a = caffe.io.blobproto_to_array(caffe.io.array_to_blobproto(caffe.io.np.ones(2)))\n'
            'print(d.channels, a.tolist())')
    out = subprocess.run([sys.executable, '-c', code], cwd=LIB, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=LIB))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ['1', '[1.0,', '1.0]']


# Loss weights live in the loss tops' diffs ------------------------------------------------------

def _ip_gradients(x, weight):
    # loss = weight * sum(x W^T + b): dW[o, k] = weight * sum_n x[n, k], db = weight * N.
    return (weight * np.tile(x.sum(0), (2, 1)), weight * np.full(2, x.shape[0]))


def test_loss_top_diff_holds_its_weight_from_setup_and_scales_backward(tmp_path):
    net = caffe.Net(write(tmp_path, ip_net(loss_weight=0.5)), caffe.TRAIN)
    assert net.blobs['loss'].diff.tolist() == [0.5]        # before any pass
    set_ip(net)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    net.blobs['x'].data[...] = x
    net.clear_param_diffs()
    loss = net.forward_backward()
    assert loss == pytest.approx(0.5 * (x @ W.T + B).sum())
    gW, gb = _ip_gradients(x, 0.5)
    np.testing.assert_allclose(net.params['ip'][0].diff, gW)
    np.testing.assert_allclose(net.params['ip'][1].diff, gb)
    assert net.blobs['loss'].diff.tolist() == [0.5]        # backward does not consume it
    # pycaffe users rescale a loss by writing its diff: gradients scale by 5 / 0.5.
    net.blobs['loss'].diff[...] = 5
    net.clear_param_diffs()
    net.forward(x=x)
    net.backward()
    gW, gb = _ip_gradients(x, 5.0)
    np.testing.assert_allclose(net.params['ip'][0].diff, gW)
    np.testing.assert_allclose(net.params['ip'][1].diff, gb)


def test_repeated_passes_give_identical_gradients(tmp_path):
    # Normal training: the weight stays in the diff, every iteration sees the same gradients.
    net = caffe.Net(write(tmp_path, ip_net(loss_weight=2)), caffe.TRAIN)
    set_ip(net)
    x = np.random.RandomState(0).randn(2, 3).astype(np.float32)
    grads = []
    for _ in range(3):
        net.clear_param_diffs()
        net.forward(x=x)
        net.backward()
        grads.append(net.params['ip'][0].diff.copy())
    assert all(np.array_equal(g, grads[0]) for g in grads)
    np.testing.assert_allclose(grads[0], _ip_gradients(x, 2.0)[0], rtol=1e-6)


def test_weighted_top_that_changes_size_keeps_its_weight(tmp_path):
    # A weighted top whose size follows the input keeps its weight when it grows.
    text = ('layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'
            + py('s', ['x'], ['y'], 'Scale', '1', 'loss_weight: 3'))
    net = caffe.Net(write(tmp_path, 'force_backward: true\n' + text), caffe.TRAIN)
    net.blobs['x'].reshape(4, 3)                          # y grows from 2x3 to 4x3
    net.blobs['x'].data[...] = 1
    loss = net.forward_backward()
    assert loss == pytest.approx(3 * 12)
    np.testing.assert_array_equal(net.blobs['y'].diff, 3)
    np.testing.assert_array_equal(net.blobs['x'].diff, 3)


# Hooks, sharing, batches -----------------------------------------------------------------------

def test_layer_wise_hooks_run_around_each_layer_in_order(tmp_path):
    net = caffe.Net(write(tmp_path, ip_net(loss_weight=1)), caffe.TRAIN)
    calls = []
    net.before_forward(lambda i: calls.append(('bf', i)))
    net.after_forward(lambda i: calls.append(('af', i)))
    net.before_backward(lambda i: calls.append(('bb', i)))
    net.after_backward(lambda i: calls.append(('ab', i)))
    net.forward_backward()
    n = len(net.layers)
    expected = [(k, i) for i in range(n) for k in ('bf', 'af')]
    # Backward visits every layer, also the Input layer that needs no backward, as Caffe does.
    expected += [(k, i) for i in reversed(range(n)) for k in ('bb', 'ab')]
    assert calls == expected


def test_after_backward_sees_that_layers_parameter_gradients(tmp_path):
    net = caffe.Net(write(tmp_path, ip_net(loss_weight=1)), caffe.TRAIN)
    set_ip(net)
    seen = {}
    ip = net._layer_names.index('ip')
    net.after_backward(lambda i: seen.setdefault(i, net.params['ip'][0].diff.copy()))
    net.blobs['x'].data[...] = 1
    net.clear_param_diffs()
    net.forward_backward()
    np.testing.assert_allclose(seen[ip], _ip_gradients(np.ones((2, 3)), 1.0)[0])


def test_share_with_shares_data_not_diffs(tmp_path):
    a = caffe.Net(write(tmp_path, ip_net(loss_weight=1)), caffe.TRAIN)
    b = caffe.Net(write(tmp_path, ip_net(batch=4), 'b.prototxt'), caffe.TEST)
    set_ip(a)
    b.share_with(a)
    np.testing.assert_array_equal(b.params['ip'][0].data, W)
    a.params['ip'][0].data[0, 0] = 42                    # one memory: b sees a's update
    assert b.params['ip'][0].data[0, 0] == 42
    a.params['ip'][0].diff[...] = 7
    assert not np.any(b.params['ip'][0].diff == 7)
    other = caffe.Net(write(tmp_path, ip_net().replace('num_output: 2', 'num_output: 3'),
                            'c.prototxt'), caffe.TEST)
    with pytest.raises(caffe.CaffeError, match="'ip'.*shape"):
        other.share_with(a)


def _ip_forward(x):
    return x.astype(np.float64) @ W.T.astype(np.float64) + B


def test_forward_all_batches_pads_and_drops_the_padding(tmp_path):
    net = caffe.Net(write(tmp_path, ip_net(batch=2)), caffe.TEST)
    set_ip(net)
    x = np.random.RandomState(1).randn(5, 3).astype(np.float32)
    out = net.forward_all(x=x)
    assert list(out) == ['y'] and out['y'].shape == (5, 2)
    np.testing.assert_allclose(out['y'], _ip_forward(x), rtol=1e-6, atol=1e-6)
    out = net.forward_all(blobs=['x'], x=x)
    np.testing.assert_array_equal(out['x'], x)


def test_forward_backward_all_gives_input_diffs(tmp_path):
    net = caffe.Net(write(tmp_path, 'force_backward: true\n' + ip_net(batch=2)), caffe.TRAIN)
    set_ip(net)
    rs = np.random.RandomState(2)
    x = rs.randn(3, 3).astype(np.float32)
    dy = rs.randn(3, 2).astype(np.float32)
    outs, diffs = net.forward_backward_all(x=x, y=dy)
    assert outs['y'].shape == (3, 2) and diffs['x'].shape == (3, 3)
    np.testing.assert_allclose(outs['y'], _ip_forward(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(diffs['x'], dy.astype(np.float64) @ W, rtol=1e-6, atol=1e-6)


MEMORY = '''
layer { name: "mem" type: "MemoryData" top: "data" top: "label"
        memory_data_param { batch_size: 2 channels: 1 height: 1 width: 3 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "y"
        inner_product_param { num_output: 2 } }
'''


def test_set_input_arrays_feeds_memory_data_batch_by_batch(tmp_path):
    net = caffe.Net(write(tmp_path, MEMORY), caffe.TEST)
    set_ip(net)
    data = np.arange(12, dtype=np.float32).reshape(4, 1, 1, 3)
    labels = np.array([3, 1, 4, 1], dtype=np.float32)
    net.set_input_arrays(data, labels)
    for batch in (0, 1, 0):                               # wraps around after the last batch
        out = net.forward()
        rows = slice(2 * batch, 2 * batch + 2)
        np.testing.assert_array_equal(net.blobs['label'].data, labels[rows])
        np.testing.assert_allclose(out['y'], _ip_forward(data[rows].reshape(2, 3)), rtol=1e-6)


@pytest.mark.parametrize('data,labels,match', [
    (np.zeros((3, 1, 1, 3), np.float32), np.zeros(3, np.float32), 'multiple of batch size'),
    (np.zeros((4, 1, 1, 3), np.float64), np.zeros(4, np.float32), 'float32'),
    (np.zeros((4, 1, 1, 3), np.float32), np.zeros(2, np.float32), 'same first dimension'),
    (np.zeros((4, 2, 1, 3), np.float32), np.zeros(4, np.float32), 'channels'),
    (np.zeros((4, 1, 3), np.float32), np.zeros(4, np.float32), '4-d'),
    (np.zeros((4, 1, 1, 6), np.float32)[..., ::2], np.zeros(4, np.float32), 'contiguous'),
])
def test_set_input_arrays_checks_as_pycaffe(tmp_path, data, labels, match):
    net = caffe.Net(write(tmp_path, MEMORY), caffe.TEST)
    with pytest.raises(RuntimeError, match="'mem'.*" + match):
        net.set_input_arrays(data, labels)


def test_set_input_arrays_needs_memory_data_first(tmp_path):
    net = caffe.Net(write(tmp_path, ip_net()), caffe.TEST)
    with pytest.raises(RuntimeError, match='first layer is a MemoryDataLayer'):
        net.set_input_arrays(np.zeros((2, 1, 1, 3), np.float32), np.zeros(2, np.float32))
    net = caffe.Net(write(tmp_path, MEMORY), caffe.TEST)
    with pytest.raises(RuntimeError, match='set_input_arrays'):
        net.forward()


# Construction from a NetParameter ---------------------------------------------------------------

def test_from_param_uses_the_state_the_parameter_carries(tmp_path):
    from google.protobuf import text_format
    text = ip_net() + py('train_only', ['y'], ['z'], 'Scale', '2', 'include { phase: TRAIN }')
    param = text_format.Parse(text, caffe_pb2.NetParameter())
    test_net = caffe.Net.from_param(param)                 # NetState's default phase: TEST
    assert test_net.phase == caffe.TEST and 'train_only' not in test_net.layer_dict
    param.state.phase = caffe.TRAIN
    train_net = caffe.Net.from_param(param, source='in memory')
    assert 'train_only' in train_net.layer_dict and train_net.source == 'in memory'


def test_solver_nets_name_their_files(tmp_path):
    (tmp_path / 'net.prototxt').write_text(ip_net(loss_weight=1))
    (tmp_path / 'solver.prototxt').write_text(
        'net: "%s"\nbase_lr: 0.1\nlr_policy: "fixed"\nmax_iter: 1\n' % (tmp_path / 'net.prototxt'))
    solver = caffe.SGDSolver(str(tmp_path / 'solver.prototxt'))
    assert solver.net.source == str(tmp_path / 'net.prototxt')
    assert solver.net.phase == caffe.TRAIN


# Blob counts declared on the layer class --------------------------------------------------------

def test_built_in_layer_with_wrong_bottom_count_names_layer_and_type(tmp_path):
    text = ('layer { name: "x" type: "Input" top: "x" top: "x2" '
            'input_param { shape { dim: 2 dim: 3 } } }\n'
            'layer { name: "act" type: "ReLU" bottom: "x" bottom: "x2" top: "y" }\n')
    with pytest.raises(caffe.CaffeError, match="ReLU layer 'act': takes 1 bottom blob"):
        caffe.Net(write(tmp_path, text), caffe.TEST)
    text = ('layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 1 '
            'dim: 4 dim: 4 } } }\n'
            'layer { name: "conv" type: "Convolution" bottom: "x" top: "y" top: "y2" '
            'convolution_param { num_output: 1 kernel_size: 1 } }\n')
    with pytest.raises(caffe.CaffeError, match="Convolution layer 'conv'.*as many top"):
        caffe.Net(write(tmp_path, text, 'conv.prototxt'), caffe.TEST)


def test_python_layers_declare_counts_and_names(tmp_path, monkeypatch):
    (tmp_path / 'counted_layers.py').write_text(
        'import caffe\n\n'
        'class Pair(caffe.Layer):\n'
        '    bottoms, tops = ("features", "rois"), ("pooled",)\n'
        '    def reshape(self, bottom, top):\n'
        '        top[0].reshape(1)\n\n'
        'class AtMostTwo(caffe.Layer):\n'
        '    max_bottom_blobs = 2\n'
        '    def reshape(self, bottom, top):\n'
        '        top[0].reshape(1)\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    head = 'layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 } } }\n'

    def layer(cls, bottoms):
        return head + ('layer { name: "p" type: "Python" %s top: "y" python_param { module: '
                       '"counted_layers" layer: "%s" } }\n'
                       % (' '.join('bottom: "x"' for _ in range(bottoms)), cls))
    with pytest.raises(caffe.CaffeError,
                       match=r"Python layer 'p': takes 2 bottom blob\(s\) \(features, rois\), "
                             r"got 1"):
        caffe.Net(write(tmp_path, layer('Pair', 1)), caffe.TEST)
    with pytest.raises(caffe.CaffeError, match="Python layer 'p': takes at most 2 bottom"):
        caffe.Net(write(tmp_path, layer('AtMostTwo', 3)), caffe.TEST)
    assert caffe.Net(write(tmp_path, layer('AtMostTwo', 2)), caffe.TEST).layer_dict['p']


# Module-level pycaffe functions -----------------------------------------------------------------

def test_layer_type_list_is_sorted_and_complete():
    types = caffe.layer_type_list()
    assert types == sorted(types)
    assert {'Convolution', 'InnerProduct', 'MemoryData', 'Python', 'ROIPooling'} <= set(types)
    # every type a layer file registers, read off the sources (not the registry)
    layers_dir = os.path.join(LIB, 'caffe', 'layers')
    registered = set()
    for name in os.listdir(layers_dir):
        if name.endswith('.py'):
            with open(os.path.join(layers_dir, name)) as f:
                registered.update(re.findall(r"""^@register\(['"](\w+)['"]\)""", f.read(), re.M))
    assert len(registered) > 20 and registered | {'Python'} == set(types)


def test_timer_semantics():
    timer = caffe.Timer()
    assert timer.ms == 0.0                        # never started
    timer.start()
    time.sleep(0.02)
    elapsed = timer.ms                            # reading stops a running timer
    assert elapsed >= 20.0
    time.sleep(0.01)
    assert timer.ms == elapsed
    timer.stop()                                  # stopping a stopped timer changes nothing
    assert timer.ms == elapsed


def test_version_and_logging(capfd):
    assert caffe.__version__.count('.') == 2
    caffe.init_log(0, True)
    caffe.log('hello from pycaffe')
    err = capfd.readouterr().err
    assert err.startswith('I') and err.rstrip().endswith('] hello from pycaffe')
    caffe.init_log(2)                             # ERROR and above only
    caffe.log('hidden')
    assert 'hidden' not in capfd.readouterr().err
    with pytest.raises(ValueError):
        caffe.init_log(7)
