import numpy as np

from caffe.testing import build_layer


def test_backward_zeroes_only_the_diffs_asked_for():
    text = 'name: "mute" type: "Silence" bottom: "a" bottom: "b"'
    layer, bottom, top = build_layer(text, [np.ones((2, 3)), np.ones(4)])
    assert top == []
    layer.forward(bottom, top)
    for b in bottom:
        b.diff[...] = 5
    layer.backward(top, [True, False], bottom)
    assert (bottom[0].diff == 0).all()
    assert (bottom[1].diff == 5).all()
    np.testing.assert_array_equal(bottom[0].data, np.ones((2, 3)))
