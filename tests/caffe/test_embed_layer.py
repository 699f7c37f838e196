"""Embed: rows of the (input_dim, num_output) table plus the bias, the weight gradient added per
index in order (repeats accumulate), Caffe's exhaustive gradient check on the parameters, and
input errors."""
import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.testing import build_layer, check_gradient_exhaustive


def embed_text(extra=''):
    return ('name: "e" type: "Embed" bottom: "i" top: "y" embed_param { num_output: 3 '
            'input_dim: 5 weight_filler { type: "uniform" min: -1 max: 1 } '
            'bias_filler { type: "uniform" min: -1 max: 1 } %s }' % extra)


def test_forward_backward_against_loops():
    r = np.random.RandomState(0)
    index = np.array([[4, 0, 4], [2, 4, 1]], np.float32)
    layer, bottom, top = build_layer(embed_text(), [index])
    w, b = layer.blobs[0].data, layer.blobs[1].data
    assert layer.blobs[0].shape == (5, 3)      # transposed from InnerProduct's layout
    layer.forward(bottom, top)
    assert top[0].shape == (2, 3, 3)
    for pos in np.ndindex(2, 3):
        np.testing.assert_allclose(top[0].data[pos], w[int(index[pos])] + b, rtol=1e-6)
    dy = r.randn(2, 3, 3).astype(np.float32)
    top[0].diff[...] = dy
    for p in layer.blobs:
        p.diff[...] = 0.5
    layer.backward(top, [False], bottom)
    expected = np.full((5, 3), 0.5)
    for pos in np.ndindex(2, 3):
        expected[int(index[pos])] += dy[pos]
    np.testing.assert_allclose(layer.blobs[0].diff, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(layer.blobs[1].diff, 0.5 + dy.reshape(-1, 3).sum(0), rtol=1e-5)


def test_no_bias():
    layer, bottom, top = build_layer(embed_text('bias_term: false'),
                                     [np.array([3, 1], np.float32)])
    assert len(layer.blobs) == 1
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, layer.blobs[0].data[[3, 1]])


def test_gradient_exhaustive_on_parameters():
    # Caffe checks the parameters only (-2: no bottom), the input being indices.
    layer, bottom, top = build_layer(embed_text(), [np.array([[1, 1], [0, 4]], np.float32)])
    check_gradient_exhaustive(layer, bottom, top, check_bottom=[])


@pytest.mark.parametrize('index,message', [([5], 'not an integer in'), ([-1], 'in \\[0, 5\\)'),
                                           ([1.5], 'not an integer')])
def test_bad_input(index, message):
    layer, bottom, top = build_layer(embed_text(), [np.array(index, np.float32)])
    with pytest.raises(CaffeError, match=message):
        layer.forward(bottom, top)


@pytest.mark.parametrize('params,message', [('num_output: 0 input_dim: 2', 'num_output'),
                                            ('num_output: 2', 'input_dim')])
def test_bad_parameters(params, message):
    with pytest.raises(CaffeError, match=message):
        build_layer('name: "e" type: "Embed" bottom: "i" top: "y" embed_param { %s }' % params,
                    [np.zeros(2)])
