import math

import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.testing import build_layer, check_gradient

LOSS = '''name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss" %s'''


def brute_loss(scores, labels, ignore=None, mode='VALID'):
    """Loops over every (n, spatial) position: -log softmax[label], then the normalizer."""
    n, c = scores.shape[:2]
    spatial = scores.reshape(n, c, -1)
    labels = labels.reshape(n, -1)
    total, valid = 0.0, 0
    for i in range(n):
        for j in range(spatial.shape[2]):
            label = int(labels[i, j])
            if label == ignore:
                continue
            col = [float(v) for v in spatial[i, :, j]]
            m = max(col)
            log_z = m + math.log(sum(math.exp(v - m) for v in col))
            total += log_z - col[label]
            valid += 1
    norm = {'FULL': labels.size, 'VALID': valid, 'BATCH_SIZE': n, 'NONE': 1}[mode]
    return total / max(1, norm)


def inputs(shape=(4, 5), seed=0, ignore=None):
    rs = np.random.RandomState(seed)
    scores = rs.randn(*shape).astype(np.float32) * 2
    labels = rs.randint(0, shape[1], size=(shape[0],) + shape[2:]).astype(np.float32)
    if ignore is not None:
        labels.flat[::3] = ignore
    return scores, labels


def test_default_valid_normalization_and_scalar_top():
    scores, labels = inputs()
    layer, bottom, top = build_layer(LOSS % '', [scores, labels])
    assert type(layer).default_loss_weight == 1.0
    assert top[0].shape == () and top[0].count == 1
    layer.forward(bottom, top)
    assert float(top[0].data) == pytest.approx(brute_loss(scores, labels), rel=1e-5)


@pytest.mark.parametrize('mode', ['FULL', 'VALID', 'BATCH_SIZE', 'NONE'])
def test_normalization_modes_with_ignore_label(mode):
    scores, labels = inputs((3, 4, 2, 3), seed=1, ignore=2)
    text = LOSS % ('loss_param { ignore_label: 2 normalization: %s }' % mode)
    layer, bottom, top = build_layer(text, [scores, labels])
    layer.forward(bottom, top)
    assert float(top[0].data) == pytest.approx(brute_loss(scores, labels, 2, mode), rel=1e-5)
    check_gradient(layer, bottom, top, check_bottom=[0], max_checks=15)


@pytest.mark.parametrize('normalize,mode', [('false', 'BATCH_SIZE'), ('true', 'VALID')])
def test_legacy_normalize_flag(normalize, mode):
    scores, labels = inputs((3, 4, 5), seed=2, ignore=1)
    text = LOSS % ('loss_param { ignore_label: 1 normalize: %s }' % normalize)
    layer, bottom, top = build_layer(text, [scores, labels])
    layer.forward(bottom, top)
    assert float(top[0].data) == pytest.approx(brute_loss(scores, labels, 1, mode), rel=1e-5)


def test_normalization_enum_wins_over_legacy_flag():
    scores, labels = inputs((3, 4, 5), seed=3, ignore=0)
    text = LOSS % 'loss_param { ignore_label: 0 normalize: false normalization: FULL }'
    layer, bottom, top = build_layer(text, [scores, labels])
    layer.forward(bottom, top)
    assert float(top[0].data) == pytest.approx(brute_loss(scores, labels, 0, 'FULL'), rel=1e-5)


def test_all_ignored_gives_zero_loss_and_gradient():
    scores, labels = inputs((2, 3))
    labels[...] = 5
    layer, bottom, top = build_layer(LOSS % 'loss_param { ignore_label: 5 }', [scores, labels])
    layer.forward(bottom, top)
    assert float(top[0].data) == 0.0
    top[0].diff[...] = 1.0
    layer.backward(top, [True, False], bottom)
    assert (bottom[0].diff == 0).all()


def test_backward_formula_with_loss_weight():
    scores, labels = inputs((3, 4), seed=4, ignore=3)
    layer, bottom, top = build_layer(LOSS % 'loss_param { ignore_label: 3 }', [scores, labels])
    layer.forward(bottom, top)
    top[0].diff[...] = 2.0
    bottom[1].diff[...] = 9.0
    layer.backward(top, [True, True], bottom)
    e = np.exp(scores.astype(np.float64) - scores.max(1, keepdims=True))
    expect = e / e.sum(1, keepdims=True)
    valid = labels != 3
    for i in range(3):
        if valid[i]:
            expect[i, int(labels[i])] -= 1
        else:
            expect[i] = 0
    expect *= 2.0 / valid.sum()
    np.testing.assert_allclose(bottom[0].diff, expect, rtol=1e-5, atol=1e-7)
    assert (bottom[1].diff == 0).all()  # labels carry no gradient
    assert type(layer).non_differentiable_bottoms == (1,)


def test_second_top_holds_probabilities():
    scores, labels = inputs((2, 3, 2), seed=5)
    text = LOSS % 'top: "prob"'
    layer, bottom, top = build_layer(text, [scores, labels])
    layer.forward(bottom, top)
    assert top[1].shape == scores.shape
    e = np.exp(scores.astype(np.float64))
    np.testing.assert_allclose(top[1].data, e / e.sum(1, keepdims=True), rtol=1e-5)


def test_labels_truncate_like_a_c_cast():
    scores, labels = inputs((3, 4), seed=6)
    layer, bottom, top = build_layer(LOSS % '', [scores, labels + 0.75])
    layer.forward(bottom, top)
    assert float(top[0].data) == pytest.approx(brute_loss(scores, labels), rel=1e-5)


@pytest.mark.parametrize('bad', [4.0, -1.0])
def test_label_out_of_range(bad):
    scores, labels = inputs((3, 4))
    labels[1] = bad
    layer, bottom, top = build_layer(LOSS % '', [scores, labels])
    with pytest.raises(CaffeError, match="'loss'.*out of range"):
        layer.forward(bottom, top)


def test_label_count_mismatch():
    scores = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(CaffeError, match='labels'):
        build_layer(LOSS % '', [scores, np.zeros((2, 3), np.float32)])
