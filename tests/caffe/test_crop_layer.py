"""Crop: Caffe's offsets (none, one for every cropped axis, one per axis) and start axis,
against explicit index loops; the gradient (exhaustive, bottom 0 only) and errors."""
import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.testing import build_layer, check_gradient_exhaustive


def crop_text(params=''):
    return ('name: "crop" type: "Crop" bottom: "x" bottom: "ref" top: "y" crop_param { %s }'
            % params)


def brute_crop(x, shape, offsets):
    y = np.empty(shape, np.float32)
    for pos in np.ndindex(*shape):
        y[pos] = x[tuple(p + o for p, o in zip(pos, offsets))]
    return y


@pytest.mark.parametrize('params,ref_shape,top_shape,offsets', [
    ('', (9, 9, 2, 3), (2, 3, 2, 3), (0, 0, 0, 0)),                 # axis 2, offset 0
    ('offset: 1', (9, 9, 3, 2), (2, 3, 3, 2), (0, 0, 1, 1)),        # one offset for all
    ('axis: 1 offset: 1 offset: 1 offset: 0', (1, 2, 3, 5), (2, 2, 3, 5), (0, 1, 1, 0)),
    ('axis: 0 offset: 1', (1, 1, 2, 2), (1, 1, 2, 2), (1, 1, 1, 1)),
    ('axis: -1 offset: 3', (7, 7, 7, 2), (2, 3, 4, 2), (0, 0, 0, 3)),
])
def test_forward_and_backward(params, ref_shape, top_shape, offsets):
    r = np.random.RandomState(0)
    x = r.randn(2, 3, 4, 5).astype(np.float32)
    layer, bottom, top = build_layer(crop_text(params), [x, np.zeros(ref_shape)])
    layer.forward(bottom, top)
    assert top[0].shape == top_shape
    np.testing.assert_array_equal(top[0].data, brute_crop(x, top_shape, offsets))
    dy = r.randn(*top_shape).astype(np.float32)
    top[0].diff[...] = dy
    bottom[0].diff[...] = 9
    bottom[1].diff[...] = 5
    layer.backward(top, [True, False], bottom)
    expected = np.zeros(x.shape, np.float32)
    for pos in np.ndindex(*top_shape):
        expected[tuple(p + o for p, o in zip(pos, offsets))] = dy[pos]
    np.testing.assert_array_equal(bottom[0].diff, expected)
    assert (bottom[1].diff == 5).all()    # the reference gets nothing


def test_gradient_exhaustive():
    r = np.random.RandomState(1)
    layer, bottom, top = build_layer(crop_text('offset: 1'),
                                     [r.randn(1, 2, 3, 3).astype(np.float32),
                                      np.zeros((1, 1, 2, 1))])
    check_gradient_exhaustive(layer, bottom, top, check_bottom=[0])


@pytest.mark.parametrize('params,x_shape,ref_shape,message', [
    ('offset: 1 offset: 1', (2, 3, 4, 5), (2, 3, 3, 3), 'offsets'),      # 2 for 2 axes: fine
    ('offset: 2', (2, 3, 4, 5), (2, 3, 3, 3), 'out of bounds'),
    ('axis: 1 offset: 1 offset: 1', (2, 3, 4, 5), (2, 2, 3, 3), 'one per cropped axis'),
    ('axis: 4', (2, 3, 4, 5), (2, 3, 4, 5), 'out of range'),
    ('', (2, 3, 4, 5), (2, 3, 4), 'as many axes'),
])
def test_errors(params, x_shape, ref_shape, message):
    text = crop_text(params)
    if message == 'offsets':
        build_layer(text, [np.zeros(x_shape), np.zeros(ref_shape)])
        return
    with pytest.raises(CaffeError, match=message):
        build_layer(text, [np.zeros(x_shape), np.zeros(ref_shape)])
