"""Weight fillers (FillerParameter.type): Caffe's constant, gaussian, positive_unitball, uniform,
xavier, msra and bilinear (include/caffe/filler.hpp). Only gaussian takes `sparse`; Caffe
refuses it (CHECK_EQ(sparse, -1)) for the others, and so does this module."""
import numpy as np

from .common import CaffeError, rng

_FAN_IN, _FAN_OUT, _AVERAGE = 0, 1, 2


def _fan(blob, variance_norm):
    # Caffe: fan_in = count / num, fan_out = count / channels.
    count = blob.count
    fan_in = count // blob.shape[0] if blob.shape else count
    fan_out = count // blob.shape[1] if len(blob.shape) > 1 else count
    if variance_norm == _FAN_OUT:
        return fan_out
    if variance_norm == _AVERAGE:
        return (fan_in + fan_out) / 2.0
    return fan_in


def _check(filler, blob):
    """Caffe's checks on a filler's numbers (caffe_rng_uniform: min <= max; the sparse
    Gaussian's keep probability in [0, 1]) and what numpy's draws need, as CaffeError."""
    kind = filler.type
    if kind == 'uniform' and not (np.isfinite(filler.min) and np.isfinite(filler.max)
                                  and filler.min <= filler.max):
        raise CaffeError('uniform filler: min (%g) and max (%g) must be finite numbers with '
                         'min <= max' % (filler.min, filler.max))
    if kind == 'gaussian':
        if not (np.isfinite(filler.std) and filler.std >= 0):
            raise CaffeError('gaussian filler: std must be a finite number >= 0, got %g'
                             % filler.std)
        num_outputs = blob.shape[0] if blob.shape else 1
        if filler.sparse >= 0 and not filler.sparse <= num_outputs:
            raise CaffeError('gaussian filler: sparse %d keeps each weight with probability '
                             'sparse / num_outputs, which must be at most 1 (%d outputs)'
                             % (filler.sparse, num_outputs))


def fill(blob, filler):
    """Fills blob.data according to a FillerParameter message."""
    _check(filler, blob)
    if blob.count == 0:
        return  # nothing to fill (and no fan for xavier/msra to divide by)
    shape = blob.shape
    r = rng()
    kind = filler.type
    if filler.sparse != -1 and kind != 'gaussian':
        raise CaffeError('filler %r does not take sparse (got %d); only gaussian does'
                         % (kind, filler.sparse))
    if kind == 'constant':
        values = np.full(shape, filler.value)
    elif kind == 'gaussian':
        values = r.normal(filler.mean, filler.std, size=shape)
        if filler.sparse >= 0:
            # Keep each weight with probability sparse / num_outputs (Caffe's sparse Gaussian).
            num_outputs = shape[0] if shape else 1
            keep = r.uniform(size=shape) < filler.sparse / float(num_outputs)
            values = values * keep
    elif kind == 'positive_unitball':
        # Uniform in [0, 1), each item (the values of one index of the first axis) scaled to
        # sum to 1.
        values = r.uniform(0.0, 1.0, size=shape).astype(np.float32)
        rows = values.reshape(shape[0] if shape else 1, -1)
        rows /= rows.sum(axis=1, keepdims=True, dtype=np.float32)
    elif kind == 'bilinear':
        values = _bilinear(blob)
    elif kind == 'uniform':
        values = r.uniform(filler.min, filler.max, size=shape)
    elif kind == 'xavier':
        scale = np.sqrt(3.0 / _fan(blob, filler.variance_norm))
        values = r.uniform(-scale, scale, size=shape)
    elif kind == 'msra':
        values = r.normal(0.0, np.sqrt(2.0 / _fan(blob, filler.variance_norm)), size=shape)
    else:
        raise CaffeError('unknown filler type %r (known: constant, gaussian, positive_unitball, '
                         'uniform, xavier, msra, bilinear)' % kind)
    blob.data[...] = values


def _bilinear(blob):
    """Caffe's BilinearFiller, the kernel of bilinear upsampling for a Deconvolution (FCN): a
    4-D blob with square (k, k) kernels, every kernel the same: with f = ceil(k / 2) and
    c = (k - 1) / (2 f), w(x, y) = (1 - |x / f - c|) * (1 - |y / f - c|)."""
    shape = blob.shape
    if len(shape) != 4:
        raise CaffeError('the bilinear filler needs a 4-D blob, got shape %s' % (shape,))
    if shape[2] != shape[3]:
        raise CaffeError('the bilinear filler needs square kernels, got %dx%d'
                         % (shape[2], shape[3]))
    k = shape[3]
    f = np.ceil(k / 2.0)
    c = np.float32((k - 1) / (2.0 * f))
    axis = np.abs(np.arange(k, dtype=np.float32) / np.float32(f) - c)
    kernel = (1 - axis)[:, None] * (1 - axis)[None, :]
    return np.broadcast_to(kernel, shape)
