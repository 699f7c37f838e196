"""What Caffe's loss layers share (LossLayer, and the normalization SoftmaxWithLoss,
SigmoidCrossEntropyLoss and InfogainLoss repeat): a loss weight of 1 by default, a scalar top,
bottoms that agree in their first axis, labels that cannot take a gradient, the normalization
modes, and label checks with clear errors (Caffe reads out of range there)."""
import numpy as np

from ..layer import Layer
from ..proto import caffe_pb2
from ._checks import layer_error, not_built, reshape_by_shapes

try:
    from . import loss_kernels as kernels
except ImportError as e:  # the package imports every layer; fail only when one is built
    kernels = None
    _KERNELS_ERROR = e

LOSS = caffe_pb2.LossParameter


def require_kernels(layer):
    if kernels is None:
        raise not_built(layer, 'loss_kernels', _KERNELS_ERROR)


def normalization_mode(layer, default=None):
    """loss_param's mode: `normalization` when given; else the legacy `normalize` (true: VALID,
    false: BATCH_SIZE); else `default` (None: the field's own default, VALID)."""
    p = layer.layer_param.loss_param
    if p.HasField('normalization'):
        return p.normalization
    if p.HasField('normalize'):
        return LOSS.VALID if p.normalize else LOSS.BATCH_SIZE
    return p.normalization if default is None else default


def normalizer(layer, mode, outer, inner, valid_count):
    """Caffe's get_normalizer: what the summed loss is divided by, at least 1 (a batch whose
    labels are all ignored gives 0, not NaN)."""
    if mode == LOSS.FULL:
        n = outer * inner
    elif mode == LOSS.VALID:
        n = valid_count
    elif mode == LOSS.BATCH_SIZE:
        n = outer
    elif mode == LOSS.NONE:
        n = 1
    else:
        raise layer_error(layer, 'unknown loss_param.normalization %d' % mode)
    return np.float32(max(1.0, float(n)))


def ignore_label(layer):
    p = layer.layer_param.loss_param
    return int(p.ignore_label) if p.HasField('ignore_label') else None


def check_labels(layer, labels, classes, ignore=None, what='label'):
    """Raises a layer error for a label (cast to int as Caffe casts it) outside [0, classes)
    that is not the ignore label."""
    with np.errstate(invalid='ignore'):
        ints = labels.astype(np.int64)
    bad = (ints < 0) | (ints >= classes)
    if ignore is not None:
        bad &= ints != ignore
    if bad.any():
        k = int(np.flatnonzero(bad.ravel())[0])
        raise layer_error(layer, '%s %g (at %d) is out of range [0, %d)%s'
                          % (what, labels.ravel()[k], k, classes,
                             '' if ignore is None else ' and is not ignore_label %d' % ignore))


def loss_weight(top):
    """The loss top's diff: its loss weight (Caffe's top[0]->cpu_diff()[0])."""
    return np.float32(top[0].cpu_diff().reshape(-1)[0])


class LossLayer(Layer):
    """Caffe's LossLayer: bottoms (prediction, label), one scalar top weighted 1 by default."""
    default_loss_weight = 1.0
    non_differentiable_bottoms = (1,)
    exact_num_bottom_blobs = 2
    exact_num_top_blobs = 1
    auto_top_blobs = True

    def setup(self, bottom, top):
        require_kernels(self)

    @reshape_by_shapes
    def reshape(self, bottom, top):
        self.reshape_loss(bottom, top)

    def reshape_loss(self, bottom, top):
        first = [b.shape[0] if b.shape else None for b in bottom[:2]]
        if first[0] is None or first[0] != first[1]:
            raise layer_error(self, 'the data %s and label %s should have the same first '
                              'dimension' % (bottom[0].shape, bottom[1].shape))
        top[0].reshape(())
