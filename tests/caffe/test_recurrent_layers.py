"""LSTM, RNN and LSTMUnit against float64 references written here from Caffe's definitions (the
unrolled nets of lstm_layer.cpp / rnn_layer.cpp, the unit of lstm_unit_layer.cpp), and by finite
differences; the recurrent contract: state carried across passes, cont markers, exposed states,
static input, parameter order and shapes."""
import numpy as np
import pytest

import caffe
from caffe.testing import build_layer, check_gradient, run_forward


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def lstm_reference(x, cont, params, h0, c0, x_static=None):
    """Caffe's LSTM in float64: params in the layer's order (W_xc, b_c, [W_xc_static], W_hc)."""
    p = [a.astype(np.float64) for a in params]
    w_xc, b_c, w_hc = p[0], p[1], p[-1]
    T, N = cont.shape
    x = x.reshape(T, N, -1).astype(np.float64)
    h, c = h0.reshape(N, -1).astype(np.float64), c0.reshape(N, -1).astype(np.float64)
    H = h.shape[1]
    out = []
    for t in range(T):
        g = (cont[t][:, None] * h) @ w_hc.T + x[t] @ w_xc.T + b_c
        if x_static is not None:
            g = g + x_static.reshape(N, -1) @ p[2].T
        i, f, o, gg = (g[:, k * H:(k + 1) * H] for k in range(4))
        f = np.where(cont[t][:, None] == 0, 0, cont[t][:, None] * sigmoid(f))
        c = f * c + sigmoid(i) * np.tanh(gg)
        h = sigmoid(o) * np.tanh(c)
        out.append(h)
    return np.stack(out), h, c


def rnn_reference(x, cont, params, h0, x_static=None):
    """Caffe's RNN in float64: params W_xh, b_h, [W_xh_static], W_hh, W_ho, b_o."""
    p = [a.astype(np.float64) for a in params]
    w_xh, b_h = p[0], p[1]
    w_hh, w_ho, b_o = p[-3:]
    T, N = cont.shape
    x = x.reshape(T, N, -1).astype(np.float64)
    h = h0.reshape(N, -1).astype(np.float64)
    out = []
    for t in range(T):
        a = (cont[t][:, None] * h) @ w_hh.T + x[t] @ w_xh.T + b_h
        if x_static is not None:
            a = a + x_static.reshape(N, -1) @ p[2].T
        h = np.tanh(a)
        out.append(np.tanh(h @ w_ho.T + b_o))
    return np.stack(out), h


def recurrent(kind, num_output, bottoms, tops=('y',), expose=False, extra=''):
    return ('name: "r" type: "%s" %s %s recurrent_param { num_output: %d expose_hidden: %s '
            'weight_filler { type: "uniform" min: -0.5 max: 0.5 } '
            'bias_filler { type: "uniform" min: -0.5 max: 0.5 } %s }'
            % (kind, ' '.join('bottom: "%s"' % b for b in bottoms),
               ' '.join('top: "%s"' % t for t in tops), num_output,
               'true' if expose else 'false', extra))


def inputs(rs, T=4, N=3, dims=(2, 3), first_cont=0):
    x = rs.randn(T, N, *dims).astype(np.float32)
    cont = np.ones((T, N), np.float32)
    cont[0] = first_cont
    cont[2, 1] = 0          # one stream restarts mid-batch
    return x, cont


def params_of(layer):
    return [b.data.copy() for b in layer.blobs]


# LSTM ---------------------------------------------------------------------------------------

def test_lstm_parameters_have_caffes_order_and_shapes():
    rs = np.random.RandomState(0)
    x, cont = inputs(rs)
    static = rs.randn(3, 5).astype(np.float32)
    layer, _, _ = build_layer(recurrent('LSTM', 4, ['x', 'c', 's']), [x, cont, static])
    assert [b.shape for b in layer.blobs] == [(16, 6), (16,), (16, 5), (16, 4)]
    layer, _, top = build_layer(recurrent('RNN', 4, ['x', 'c']), [x, cont])
    assert [b.shape for b in layer.blobs] == [(4, 6), (4,), (4, 4), (4, 4), (4,)]
    assert top[0].shape == (4, 3, 4)


