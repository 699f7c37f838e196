"""Checks built-in layers make on their blobs and parameters, with messages that name the layer
(counts that depend on a parameter, beyond what the class declares for the Net to check, Caffe's
CanonicalAxisIndex, (h, w) parameter pairs, parameter blobs given or made, compiled kernels that
are not built), and the reshape cache."""
import functools

import numpy as np

from ..common import CaffeError
from ..fillers import fill
from ..layer import count_error


def layer_error(layer, message):
    return CaffeError('%s layer %r: %s' % (layer.type, layer.name, message))


def param_blobs(layer, shapes, fillers):
    """Caffe's parameter setup: blobs the layer already holds (a LayerParameter's own) must have
    `shapes`; otherwise they are made and filled by `fillers` (FillerParameters). All of them
    get gradients unless the Net says otherwise."""
    if len(layer.blobs):
        if len(layer.blobs) != len(shapes):
            raise layer_error(layer, 'has %d parameter blobs; expected %d'
                              % (len(layer.blobs), len(shapes)))
        for blob, shape in zip(layer.blobs, shapes):
            if blob.shape != tuple(shape):
                raise layer_error(layer, 'parameter shape %s does not match the expected %s'
                                  % (blob.shape, tuple(shape)))
    else:
        for shape, filler in zip(shapes, fillers):
            layer.blobs.add_blob(*shape)
            fill(layer.blobs[-1], filler)
    layer.param_propagate_down = [True] * len(layer.blobs)


def not_built(layer, module, error):
    """The error of a layer whose compiled kernels (caffe.layers.<module>) did not import."""
    return layer_error(layer, 'needs the compiled extension caffe.layers.%s, which is not built '
                       'or does not load (%s); run `make` in the repository root'
                       % (module, error))


INT32_MAX = 2 ** 31 - 1


def check_int32(layer, **values):
    """Geometry fields are uint32 in caffe.proto but held as int in Caffe's layers (a value past
    2^31 - 1 turns negative there and fails its positivity checks): refused by name here."""
    for name, value in values.items():
        if max(value) > INT32_MAX:
            raise layer_error(layer, '%s %s is out of range (at most %d)'
                              % (name, tuple(value), INT32_MAX))


def spatial_pair(layer, param, field, hw_prefix, default):
    """An (h, w) pair from `field` or from the `<hw_prefix>_h` / `<hw_prefix>_w` pair (Caffe
    takes one or the other). `field` is a repeated field (ConvolutionParameter: one value for
    both axes, or one per axis) or an optional one (PoolingParameter); `default` where neither is
    given (None: required)."""
    h_name, w_name = hw_prefix + '_h', hw_prefix + '_w'
    value = getattr(param, field)
    if hasattr(value, '__len__'):  # a repeated field's container
        values = list(value)
    else:
        values = [getattr(param, field)] if param.HasField(field) else []
    if param.HasField(h_name) or param.HasField(w_name):
        if values:
            raise layer_error(layer, 'give either %s or %s/%s, not both'
                              % (field, h_name, w_name))
        if not (param.HasField(h_name) and param.HasField(w_name)):
            raise layer_error(layer, '%s and %s must be given together' % (h_name, w_name))
        pair = getattr(param, h_name), getattr(param, w_name)
        check_int32(layer, **{hw_prefix: pair})
        return pair
    if not values:
        if default is None:
            raise layer_error(layer, '%s (or %s/%s) is required' % (field, h_name, w_name))
        return default, default
    if len(values) > 2:
        raise layer_error(layer, '%s has %d values; a 2-D layer takes 1 or 2'
                          % (field, len(values)))
    check_int32(layer, **{field: values})
    return values[0], values[-1]


def _describe(allowed):
    if isinstance(allowed, int):
        return str(allowed)
    if isinstance(allowed, range):
        if allowed.stop > 1000:
            return 'at least %d' % allowed.start
        return '%d to %d' % (allowed.start, allowed.stop - 1)
    return ' or '.join(str(n) for n in allowed)


def check_count(layer, kind, blobs, allowed):
    """kind: 'bottom' or 'top'; allowed: an int, a tuple of ints or a range."""
    ok = len(blobs) == allowed if isinstance(allowed, int) else len(blobs) in allowed
    if not ok:
        raise count_error(layer, kind, len(blobs), _describe(allowed))


AT_LEAST_ONE = range(1, 1 << 30)
AT_LEAST_TWO = range(2, 1 << 30)


def canonical_axis(layer, blob, axis, field):
    try:
        return blob.canonical_axis(axis)
    except ValueError:
        raise layer_error(layer, '%s %d is out of range for a bottom of shape %s'
                          % (field, axis, blob.shape)) from None


def count_between(shape, start, end):
    n = 1
    for d in shape[start:end]:
        n *= int(d)
    return n


def check_roi_bottoms(layer, features, rois):
    """features (N, C, H, W) and rois (R, 5) (or R x 5 x 1 x 1), the RoI layers' bottoms."""
    if len(features.shape) != 4:
        raise layer_error(layer, 'features must be 4-D (N, C, H, W), got %s' % (features.shape,))
    if len(rois.shape) < 2 or rois.count_from(1) != 5:
        raise layer_error(layer, 'rois must be (R, 5) rows [batch_index, x1, y1, x2, y2], got '
                          'shape %s' % (rois.shape,))


def roi_rows(layer, features, rois):
    """The rois blob as a contiguous (R, 5) float32 host array, after checking that every batch
    index truncates (as the Fast R-CNN fork's kernels do) to an image of `features`: anything
    outside [0, N) or NaN would read another image's memory there."""
    rows = rois.cpu_data().reshape(-1, 5)
    idx = rows[:, 0]
    bad = ~((idx > -1) & (idx < features.shape[0]))
    if bad.any():
        raise layer_error(layer, 'roi %d has batch index %g; the features hold %d image(s)'
                          % (np.flatnonzero(bad)[0], idx[bad][0], features.shape[0]))
    return np.ascontiguousarray(rows)


def reshape_by_shapes(reshape):
    """Decorates a layer's reshape whose work depends only on its bottoms' shapes (checks, top
    shapes, internal buffers): when the bottoms have the shapes of the last call and the tops
    still have the shapes it gave them, there is nothing to do. The Net reshapes every layer
    before every forward pass (as Caffe does), and in small nets those checks cost as much as
    the arithmetic."""
    @functools.wraps(reshape)
    def wrapper(self, bottom, top):
        key = tuple(b.shape for b in bottom)
        done = self.__dict__.get('_reshaped')
        if done is not None and done[0] == key and len(done[1]) == len(top) and \
                all(t.shape == shape for t, shape in zip(top, done[1])):
            return
        self._reshaped = None
        reshape(self, bottom, top)
        self._reshaped = (key, tuple(t.shape for t in top))
    return wrapper
