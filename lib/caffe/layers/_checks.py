"""Checks built-in layers make on their blobs, with messages that name the layer (counts that
depend on a parameter, beyond what the class declares for the Net to check, and Caffe's
CanonicalAxisIndex)."""
from ..common import CaffeError
from ..layer import count_error


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
