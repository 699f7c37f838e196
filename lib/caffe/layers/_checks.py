"""Checks every built-in layer makes on its blobs, with messages that name the layer
(Caffe's ExactNumBottomBlobs/MinTopBlobs checks and CanonicalAxisIndex), and the reshape cache."""
import functools

from ..common import CaffeError


def layer_error(layer, message):
    return CaffeError('%s layer %r: %s' % (layer.type, layer.name, message))


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
        raise layer_error(layer, 'takes %s %s blob(s), got %d'
                          % (_describe(allowed), kind, len(blobs)))


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
