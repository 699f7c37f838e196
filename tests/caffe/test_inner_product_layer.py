import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.testing import build_layer, check_gradient

IP = '''name: "fc" type: "InnerProduct" bottom: "x" top: "y"
inner_product_param { num_output: %d %s
  weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "uniform" min: -1 max: 1 } }'''


def brute_ip(x2d, w, b):
    m, k = x2d.shape
    n = w.shape[0]
    out = np.zeros((m, n))
    for i in range(m):
        for j in range(n):
            out[i, j] = sum(float(x2d[i, t]) * float(w[j, t]) for t in range(k))
            if b is not None:
                out[i, j] += float(b[j])
    return out


def test_forward_flattens_from_axis_1():
    x = np.random.RandomState(0).randn(2, 3, 2, 2).astype(np.float32)
    layer, bottom, top = build_layer(IP % (4, ''), [x])
    w, b = layer.blobs[0].data, layer.blobs[1].data
    assert w.shape == (4, 12) and b.shape == (4,)
    assert np.abs(b).max() > 0  # the bias filler ran
    layer.forward(bottom, top)
    assert top[0].shape == (2, 4)
    np.testing.assert_allclose(top[0].data, brute_ip(x.reshape(2, 12), w, b), rtol=1e-5,
                               atol=1e-5)


def test_forward_axis_2_no_bias():
    x = np.random.RandomState(1).randn(2, 3, 4).astype(np.float32)
    layer, bottom, top = build_layer(IP % (5, 'axis: 2 bias_term: false'), [x])
    assert len(layer.blobs) == 1
    layer.forward(bottom, top)
    assert top[0].shape == (2, 3, 5)
    expect = brute_ip(x.reshape(6, 4), layer.blobs[0].data, None).reshape(2, 3, 5)
    np.testing.assert_allclose(top[0].data, expect, rtol=1e-5, atol=1e-4)


def test_transpose_stores_k_by_n():
    x = np.random.RandomState(2).randn(3, 4).astype(np.float32)
    layer, bottom, top = build_layer(IP % (2, 'transpose: true'), [x])
    w, b = layer.blobs[0].data, layer.blobs[1].data
    assert w.shape == (4, 2)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, brute_ip(x, w.T, b), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize('extra', ['', 'transpose: true', 'axis: 2'])
def test_gradient(extra):
    x = np.random.RandomState(3).randn(2, 3, 4).astype(np.float32)
    layer, bottom, top = build_layer(IP % (3, extra), [x])
    check_gradient(layer, bottom, top, max_checks=20)


def test_param_diffs_accumulate_and_respect_param_propagate_down():
    rs = np.random.RandomState(4)
    x = rs.randn(3, 5).astype(np.float32)
    layer, bottom, top = build_layer(IP % (2, ''), [x])
    layer.forward(bottom, top)
    dy = rs.randn(3, 2).astype(np.float32)
    top[0].diff[...] = dy
    layer.blobs[0].diff[...] = 1.0
    layer.blobs[1].diff[...] = 0.0
    layer.param_propagate_down = [True, False]
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, 1.0 + dy.T @ x, rtol=1e-5)
    assert (layer.blobs[1].diff == 0).all()
    np.testing.assert_allclose(bottom[0].diff, dy @ layer.blobs[0].data, rtol=1e-5, atol=1e-6)
    layer.param_propagate_down = [True, True]
    layer.backward(top, [False], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, 1.0 + 2 * (dy.T @ x), rtol=1e-5)
    np.testing.assert_allclose(layer.blobs[1].diff, dy.sum(0), rtol=1e-5)


@pytest.mark.parametrize('extra', ['', 'transpose: true'])
def test_weight_gradient_adds_to_the_diff(extra):
    # Large enough for caffe.gemm to cut the products into parts (dW: 700 x 600, inner 64).
    rs = np.random.RandomState(6)
    x = rs.randn(64, 600).astype(np.float32)
    layer, bottom, top = build_layer(IP % (700, extra), [x])
    layer.forward(bottom, top)
    dy = rs.randn(64, 700).astype(np.float32)
    top[0].diff[...] = dy
    layer.blobs[0].diff[...] = 0.5
    layer.backward(top, [True], bottom)
    grad = dy.T.astype(np.float64) @ x
    np.testing.assert_allclose(layer.blobs[0].diff, 0.5 + (grad.T if extra else grad),
                               rtol=1e-5, atol=1e-4)
    w = layer.blobs[0].data.astype(np.float64)
    np.testing.assert_allclose(bottom[0].diff, dy @ (w.T if extra else w), rtol=1e-5, atol=1e-4)


def test_input_size_change_is_an_error():
    layer, bottom, top = build_layer(IP % (2, ''), [np.zeros((2, 6), np.float32)])
    bottom[0].reshape(2, 7)
    with pytest.raises(CaffeError, match='fc'):
        layer.reshape(bottom, top)


def test_missing_num_output_is_an_error():
    with pytest.raises(CaffeError, match='num_output'):
        build_layer('name: "fc" type: "InnerProduct" bottom: "x" top: "y"',
                    [np.zeros((2, 3), np.float32)])


def test_existing_weights_are_kept_but_checked():
    from caffe.blob import Blob
    from caffe.testing import layer_param
    from caffe.layer import layer_class
    param = layer_param(IP % (2, ''))
    layer = layer_class(param)(param)
    layer.blobs.add_blob(2, 3)
    layer.blobs.add_blob(2)
    layer.blobs[0].data[...] = 7
    bottom, top = [Blob((4, 3))], [Blob()]
    layer.setup(bottom, top)
    assert (layer.blobs[0].data == 7).all()  # not refilled
    layer = layer_class(param)(param)
    layer.blobs.add_blob(3, 2)
    layer.blobs.add_blob(2)
    with pytest.raises(CaffeError, match='parameter shapes'):
        layer.setup(bottom, top)
