"""Slice: slice_point, Caffe's even split without it, the legacy slice_dim, one top sharing the
bottom, the gradient (exhaustive), and errors."""
import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.testing import build_layer, check_gradient_exhaustive


def slice_text(params, tops=2):
    return ('name: "s" type: "Slice" bottom: "x" %s slice_param { %s }'
            % (' '.join('top: "t%d"' % i for i in range(tops)), params))


@pytest.mark.parametrize('params,tops,axis,bounds', [
    ('slice_point: 1 slice_point: 4', 3, 1, [0, 1, 4, 6]),
    ('', 3, 1, [0, 2, 4, 6]),                       # no slice_point: an even split
    ('axis: -1 slice_point: 2', 2, 3, [0, 2, 5]),
    ('slice_dim: 0', 2, 0, [0, 2, 4]),
    ('axis: 2 slice_point: 3', 2, 2, [0, 3, 3]),    # an empty last piece, as Caffe allows
])
def test_forward_backward(params, tops, axis, bounds):
    r = np.random.RandomState(0)
    x = r.randn(4, 6, 3, 5).astype(np.float32)
    layer, bottom, top = build_layer(slice_text(params, tops), [x])
    layer.forward(bottom, top)
    for t, lo, hi in zip(top, bounds[:-1], bounds[1:]):
        np.testing.assert_array_equal(t.data, np.take(x, range(lo, hi), axis=axis))
        t.diff[...] = r.randn(*t.shape)
    bottom[0].diff[...] = 9
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff,
                                  np.concatenate([t.diff for t in top], axis=axis))


def test_one_top_shares_the_bottom():
    layer, bottom, top = build_layer(slice_text('', 1), [np.arange(6.0).reshape(2, 3)])
    layer.forward(bottom, top)
    bottom[0].data[0, 0] = -5
    assert top[0].data[0, 0] == -5


def test_gradient_exhaustive():
    layer, bottom, top = build_layer(slice_text('slice_point: 1', 2),
                                     [np.random.RandomState(1).randn(2, 3, 2)])
    check_gradient_exhaustive(layer, bottom, top)


@pytest.mark.parametrize('params,tops,message', [
    ('', 4, 'evenly'), ('slice_point: 2', 3, 'one fewer'), ('slice_point: 3 slice_point: 2', 3,
                                                            'must increase'),
    ('slice_point: 7', 2, 'within'), ('axis: 1 slice_dim: 1', 2, 'not both'),
    ('slice_dim: 4', 2, 'out of range'),
])
def test_errors(params, tops, message):
    with pytest.raises(CaffeError, match=message):
        build_layer(slice_text(params, tops), [np.zeros((2, 6, 3))])