@pytest.mark.parametrize('static', [False, True])
def test_lstm_forward_matches_the_float64_unrolled_net(static):
    rs = np.random.RandomState(1)
    x, cont = inputs(rs)
    bottoms = [x, cont]
    x_static = None
    if static:
        x_static = rs.randn(3, 2, 2).astype(np.float32)
        bottoms.append(x_static)
    layer, bottom, top = build_layer(
        recurrent('LSTM', 5, ['x', 'c', 's'][:len(bottoms)]), bottoms)
    run_forward(layer, bottom, top)
    zeros = np.zeros((3, 5))
    ref, _, _ = lstm_reference(x, cont, params_of(layer), zeros, zeros, x_static)
    np.testing.assert_allclose(top[0].data, ref, rtol=1e-5, atol=1e-6)


def test_lstm_carries_its_state_across_passes_until_cont_says_restart():
    rs = np.random.RandomState(2)
    x, cont = inputs(rs, first_cont=0)
    layer, bottom, top = build_layer(recurrent('LSTM', 3, ['x', 'c']), [x, cont])
    params = params_of(layer)
    run_forward(layer, bottom, top)
    zeros = np.zeros((3, 3))
    _, h_T, c_T = lstm_reference(x, cont, params, zeros, zeros)
    # the next batch continues every stream: it starts from the last final state
    x2 = rs.randn(*x.shape).astype(np.float32)
    bottom[0].data[...] = x2
    bottom[1].data[...] = 1
    run_forward(layer, bottom, top)
    ref, _, _ = lstm_reference(x2, np.ones((4, 3)), params, h_T, c_T)
    np.testing.assert_allclose(top[0].data, ref, rtol=1e-5, atol=1e-6)
    fresh, _, _ = lstm_reference(x2, np.ones((4, 3)), params, zeros, zeros)
    assert not np.allclose(top[0].data, fresh, atol=1e-3)
    # cont 0 at the first step: the carried state no longer matters
    bottom[1].data[0] = 0
    run_forward(layer, bottom, top)
    ref, _, _ = lstm_reference(x2, bottom[1].data, params, zeros, zeros)
    np.testing.assert_allclose(top[0].data, ref, rtol=1e-5, atol=1e-6)


def test_lstm_state_resets_when_the_number_of_streams_changes():
    rs = np.random.RandomState(3)
    x, cont = inputs(rs, first_cont=1)
    layer, bottom, top = build_layer(recurrent('LSTM', 2, ['x', 'c']), [x, cont])
    run_forward(layer, bottom, top)
    bottom[0].reshape(4, 2, 2, 3)
    bottom[0].data[...] = x[:, :2]
    bottom[1].reshape(4, 2)
    bottom[1].data[...] = 1
    run_forward(layer, bottom, top)
    zeros = np.zeros((2, 2))
    ref, _, _ = lstm_reference(x[:, :2], np.ones((4, 2)), params_of(layer), zeros, zeros)
    np.testing.assert_allclose(top[0].data, ref, rtol=1e-5, atol=1e-6)


