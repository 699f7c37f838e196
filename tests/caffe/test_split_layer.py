import numpy as np

from caffe.testing import build_layer, check_gradient

SPLIT = 'name: "s" type: "Split" bottom: "x" top: "a" top: "b" top: "c"'


def test_tops_share_the_bottom_data():
    x = np.random.RandomState(0).randn(2, 3).astype(np.float32)
    layer, bottom, top = build_layer(SPLIT, [x])
    layer.forward(bottom, top)
    for t in top:
        np.testing.assert_array_equal(t.data, x)
    bottom[0].data[0, 0] = 42
    assert all(t.data[0, 0] == 42 for t in top)


def test_backward_adds_the_top_diffs():
    rs = np.random.RandomState(1)
    layer, bottom, top = build_layer(SPLIT, [rs.randn(3, 4).astype(np.float32)])
    layer.forward(bottom, top)
    diffs = [rs.randn(3, 4).astype(np.float32) for _ in top]
    for t, d in zip(top, diffs):
        t.diff[...] = d
    layer.backward(top, [True], bottom)
    expect = np.zeros((3, 4))
    for d in diffs:
        expect += d
    np.testing.assert_allclose(bottom[0].diff, expect, rtol=1e-6)


def test_gradient():
    layer, bottom, top = build_layer(SPLIT, [np.random.RandomState(2).randn(2, 3, 2)])
    check_gradient(layer, bottom, top)
