import numpy as np
import pytest

import caffe
from caffe.common import CaffeError
from caffe.layer import TEST, TRAIN
from caffe.testing import build_layer, check_gradient

DROP = 'name: "drop" type: "Dropout" bottom: "x" top: "y" dropout_param { %s }'


def data(shape=(4, 50, 10), seed=0):
    return (np.random.RandomState(seed).rand(*shape) + 0.5).astype(np.float32)  # no zeros


def test_train_scales_kept_units_and_keep_rate():
    caffe.set_random_seed(11)
    x = data()
    layer, bottom, top = build_layer(DROP % 'dropout_ratio: 0.3', [x], phase=TRAIN)
    layer.forward(bottom, top)
    y = top[0].data
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / (1 - 0.3), rtol=1e-6)
    # 2000 Bernoulli(0.7) draws: the keep rate lies within 4 standard deviations of 0.7.
    rate, sd = kept.mean(), np.sqrt(0.7 * 0.3 / kept.size)
    assert abs(rate - 0.7) < 4 * sd
    np.testing.assert_array_equal(layer.mask, kept.astype(np.uint32))


def test_train_backward_uses_the_forward_mask():
    caffe.set_random_seed(12)
    x = data((3, 40))
    layer, bottom, top = build_layer(DROP % 'dropout_ratio: 0.5', [x], phase=TRAIN)
    layer.forward(bottom, top)
    kept = top[0].data != 0
    dy = np.random.RandomState(1).randn(3, 40).astype(np.float32)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, np.where(kept, dy * 2, 0), rtol=1e-6)


def test_scale_train_false_in_training_does_not_scale():
    caffe.set_random_seed(13)
    x = data()
    layer, bottom, top = build_layer(DROP % 'dropout_ratio: 0.5 scale_train: false', [x],
                                     phase=TRAIN)
    layer.forward(bottom, top)
    y = top[0].data
    kept = y != 0
    np.testing.assert_array_equal(y[kept], x[kept])
    assert abs(kept.mean() - 0.5) < 4 * np.sqrt(0.25 / kept.size)


def test_test_phase():
    x = data((2, 3))
    layer, bottom, top = build_layer(DROP % 'dropout_ratio: 0.4', [x], phase=TEST)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, x)
    layer, bottom, top = build_layer(DROP % 'dropout_ratio: 0.4 scale_train: false', [x],
                                     phase=TEST)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, x * 0.6, rtol=1e-6)
    top[0].diff[...] = 1.0
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, 0.6, rtol=1e-6)


@pytest.mark.parametrize('phase,extra', [(TRAIN, ''), (TRAIN, 'scale_train: false'),
                                         (TEST, 'scale_train: false')])
def test_gradient(phase, extra):
    x = data((2, 3, 4), seed=3)
    layer, bottom, top = build_layer(DROP % ('dropout_ratio: 0.5 ' + extra), [x], phase=phase)
    forward = layer.forward_cpu

    def same_mask_forward(b, t):  # the checker runs forward many times; hold the mask fixed
        caffe.set_random_seed(5)
        forward(b, t)

    layer.forward_cpu = same_mask_forward
    check_gradient(layer, bottom, top)


def test_in_place_train():
    caffe.set_random_seed(14)
    x = data((5, 20))
    layer, bottom, _ = build_layer(DROP % 'dropout_ratio: 0.5', [x], phase=TRAIN)
    top = bottom  # set up with its own top, then run in place as a Net would
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    kept = layer.mask.astype(bool)
    np.testing.assert_allclose(bottom[0].data, np.where(kept, x * 2, 0), rtol=1e-6)
    bottom[0].diff[...] = 3.0
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, np.where(kept, 6.0, 0.0))


def test_bad_ratio():
    with pytest.raises(CaffeError, match='drop'):
        build_layer(DROP % 'dropout_ratio: 1.0', [data((2, 2))])