def test_lstm_exposed_hidden_states():
    rs = np.random.RandomState(4)
    x, cont = inputs(rs, first_cont=1)
    h0, c0 = rs.randn(1, 3, 4).astype(np.float32), rs.randn(1, 3, 4).astype(np.float32)
    layer, bottom, top = build_layer(
        recurrent('LSTM', 4, ['x', 'c', 'h0', 'c0'], ('y', 'hT', 'cT'), expose=True),
        [x, cont, h0, c0])
    run_forward(layer, bottom, top)
    ref, h_T, c_T = lstm_reference(x, cont, params_of(layer), h0, c0)
    np.testing.assert_allclose(top[0].data, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(top[1].data[0], h_T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(top[2].data[0], c_T, rtol=1e-5, atol=1e-6)
    # passes do not carry over with exposed states
    run_forward(layer, bottom, top)
    np.testing.assert_allclose(top[0].data, ref, rtol=1e-5, atol=1e-6)


def test_lstm_exposed_state_diffs_do_not_flow_as_in_caffe():
    rs = np.random.RandomState(5)
    x, cont = inputs(rs, first_cont=1)
    h0, c0 = rs.randn(1, 3, 2).astype(np.float32), rs.randn(1, 3, 2).astype(np.float32)
    layer, bottom, top = build_layer(
        recurrent('LSTM', 2, ['x', 'c', 'h0', 'c0'], ('y', 'hT', 'cT'), expose=True),
        [x, cont, h0, c0])
    run_forward(layer, bottom, top)
    top[0].diff[...] = rs.randn(*top[0].shape)
    grads = []
    for final_diff in (0.0, 5.0):
        top[1].diff[...] = final_diff
        top[2].diff[...] = final_diff
        for b in bottom:
            b.diff[...] = 0
        for p in layer.blobs:
            p.diff[...] = 0
        layer.backward(top, [True] * 4, bottom)
        grads.append([bottom[0].diff.copy()] + [p.diff.copy() for p in layer.blobs])
        assert not bottom[2].diff.any() and not bottom[3].diff.any()
    for a, b in zip(*grads):
        assert np.array_equal(a, b)


@pytest.mark.parametrize('static', [False, True])
def test_lstm_gradient(static):
    rs = np.random.RandomState(6)
    x, cont = inputs(rs, T=3, N=2, dims=(3,))
    bottoms = [x, cont] + ([rs.randn(2, 2).astype(np.float32)] if static else [])
    layer, bottom, top = build_layer(
        recurrent('LSTM', 3, ['x', 'c', 's'][:len(bottoms)]), bottoms)
    check_gradient(layer, bottom, top, check_bottom=[0, 2] if static else [0])


def test_lstm_gradient_from_exposed_nonzero_initial_state():
    rs = np.random.RandomState(7)
    x, cont = inputs(rs, T=3, N=2, dims=(2,), first_cont=1)
    h0, c0 = rs.randn(1, 2, 3).astype(np.float32), rs.randn(1, 2, 3).astype(np.float32)
    layer, bottom, top = build_layer(
        recurrent('LSTM', 3, ['x', 'c', 'h0', 'c0'], ('y', 'hT', 'cT'), expose=True),
        [x, cont, h0, c0])
    # the objective reads only y: Caffe propagates no gradient from h_T and c_T
    weights = [rs.uniform(-1, 1, size=t.shape).astype(np.float32) for t in top]
    weights[1][...] = 0
    weights[2][...] = 0
    check_gradient(layer, bottom, top, check_bottom=[0], top_weights=weights)


def test_recurrent_layer_errors_name_the_layer():
    rs = np.random.RandomState(8)
    x, cont = inputs(rs)
    with pytest.raises(caffe.CaffeError, match="LSTM layer 'r'.*num_output"):
        build_layer('name: "r" type: "LSTM" bottom: "x" bottom: "c" top: "y"', [x, cont])
    with pytest.raises(caffe.CaffeError, match="cont.*\\(4, 3\\)"):
        build_layer(recurrent('LSTM', 2, ['x', 'c']), [x, cont[:, :2]])
    layer, bottom, top = build_layer(recurrent('RNN', 2, ['x', 'c']), [x, cont])
    bottom[0].reshape(5, 3, 2, 3)
    bottom[1].reshape(5, 3)
    with pytest.raises(caffe.CaffeError, match='timesteps changed from 4 to 5'):
        layer.reshape(bottom, top)
    with pytest.raises(caffe.CaffeError, match='h_0.*\\(1, 3, 2\\)'):
        build_layer(recurrent('RNN', 2, ['x', 'c', 'h'], ('y', 'hT'), expose=True),
                    [x, cont, np.zeros((1, 3, 5), np.float32)])


# RNN ----------------------------------------------------------------------------------------

@pytest.mark.parametrize('static', [False, True])
def test_rnn_forward_matches_the_float64_unrolled_net(static):
    rs = np.random.RandomState(9)
    x, cont = inputs(rs)
    bottoms = [x, cont]
    x_static = rs.randn(3, 4).astype(np.float32) if static else None
    if static:
        bottoms.append(x_static)
    layer, bottom, top = build_layer(recurrent('RNN', 5, ['x', 'c', 's'][:len(bottoms)]),
                                     bottoms)
    run_forward(layer, bottom, top)
    ref, _ = rnn_reference(x, cont, params_of(layer), np.zeros((3, 5)), x_static)
    np.testing.assert_allclose(top[0].data, ref, rtol=1e-5, atol=1e-6)


def test_rnn_carries_state_and_exposes_it():
    rs = np.random.RandomState(10)
    x, cont = inputs(rs, first_cont=1)
    layer, bottom, top = build_layer(recurrent('RNN', 3, ['x', 'c']), [x, cont])
    params = params_of(layer)
    run_forward(layer, bottom, top)
    _, h_T = rnn_reference(x, cont, params, np.zeros((3, 3)))
    run_forward(layer, bottom, top)
    ref, _ = rnn_reference(x, cont, params, h_T)
    np.testing.assert_allclose(top[0].data, ref, rtol=1e-5, atol=1e-6)
    h0 = rs.randn(1, 3, 3).astype(np.float32)
    layer, bottom, top = build_layer(recurrent('RNN', 3, ['x', 'c', 'h'], ('y', 'hT'),
                                               expose=True), [x, cont, h0])
    run_forward(layer, bottom, top)
    ref, h_T = rnn_reference(x, cont, params_of(layer), h0)
    np.testing.assert_allclose(top[0].data, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(top[1].data[0], h_T, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('static', [False, True])
def test_rnn_gradient(static):
    rs = np.random.RandomState(11)
    x, cont = inputs(rs, T=3, N=2, dims=(3,))
    bottoms = [x, cont] + ([rs.randn(2, 3).astype(np.float32)] if static else [])
    layer, bottom, top = build_layer(recurrent('RNN', 3, ['x', 'c', 's'][:len(bottoms)]),
                                     bottoms)
    check_gradient(layer, bottom, top, check_bottom=[0, 2] if static else [0])


# LSTMUnit -----------------------------------------------------------------------------------

UNIT = 'name: "u" type: "LSTMUnit" bottom: "c0" bottom: "x" bottom: "cont" top: "c" top: "h"'


def unit_inputs(rs, N=4, D=3):
    cont = np.array([[1, 0, 1, 0.5][:N]], np.float32)
    return [rs.randn(1, N, D).astype(np.float32), rs.randn(1, N, 4 * D).astype(np.float32),
            cont]


def test_lstm_unit_forward_matches_float64():
    rs = np.random.RandomState(12)
    c_prev, x, cont = unit_inputs(rs)
    layer, bottom, top = build_layer(UNIT, [c_prev, x, cont])
    run_forward(layer, bottom, top)
    D = 3
    xs = x[0].astype(np.float64)
    i, f, o, g = (xs[:, k * D:(k + 1) * D] for k in range(4))
    f = np.where(cont[0][:, None] == 0, 0, cont[0][:, None] * sigmoid(f))
    c = f * c_prev[0] + sigmoid(i) * np.tanh(g)
    h = sigmoid(o) * np.tanh(c)
    np.testing.assert_allclose(top[0].data[0], c, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(top[1].data[0], h, rtol=1e-6, atol=1e-7)
    # cont 0: the old cell is dropped exactly
    assert np.array_equal(top[0].data[0, 1], (sigmoid(i[1]) * np.tanh(g[1])).astype(np.float32)) \
        or np.allclose(top[0].data[0, 1], sigmoid(i[1]) * np.tanh(g[1]), rtol=1e-7)


def test_lstm_unit_gradient():
    rs = np.random.RandomState(13)
    inputs_ = unit_inputs(rs)
    inputs_[2][0, 3] = 1           # markers are 0 or 1 (see the test below for other values)
    layer, bottom, top = build_layer(UNIT, inputs_)
    check_gradient(layer, bottom, top, check_bottom=[0, 1])


def test_lstm_unit_forget_gradient_is_caffes_for_fractional_markers():
    # Caffe differentiates f = cont * sigmoid(x_f) as f * (1 - f), which is the derivative only
    # for cont in {0, 1}; models depend on Caffe's numbers, so the unit keeps its formula.
    rs = np.random.RandomState(15)
    c_prev, x, cont = unit_inputs(rs)
    layer, bottom, top = build_layer(UNIT, [c_prev, x, cont])
    run_forward(layer, bottom, top)
    top[0].diff[...] = 0
    top[1].diff[...] = 1
    layer.backward(top, [True, True, False], bottom)
    D = 3
    xs = x[0].astype(np.float64)
    s = 3   # the stream with cont 0.5
    f = 0.5 * sigmoid(xs[s, D:2 * D])
    o = sigmoid(xs[s, 2 * D:3 * D])
    c = top[0].data[0, s].astype(np.float64)
    c_term = o * (1 - np.tanh(c) ** 2)
    np.testing.assert_allclose(bottom[1].diff[0, s, D:2 * D], c_term * c_prev[0, s] * f * (1 - f),
                               rtol=1e-5)


# In a net -----------------------------------------------------------------------------------

def test_lstm_in_a_net_trains_and_saves(tmp_path):
    net_file = tmp_path / 'lstm.prototxt'
    net_file.write_text('''
layer { name: "in" type: "Input" top: "x" top: "cont" top: "target"
        input_param { shape { dim: 5 dim: 2 dim: 3 } shape { dim: 5 dim: 2 }
                      shape { dim: 5 dim: 2 dim: 4 } } }
layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h"
        recurrent_param { num_output: 4 weight_filler { type: "uniform" min: -0.3 max: 0.3 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "h" bottom: "target" top: "loss" }
''' if 'EuclideanLoss' in caffe.layer_type_list() else '''
layer { name: "in" type: "Input" top: "x" top: "cont" top: "target"
        input_param { shape { dim: 5 dim: 2 dim: 3 } shape { dim: 5 dim: 2 }
                      shape { dim: 5 dim: 2 dim: 4 } } }
layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h"
        recurrent_param { num_output: 4 weight_filler { type: "uniform" min: -0.3 max: 0.3 } } }
layer { name: "loss" type: "SmoothL1Loss" bottom: "h" bottom: "target" top: "loss"
        loss_weight: 1 }
''')
    net = caffe.Net(str(net_file), caffe.TRAIN)
    rs = np.random.RandomState(14)
    net.blobs['x'].data[...] = rs.randn(5, 2, 3)
    net.blobs['cont'].data[...] = 1
    net.blobs['cont'].data[0] = 0
    net.blobs['target'].data[...] = rs.uniform(-0.5, 0.5, size=(5, 2, 4))
    losses = []
    for _ in range(150):
        net.clear_param_diffs()
        losses.append(net.forward_backward())
        for blob in net.params['lstm']:
            blob.data[...] -= 1.0 * blob.diff
    assert losses[-1] < 0.5 * losses[0]
    assert [b.shape for b in net.params['lstm']] == [(16, 3), (16,), (16, 4)]
    net.save(str(tmp_path / 'lstm.caffemodel'))
    again = caffe.Net(str(net_file), str(tmp_path / 'lstm.caffemodel'), caffe.TEST)
    for a, b in zip(net.params['lstm'], again.params['lstm']):
        assert np.array_equal(a.data, b.data)
