import pytest

from caffe.common import CaffeError
from caffe.testing import build_layer


def test_shapes_per_top_and_shared():
    text = '''name: "in" type: "Input" top: "data" top: "im_info"
    input_param { shape { dim: 1 dim: 3 dim: 8 dim: 9 } shape { dim: 1 dim: 3 } }'''
    layer, bottom, top = build_layer(text, [])
    assert top[0].shape == (1, 3, 8, 9) and top[1].shape == (1, 3)
    top[0].data[...] = 4
    layer.forward(bottom, top)
    assert (top[0].data == 4).all()  # the caller's data stays

    text = 'name: "in" type: "Input" top: "a" top: "b" input_param { shape { dim: 2 } }'
    _, _, top = build_layer(text, [])
    assert top[0].shape == (2,) and top[1].shape == (2,)


def test_wrong_number_of_shapes():
    text = '''name: "in" type: "Input" top: "a" top: "b" top: "c"
    input_param { shape { dim: 1 } shape { dim: 2 } }'''
    with pytest.raises(CaffeError, match="'in'"):
        build_layer(text, [])
