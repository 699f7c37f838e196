"""InfogainLoss against a float64 softmax and sum (axis 2 as in Caffe's test), H from a third
bottom and from a binaryproto file, H = I being SoftmaxWithLoss, ignore_label, Caffe's
exhaustive gradient check, and its errors."""
import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.io import array_to_blobproto, write_binary
from caffe.testing import build_layer, check_gradient_exhaustive

THREE = ('name: "i" type: "InfogainLoss" bottom: "x" bottom: "label" bottom: "H" top: "loss" '
         '%s')
SOURCE = ('name: "i" type: "InfogainLoss" bottom: "x" bottom: "label" top: "loss" %s '
          'infogain_loss_param { source: "%s" %s }')


def inputs(seed, shape=(4, 2, 5, 2), axis=2):
    # Caffe's test: scores uniform in [-0.5, 2], H uniform in [0.1, 2], axis 2.
    rs = np.random.RandomState(seed)
    x = rs.uniform(-0.5, 2, shape).astype(np.float32)
    k = shape[axis]
    label_shape = shape[:axis] + (1,) + shape[axis + 1:]
    labels = rs.randint(0, k, label_shape).astype(np.float32)
    H = rs.uniform(0.1, 2, (k, k)).astype(np.float32)
    return x, labels, H


def brute(x, labels, H, axis, ignore=None):
    """(loss summed, gradient of the sum, valid count), in float64."""
    z = np.moveaxis(x.astype(np.float64), axis, -1)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    lab = np.moveaxis(labels, axis, -1)[..., 0].astype(int)
    H = H.astype(np.float64)
    loss, grad, valid = 0.0, np.zeros(p.shape), 0
    for idx in np.ndindex(lab.shape):
        if ignore is not None and lab[idx] == ignore:
            continue
        row = H[lab[idx]]
        loss -= float(np.dot(row, np.log(p[idx])))
        grad[idx] = p[idx] * row.sum() - row
        valid += 1
    return loss, np.moveaxis(grad, -1, axis), valid


def test_forward_and_backward_with_h_as_a_bottom():
    x, labels, H = inputs(1)
    layer, bottom, top = build_layer(THREE % 'infogain_loss_param { axis: 2 } top: "prob"',
                                     [x, labels, H])
    layer.forward(bottom, top)
    loss, grad, valid = brute(x, labels, H, 2)
    assert valid == 16
    assert float(top[0].data) == pytest.approx(loss / valid, rel=1e-5)   # normalization VALID
    z = np.exp(x - x.max(axis=2, keepdims=True))
    np.testing.assert_allclose(top[1].data, z / z.sum(axis=2, keepdims=True), rtol=1e-5)
    top[0].diff[...] = 1.5
    layer.backward(top, [True, False, False], bottom)
    np.testing.assert_allclose(bottom[0].diff, 1.5 * grad / valid, rtol=1e-5, atol=1e-7)


def test_h_from_a_binaryproto_file(tmp_path):
    x, labels, H = inputs(2, (3, 4), axis=1)
    labels = labels.reshape(3)
    path = tmp_path / 'H.binaryproto'
    write_binary(str(path), array_to_blobproto(H.reshape(1, 1, 4, 4)))
    layer, bottom, top = build_layer(SOURCE % ('', path, ''), [x, labels])
    layer.forward(bottom, top)
    loss, grad, valid = brute(x, labels.reshape(3, 1), H, 1)
    assert float(top[0].data) == pytest.approx(loss / valid, rel=1e-5)
    top[0].diff[...] = 1
    layer.backward(top, [True, False], bottom)
    np.testing.assert_allclose(bottom[0].diff, grad / valid, rtol=1e-5, atol=1e-7)


def test_identity_h_is_softmax_with_loss():
    x, labels, _ = inputs(3, (5, 4, 3), axis=1)
    labels = labels.reshape(5, 3)
    layer, bottom, top = build_layer(THREE % '', [x, labels, np.eye(4, dtype=np.float32)])
    ref, rbottom, rtop = build_layer('name: "s" type: "SoftmaxWithLoss" bottom: "x" '
                                     'bottom: "label" top: "loss"', [x, labels])
    for lay, b, t in ((layer, bottom, top), (ref, rbottom, rtop)):
        lay.forward(b, t)
        t[0].diff[...] = 1
        lay.backward(t, [True] + [False] * (len(b) - 1), b)
    assert float(top[0].data) == pytest.approx(float(rtop[0].data), rel=1e-6)
    np.testing.assert_allclose(bottom[0].diff, rbottom[0].diff, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('normalization', ['VALID', 'FULL', 'BATCH_SIZE', 'NONE'])
def test_ignore_label_and_normalization(normalization):
    x, labels, H = inputs(4, (3, 4, 5), axis=1)
    labels = labels.reshape(3, 5)
    labels[0, :3] = 2
    params = 'loss_param { ignore_label: 2 normalization: %s }' % normalization
    layer, bottom, top = build_layer(THREE % params, [x, labels, H])
    layer.forward(bottom, top)
    loss, grad, valid = brute(x, labels.reshape(3, 1, 5), H, 1, ignore=2)
    norm = {'VALID': valid, 'FULL': 15, 'BATCH_SIZE': 3, 'NONE': 1}[normalization]
    assert float(top[0].data) == pytest.approx(loss / norm, rel=1e-5)
    top[0].diff[...] = 1
    layer.backward(top, [True, False, False], bottom)
    np.testing.assert_allclose(bottom[0].diff, grad / norm, rtol=1e-5, atol=1e-7)
    assert (bottom[0].diff[0, :, :3] == 0).all()


def test_gradient_exhaustive():
    # Caffe: GradientChecker(1e-4, 2e-2, 1701).CheckGradientExhaustive on bottom 0, axis 2.
    x, labels, H = inputs(5, (2, 2, 3, 2))
    layer, bottom, top = build_layer(THREE % 'infogain_loss_param { axis: 2 }', [x, labels, H])
    check_gradient_exhaustive(layer, bottom, top, check_bottom=[0], stepsize=1e-4,
                              threshold=2e-2)


def test_errors(tmp_path):
    x, labels, H = inputs(6, (3, 4), axis=1)
    labels = labels.reshape(3)
    with pytest.raises(CaffeError, match="InfogainLoss layer 'i'.*normalize is deprecated"):
        build_layer(THREE % 'loss_param { normalize: true }', [x, labels, H])
    with pytest.raises(CaffeError, match="InfogainLoss layer 'i'.*source.*is required"):
        build_layer('name: "i" type: "InfogainLoss" bottom: "x" bottom: "l" top: "loss"',
                    [x, labels])
    missing = tmp_path / 'missing.binaryproto'
    with pytest.raises(CaffeError, match="InfogainLoss layer 'i'.*missing.binaryproto"):
        build_layer(SOURCE % ('', missing, ''), [x, labels])
    with pytest.raises(CaffeError, match=r"InfogainLoss layer 'i': H must be 4 x 4"):
        build_layer(THREE % '', [x, labels, H[:3, :3]])
    with pytest.raises(CaffeError, match="InfogainLoss layer 'i': number of labels"):
        build_layer(THREE % '', [x, np.zeros((3, 2), np.float32), H])
    labels[1] = 4
    layer, bottom, top = build_layer(THREE % '', [x, labels, H])
    with pytest.raises(CaffeError, match=r"label 4 \(at 1\) is out of range \[0, 4\)"):
        layer.forward(bottom, top)
