"""BatchNorm layer: forward against a float64 loop over channels (global statistics with
blobs[2] = 0, 1 and 2.5; batch statistics and Caffe's moving-average update of all three blobs),
the phase defaults of use_global_stats, in-place use, finite-difference gradients in both modes,
and Caffe's rule that the statistics are never learned (lr_mult 0 specs added, others refused)."""
import numpy as np
import pytest

import caffe
from caffe.common import CaffeError
from caffe.proto import caffe_pb2
from caffe.testing import build_layer, check_gradient
from google.protobuf import text_format

BN = 'name: "bn" type: "BatchNorm" bottom: "x" top: "%s" %s'


def bn_text(param='', top='y'):
    return BN % (top, param)


def channels_first(x):
    """(C, everything else) view of an (N, C, ...) array, for per-channel loops."""
    return np.moveaxis(np.asarray(x, np.float64), 1, 0).reshape(x.shape[1], -1)


def brute_global(x, mean_sum, var_sum, weight, eps):
    factor = 0.0 if weight == 0 else 1.0 / weight
    y = np.empty(x.shape)
    for c in range(x.shape[1]):
        mean = mean_sum[c] * factor
        var = var_sum[c] * factor + eps
        y[:, c] = (x[:, c] - mean) / np.sqrt(var)
    return y


def brute_batch(x, eps):
    """y, the batch means and the biased batch variances, channel by channel."""
    y = np.empty(x.shape)
    values = channels_first(x)
    means, variances = [], []
    for c in range(x.shape[1]):
        v = values[c]
        mean = sum(v) / len(v)
        var = sum((a - mean) ** 2 for a in v) / len(v)
        y[:, c] = (x[:, c] - mean) / np.sqrt(var + eps)
        means.append(mean)
        variances.append(var)
    return y, np.array(means), np.array(variances)


def random_input(shape, seed=0):
    rs = np.random.RandomState(seed)
    # Channels with different offsets and spreads, so a wrong axis shows.
    scale = rs.uniform(0.5, 3, size=shape[1])
    offset = rs.uniform(-5, 5, size=shape[1])
    shape_c = (1, shape[1]) + (1,) * (len(shape) - 2)
    return (rs.randn(*shape) * scale.reshape(shape_c) + offset.reshape(shape_c)).astype(np.float32)


def set_stats(layer, mean_sum, var_sum, weight):
    layer.blobs[0].data[...] = mean_sum
    layer.blobs[1].data[...] = var_sum
    layer.blobs[2].data[...] = weight


@pytest.mark.parametrize('weight', [1.0, 2.5, 0.0])
def test_global_stats_forward(weight):
    x = random_input((2, 3, 4, 5))
    layer, bottom, top = build_layer(bn_text('batch_norm_param { eps: 0.001 }'), [x],
                                     phase=caffe.TEST)
    assert layer.use_global_stats
    rs = np.random.RandomState(1)
    mean_sum = rs.uniform(-3, 3, 3).astype(np.float32)
    var_sum = rs.uniform(0.5, 4, 3).astype(np.float32)
    set_stats(layer, mean_sum, var_sum, weight)
    layer.forward(bottom, top)
    expected = brute_global(x, mean_sum, var_sum, weight, 0.001)
    np.testing.assert_allclose(top[0].data, expected, rtol=2e-6, atol=2e-6)
    if weight == 0:
        # No statistics yet: Caffe scales them by 0, so y = x / sqrt(eps).
        np.testing.assert_allclose(top[0].data, x / np.sqrt(0.001), rtol=2e-6)
    # Global statistics are read, never updated.
    np.testing.assert_array_equal(layer.blobs[2].data, [weight])
    np.testing.assert_array_equal(layer.blobs[0].data, mean_sum)


