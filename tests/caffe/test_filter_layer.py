"""Filter: the rows whose selector is nonzero, for several blobs; Caffe's first reshape at
full batch size; the gradient copied back with zeros for the dropped rows; the exhaustive
check; shape errors."""
import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.testing import build_layer, check_gradient_exhaustive, run_forward

TEXT = ('name: "f" type: "Filter" bottom: "a" bottom: "b" bottom: "s" top: "ya" top: "yb"')


def test_forward_backward():
    r = np.random.RandomState(0)
    a = r.randn(5, 3).astype(np.float32)
    b = r.randn(5, 2, 2).astype(np.float32)
    selector = np.array([0, 1, 0, -2, 0.5], np.float32)
    layer, bottom, top = build_layer(TEXT, [a, b, selector])
    # Caffe sizes the tops with the whole batch at the first reshape (during setup).
    assert top[0].shape == (5, 3) and top[1].shape == (5, 2, 2)
    run_forward(layer, bottom, top)
    kept = [1, 3, 4]
    assert top[0].shape == (3, 3) and top[1].shape == (3, 2, 2)
    np.testing.assert_array_equal(top[0].data, a[kept])
    np.testing.assert_array_equal(top[1].data, b[kept])
    top[0].diff[...] = r.randn(3, 3)
    top[1].diff[...] = r.randn(3, 2, 2)
    for x in bottom:
        x.diff[...] = 9
    layer.backward(top, [True, True, False], bottom)
    for x, t in zip(bottom[:2], top):
        np.testing.assert_array_equal(x.diff[kept], t.diff)
        assert (x.diff[[0, 2]] == 0).all()
    assert (bottom[2].diff == 9).all()
    assert layer.non_differentiable_bottoms == (2,)


def test_nothing_selected():
    layer, bottom, top = build_layer('name: "f" type: "Filter" bottom: "a" bottom: "s" top: "y"',
                                     [np.ones((3, 2)), np.zeros((3, 1))])
    run_forward(layer, bottom, top)
    assert top[0].shape == (0, 2)
    layer.backward(top, [True, False], bottom)
    assert (bottom[0].diff == 0).all()


def test_gradient_exhaustive():
    r = np.random.RandomState(1)
    layer, bottom, top = build_layer(TEXT, [r.randn(4, 2).astype(np.float32),
                                            r.randn(4, 1, 2).astype(np.float32),
                                            np.array([1, 0, 1, 1], np.float32)])
    check_gradient_exhaustive(layer, bottom, top, check_bottom=[0, 1])


@pytest.mark.parametrize('shapes,tops,message', [
    (((4, 2), (4, 2)), 1, 'selector must be'),
    (((4, 2), (3,)), 1, 'selector\'s 3 items'),
    (((4, 2), (4,)), 2, 'one top per filtered bottom'),
])
def test_errors(shapes, tops, message):
    text = 'name: "f" type: "Filter" bottom: "a" bottom: "s"' + ''.join(
        ' top: "t%d"' % i for i in range(tops))
    with pytest.raises(CaffeError, match=message):
        build_layer(text, [np.ones(s) for s in shapes])
