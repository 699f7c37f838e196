import numpy as np
import pytest

import caffe
from caffe.common import CaffeError
from caffe.testing import build_layer


def test_constant_filled_once_and_shapes():
    text = '''name: "d" type: "DummyData" top: "a" top: "b"
    dummy_data_param { shape { dim: 2 dim: 3 } shape { dim: 4 }
                       data_filler { type: "constant" value: 1.5 } }'''
    layer, bottom, top = build_layer(text, [])
    assert top[0].shape == (2, 3) and top[1].shape == (4,)
    assert (top[0].data == 1.5).all() and (top[1].data == 1.5).all()
    top[0].data[...] = -1
    layer.forward(bottom, top)
    assert (top[0].data == -1).all()  # constant tops are not refilled


def test_random_filler_refills_every_forward_and_legacy_dims():
    caffe.set_random_seed(3)
    text = '''name: "d" type: "DummyData" top: "a" top: "b"
    dummy_data_param { num: 2 channels: 3 height: 4 width: 1 width: 5
                       data_filler { type: "gaussian" std: 1 }
                       data_filler { type: "constant" value: 2 } }'''
    layer, bottom, top = build_layer(text, [])
    assert top[0].shape == (2, 3, 4, 1) and top[1].shape == (2, 3, 4, 5)
    assert (top[1].data == 2).all()
    layer.forward(bottom, top)
    first = top[0].data.copy()
    assert first.std() > 0.3
    layer.forward(bottom, top)
    assert not np.array_equal(first, top[0].data)


def test_default_filler_is_zero():
    text = 'name: "d" type: "DummyData" top: "a" dummy_data_param { shape { dim: 3 } }'
    layer, bottom, top = build_layer(text, [])
    top[0].data[...] = 7
    layer, bottom, top = build_layer(text, [])
    assert (top[0].data == 0).all()


@pytest.mark.parametrize('param,match', [
    ('shape { dim: 1 } num: 1 channels: 1 height: 1 width: 1', 'not both'),
    ('shape { dim: 1 } shape { dim: 1 } shape { dim: 1 }', 'shape'),
    ('shape { dim: 1 } data_filler { } data_filler { } data_filler { }', 'data_filler'),
])
def test_errors(param, match):
    text = 'name: "d" type: "DummyData" top: "a" top: "b" dummy_data_param { %s }' % param
    with pytest.raises(CaffeError, match=match):
        build_layer(text, [])