def test_batch_stats_forward_and_moving_averages():
    x = random_input((3, 4, 2, 3), seed=2)
    layer, bottom, top = build_layer(
        bn_text('batch_norm_param { moving_average_fraction: 0.9 }'), [x])
    assert not layer.use_global_stats
    # The statistics start at zero, as Caffe initializes them.
    for blob in layer.blobs:
        np.testing.assert_array_equal(blob.data, 0)
    mean_sum = np.array([0.5, -1, 2, 0], np.float32)
    var_sum = np.array([1, 2, 0.5, 3], np.float32)
    set_stats(layer, mean_sum, var_sum, 1.5)
    layer.forward(bottom, top)
    y, mean, var = brute_batch(x, 1e-5)
    np.testing.assert_allclose(top[0].data, y, rtol=1e-5, atol=1e-5)
    m = 3 * 2 * 3
    np.testing.assert_allclose(layer.blobs[2].data, [1.5 * 0.9 + 1], rtol=1e-7)
    np.testing.assert_allclose(layer.blobs[0].data, mean_sum * 0.9 + mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(layer.blobs[1].data, var_sum * 0.9 + var * m / (m - 1),
                               rtol=1e-6, atol=1e-6)
    # A second batch: the sums keep decaying and adding.
    x2 = random_input((3, 4, 2, 3), seed=3)
    bottom[0].data[...] = x2
    layer.forward(bottom, top)
    _, mean2, var2 = brute_batch(x2, 1e-5)
    np.testing.assert_allclose(layer.blobs[2].data, [(1.5 * 0.9 + 1) * 0.9 + 1], rtol=1e-6)
    np.testing.assert_allclose(layer.blobs[0].data, (mean_sum * 0.9 + mean) * 0.9 + mean2,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        layer.blobs[1].data, (var_sum * 0.9 + var * m / (m - 1)) * 0.9 + var2 * m / (m - 1),
        rtol=1e-5, atol=1e-6)


def test_moving_averages_are_the_statistics_a_test_net_uses():
    # After training batches, blobs[0]/blobs[2] is the weighted mean of the batch means: with
    # fraction 0 the last batch's mean and unbiased variance exactly.
    x = random_input((2, 3, 3, 3), seed=4)
    train, bottom, top = build_layer(
        bn_text('batch_norm_param { moving_average_fraction: 0 }'), [x])
    train.forward(bottom, top)
    _, mean, var = brute_batch(x, 0)
    m = 2 * 9
    np.testing.assert_allclose(train.blobs[0].data / train.blobs[2].data, mean, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(train.blobs[1].data / train.blobs[2].data, var * m / (m - 1),
                               rtol=1e-5)
    test, tb, tt = build_layer(bn_text(), [x], phase=caffe.TEST)
    for src, dst in zip(train.blobs, test.blobs):
        dst.data[...] = src.data
    test.forward(tb, tt)
    shape = (1, 3, 1, 1)
    expected = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) * m / (m - 1) + 1e-5)
    np.testing.assert_allclose(tt[0].data, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('phase,param,global_stats', [
    (caffe.TRAIN, '', False),
    (caffe.TEST, '', True),
    (caffe.TRAIN, 'batch_norm_param { use_global_stats: true }', True),
    (caffe.TEST, 'batch_norm_param { use_global_stats: false }', False),
])
def test_use_global_stats_default_follows_the_phase(phase, param, global_stats):
    x = random_input((2, 2, 3, 3))
    layer, bottom, top = build_layer(bn_text(param), [x], phase=phase)
    set_stats(layer, [1, -1], [4, 9], 1)
    layer.forward(bottom, top)
    if global_stats:
        expected = brute_global(x, [1, -1], [4, 9], 1, 1e-5)
    else:
        expected = brute_batch(x, 1e-5)[0]
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('phase', [caffe.TRAIN, caffe.TEST])
def test_in_place_matches_separate_top(phase):
    x = random_input((2, 3, 4, 4), seed=5)
    dy = np.random.RandomState(6).randn(*x.shape).astype(np.float32)
    results = []
    for in_place in (False, True):
        layer, bottom, top = build_layer(bn_text(top='x' if in_place else 'y'), [x],
                                         phase=phase)
        set_stats(layer, [0.5, 1, -2], [2, 3, 1], 2)
        if in_place:
            top = bottom
        layer.forward(bottom, top)
        y = top[0].data.copy()
        top[0].diff[...] = dy
        layer.backward(top, [True], bottom)
        results.append((y, bottom[0].diff.copy(), [b.data.copy() for b in layer.blobs]))
    (y0, dx0, blobs0), (y1, dx1, blobs1) = results
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(dx1, dx0)
    for a, b in zip(blobs0, blobs1):
        np.testing.assert_array_equal(a, b)


def test_in_place_backward_survives_a_later_in_place_layer():
    # In ResNets a Scale overwrites BatchNorm's top in place before backward runs; the
    # batch-statistics gradient must use the normalized values forward produced.
    x = random_input((2, 2, 3, 3), seed=7)
    layer, bottom, top = build_layer(bn_text(top='x'), [x])
    top = bottom
    layer.forward(bottom, top)
    y = top[0].data.copy()
    top[0].data[...] = 123.0
    dy = np.random.RandomState(8).randn(*x.shape).astype(np.float32)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    # Reference: the gradient formula on the saved y.
    _, _, var = brute_batch(x, 1e-5)
    expected = np.empty(x.shape)
    for c in range(2):
        g, yc = dy[:, c].astype(np.float64), y[:, c].astype(np.float64)
        expected[:, c] = (g - g.mean() - (g * yc).mean() * yc) / np.sqrt(var[c] + 1e-5)
    np.testing.assert_allclose(bottom[0].diff, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('shape', [(3, 2, 3, 4), (6, 3), (2, 3, 2, 2, 2)])
def test_gradient_batch_stats(shape):
    x = random_input(shape, seed=9)
    layer, bottom, top = build_layer(bn_text(), [x])
    check_gradient(layer, bottom, top, check_params=False, stepsize=1e-2, threshold=5e-3,
                   max_checks=30)


def test_gradient_global_stats():
    x = random_input((2, 3, 3, 2), seed=10)
    layer, bottom, top = build_layer(bn_text(), [x], phase=caffe.TEST)
    set_stats(layer, [3, -2, 1], [10, 4, 6], 2.5)
    # The statistics are constants: dx = dy / sqrt(var + eps).
    check_gradient(layer, bottom, top, check_params=False, max_checks=30)
    top[0].diff[...] = 1
    layer.backward(top, [True], bottom)
    std = np.sqrt(np.array([4, 1.6, 2.4]) + 1e-5)
    np.testing.assert_allclose(bottom[0].diff, np.broadcast_to(1 / std.reshape(1, 3, 1, 1),
                                                                x.shape), rtol=1e-6)


def test_backward_leaves_statistics_and_their_diffs_alone():
    x = random_input((2, 2, 2, 2))
    layer, bottom, top = build_layer(bn_text(), [x])
    layer.forward(bottom, top)
    before = [b.data.copy() for b in layer.blobs]
    top[0].diff[...] = 1
    layer.backward(top, [True], bottom)
    for blob, data in zip(layer.blobs, before):
        np.testing.assert_array_equal(blob.data, data)
        np.testing.assert_array_equal(blob.diff, 0)


# The Net: statistics are never learned ----------------------------------------------------------

NET = '''
name: "bn_net"
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 2 dim: 2 } } }
layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" %s }
layer { name: "sc" type: "Scale" bottom: "x" top: "x" scale_param { bias_term: true } }
'''


def net_param(bn_specs=''):
    return text_format.Parse(NET % bn_specs, caffe_pb2.NetParameter())


def test_net_adds_lr_mult_zero_specs_and_never_updates_statistics():
    net = caffe.Net(net_param('param { lr_mult: 0 decay_mult: 0 }'), caffe.TRAIN)
    # One spec was given; Caffe adds lr_mult 0 for the other two blobs.
    bn = net.layer_dict['bn']
    assert [s.lr_mult for s in bn.layer_param.param] == [0, 0, 0]
    assert [s.decay_mult for s in bn.layer_param.param] == [0, 1, 1]
    assert net.params_lr[:3] == [0, 0, 0]
    assert net.params_lr[3:] == [1, 1]        # the Scale layer's default specs
    assert bn.param_propagate_down == [False, False, False]


def test_net_refuses_learned_statistics():
    with pytest.raises(CaffeError, match='lr_mult'):
        caffe.Net(net_param('param { lr_mult: 0 } param { lr_mult: 1 }'), caffe.TRAIN)


def test_solver_changes_statistics_only_through_the_moving_average():
    # SGD steps with weight decay and momentum on a net with a training-mode BatchNorm: the
    # statistics are what the moving average makes of the batches, while the Scale learns.
    text = """
    name: "t"
    layer { name: "in" type: "DummyData" top: "x" top: "t" dummy_data_param {
      shape { dim: 4 dim: 2 dim: 3 dim: 3 } shape { dim: 4 dim: 2 dim: 3 dim: 3 }
      data_filler { type: "gaussian" std: 2 } data_filler { type: "gaussian" } } }
    layer { name: "bn" type: "BatchNorm" bottom: "x" top: "y"
            batch_norm_param { moving_average_fraction: 0.5 } }
    layer { name: "sc" type: "Scale" bottom: "y" top: "y" scale_param { bias_term: true } }
    layer { name: "loss" type: "SmoothL1Loss" bottom: "y" bottom: "t" top: "loss"
            loss_weight: 1 }
    """
    solver_param = caffe_pb2.SolverParameter(
        base_lr=0.1, lr_policy='fixed', momentum=0.9, weight_decay=0.5, display=0)
    solver_param.train_net_param.CopyFrom(text_format.Parse(text, caffe_pb2.NetParameter()))
    caffe.set_random_seed(3)
    solver = caffe.SGDSolver(solver_param)
    net = solver.net
    mean_sum, var_sum, weight = np.zeros(2), np.zeros(2), 0.0
    for _ in range(3):
        solver.step(1)
        _, mean, var = brute_batch(net.blobs['x'].data, 0)
        m = 4 * 9
        weight = weight * 0.5 + 1
        mean_sum = mean_sum * 0.5 + mean
        var_sum = var_sum * 0.5 + var * m / (m - 1)
    bn = net.params['bn']
    np.testing.assert_allclose(bn[2].data, [weight], rtol=1e-6)
    np.testing.assert_allclose(bn[0].data, mean_sum, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn[1].data, var_sum, rtol=1e-5)
    # The Scale learned (it starts at 1 and 0).
    assert not np.allclose(net.params['sc'][0].data, 1)
    assert not np.allclose(net.params['sc'][1].data, 0)


def test_bad_bottom_and_params():
    with pytest.raises(CaffeError, match='channel axis'):
        build_layer(bn_text(), [np.zeros(5, np.float32)])
    layer, bottom, top = build_layer(bn_text(), [np.zeros((2, 3, 2), np.float32)])
    bottom[0].reshape(2, 4, 2)
    with pytest.raises(CaffeError, match='3 channels'):
        layer.reshape(bottom, top)
    layer, bottom, top = build_layer(bn_text(), [np.zeros((0, 3, 2), np.float32)])
    with pytest.raises(CaffeError, match='empty'):
        layer.forward(bottom, top)
