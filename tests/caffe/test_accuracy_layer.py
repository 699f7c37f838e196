import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.testing import build_layer

ACC = 'name: "acc" type: "Accuracy" bottom: "score" bottom: "label" top: "accuracy" %s'


def brute_accuracy(scores, labels, top_k=1, ignore=None):
    """Loop form: a hit when fewer than top_k other classes score at least the true one."""
    n, c = scores.shape[:2]
    s = scores.reshape(n, c, -1)
    lab = labels.reshape(n, -1)
    hits = count = 0
    per_hit, per_seen = np.zeros(c), np.zeros(c)
    for i in range(n):
        for j in range(s.shape[2]):
            label = int(lab[i, j])
            if label == ignore:
                continue
            others = sum(1 for k in range(c) if k != label and s[i, k, j] >= s[i, label, j])
            hit = others < top_k
            hits += hit
            count += 1
            per_seen[label] += 1
            per_hit[label] += hit
    per_class = np.where(per_seen > 0, per_hit / np.maximum(per_seen, 1), 0)
    return (hits / count if count else 0.0), per_class


@pytest.mark.parametrize('top_k', [1, 3])
def test_top_k_with_spatial_labels_and_ignore(top_k):
    rs = np.random.RandomState(top_k)
    scores = rs.randn(4, 5, 2, 3).astype(np.float32)
    labels = rs.randint(0, 5, size=(4, 2, 3)).astype(np.float32)
    labels.flat[::4] = 4
    text = ACC % ('top: "per_class" accuracy_param { top_k: %d ignore_label: 4 }' % top_k)
    layer, bottom, top = build_layer(text, [scores, labels])
    assert top[0].shape == () and top[1].shape == (5,)
    layer.forward(bottom, top)
    acc, per_class = brute_accuracy(scores, labels, top_k, ignore=4)
    assert float(top[0].data) == pytest.approx(acc, rel=1e-6)
    np.testing.assert_allclose(top[1].data, per_class, rtol=1e-6)
    assert 0 < acc < 1


def test_ties_count_against_the_true_class():
    scores = np.array([[1, 1, 0], [0, 2, 2], [3, 1, 1]], np.float32)
    labels = np.array([0, 2, 0], np.float32)
    layer, bottom, top = build_layer(ACC % '', [scores, labels])
    layer.forward(bottom, top)
    assert float(top[0].data) == pytest.approx(1 / 3)


def test_axis_and_all_ignored():
    scores = np.random.RandomState(0).randn(3, 2, 4).astype(np.float32)
    labels = np.random.RandomState(1).randint(0, 4, size=(3, 2)).astype(np.float32)
    layer, bottom, top = build_layer(ACC % 'accuracy_param { axis: 2 }', [scores, labels])
    layer.forward(bottom, top)
    expect = np.mean(scores.argmax(2) == labels)
    assert float(top[0].data) == pytest.approx(expect)
    labels[...] = 1
    layer, bottom, top = build_layer(ACC % 'accuracy_param { axis: 2 ignore_label: 1 }',
                                     [scores, labels])
    layer.forward(bottom, top)
    assert float(top[0].data) == 0.0


def test_errors_and_no_gradient():
    scores = np.zeros((2, 3), np.float32)
    with pytest.raises(CaffeError, match='top_k'):
        build_layer(ACC % 'accuracy_param { top_k: 4 }', [scores, np.zeros(2, np.float32)])
    layer, bottom, top = build_layer(ACC % '', [scores, np.array([0, 3], np.float32)])
    with pytest.raises(CaffeError, match="'acc'.*out of range"):
        layer.forward(bottom, top)
    layer, bottom, top = build_layer(ACC % '', [scores, np.array([0, 2], np.float32)])
    layer.forward(bottom, top)
    bottom[0].diff[...] = 1
    layer.backward(top, [True, False], bottom)
    assert (bottom[0].diff == 0).all()
