"""Coordinate maps between the tops of a net_spec net: pycaffe's caffe.coord_map, used to align
feature maps (a fully convolutional net's upsampled scores cropped back to its input).

A map is a triple (axis, a, b): a point at coordinate x, along the spatial axes that follow
`axis`, in one top lies at a * x + b in the other. `a` and `b` hold one value per spatial axis
(numpy arrays), or are the scalars 1 and 0 for the identity. axis None means the map does not
depend on the axis (point-wise layers). What each layer does to coordinates, bottom to top:

- Convolution, Pooling, Im2col: top y is centred on bottom stride * y - pad + (k - 1) / 2, where
  k = dilation * (kernel - 1) + 1 is the kernel's extent; so a = 1 / stride and
  b = (pad - (k - 1) / 2) / stride.
- Deconvolution, the reverse: a = stride, b = (k - 1) / 2 - pad.
- Crop: y = x - offset (a = 1, b = -offset), on the axes from crop_param.axis (default 2) on.
- The point-wise types of PASS_THROUGH_LAYERS: the identity.
- Anything else (InnerProduct, ...) has no map: coordinates do not survive it.

Exceptions are pycaffe's: RuntimeError when two tops share no spatially connected ancestor,
AxisMismatchException when maps along different axes meet, and AssertionError from crop() when
the two tops cannot be related by a crop (different scales, a negative or fractional offset).
"""
import collections

import numpy as np

from .net_spec import layers as L

# Layers that leave every coordinate where it is.
PASS_THROUGH_LAYERS = ['AbsVal', 'BatchNorm', 'Bias', 'BNLL', 'Dropout', 'Eltwise', 'ELU', 'Log',
                       'LRN', 'Exp', 'MVN', 'Power', 'ReLU', 'PReLU', 'Scale', 'Sigmoid', 'Split',
                       'TanH', 'Threshold']

_CONV_LIKE = ('Convolution', 'Deconvolution', 'Im2col', 'Pooling')
# Caffe's single-axis spellings of kernel, stride and pad (2-D only); a map needs the N-D fields.
_LEGACY_2D = ('kernel_h', 'kernel_w', 'stride_h', 'stride_w', 'pad_h', 'pad_w')
_IDENTITY = (None, 1, 0)


class UndefinedMapException(Exception):
    """The layer has no coordinate map (its top's coordinates do not follow its bottom's)."""


class AxisMismatchException(Exception):
    """Two maps along different axes cannot be composed."""


def _layer_params(fn, message):
    """The parameters of a net_spec Function: those given in its `message` dict (e.g.
    convolution_param=dict(...)), else its keyword arguments, as net_spec places them."""
    return fn.params.get(message, fn.params)


def _vector(value):
    return np.array(value, ndmin=1)


def conv_params(fn):
    """(axis, stride, kernel extent, pad) of a Convolution, Deconvolution, Im2col or Pooling
    Function, each an array with one value per spatial axis (a single value stands for all).
    The kernel extent counts the dilation: dilation * (kernel_size - 1) + 1."""
    message = 'pooling_param' if fn.type_name == 'Pooling' else 'convolution_param'
    params = _layer_params(fn, message)
    legacy = sorted(set(_LEGACY_2D) & (set(params) | set(fn.params)))
    if legacy:
        raise AssertionError('%s: coordinate maps need kernel_size/stride/pad, not the legacy '
                             '2-D fields %s' % (fn.type_name, ', '.join(legacy)))
    if params.get('global_pooling'):
        raise UndefinedMapException('%s: global pooling keeps no coordinates' % fn.type_name)
    if 'kernel_size' not in params:
        raise AssertionError('%s: no kernel_size to map coordinates through' % fn.type_name)
    kernel = _vector(params['kernel_size'])
    extent = (kernel - 1) * _vector(params.get('dilation', 1)) + 1
    return (params.get('axis', 1), _vector(params.get('stride', 1)), extent,
            _vector(params.get('pad', 0)))


def crop_params(fn):
    """(axis, offset) of a Crop Function, with caffe.proto's defaults (axis 2, offset 0)."""
    params = _layer_params(fn, 'crop_param')
    return params.get('axis', 2), _vector(params.get('offset', 0))


def coord_map(fn):
    """The map (axis, a, b) from coordinates in the bottoms of Function `fn` to those in its
    tops; UndefinedMapException where the layer type has none."""
    if fn.type_name in _CONV_LIKE:
        axis, stride, extent, pad = conv_params(fn)
        centre = (extent - 1) / 2
        if fn.type_name == 'Deconvolution':
            return axis, stride, centre - pad
        return axis, 1 / stride, (pad - centre) / stride
    if fn.type_name == 'Crop':
        axis, offset = crop_params(fn)
        # crop_param.axis is the first cropped axis; a map names the axis before its coordinates.
        return axis - 1, 1, -offset
    if fn.type_name in PASS_THROUGH_LAYERS:
        return _IDENTITY
    raise UndefinedMapException('%s has no coordinate map' % fn.type_name)


def compose(base_map, next_map):
    """The map that applies `next_map` and then `base_map`: with base (a1, b1) and next (a2, b2),
    x -> a1 * (a2 * x + b2) + b1. An axis of None takes the other's."""
    axis1, a1, b1 = base_map
    axis2, a2, b2 = next_map
    if axis1 is not None and axis2 is not None and axis1 != axis2:
        raise AxisMismatchException('cannot compose maps along axes %s and %s' % (axis1, axis2))
    axis = axis2 if axis1 is None else axis1
    return axis, a1 * a2, a1 * b2 + b1


def inverse(coord_map):
    """The map back: y = a * x + b gives x = y / a - b / a (the direction gradients flow)."""
    axis, a, b = coord_map
    return axis, 1 / a, -b / a


def _mapped_bottoms(top):
    """The bottoms whose coordinates the top's layer maps: all of them, but only the first of a
    Crop (its second bottom gives the output's size, not its coordinates)."""
    bottoms = top.fn.inputs
    return bottoms[:1] if top.fn.type_name == 'Crop' else bottoms


def _ancestor_maps(top):
    """`top` and every ancestor reachable through mapped layers, breadth first, each with the
    map from its coordinates to `top`'s (pairs, generated as found). A layer without a map ends
    its branch."""
    maps = {top: _IDENTITY}
    queue = collections.deque([top])
    while queue:
        current = queue.popleft()
        yield current, maps[current]
        try:
            layer_map = coord_map(current.fn)
        except UndefinedMapException:
            continue
        for bottom in _mapped_bottoms(current):
            if bottom not in maps:
                maps[bottom] = compose(maps[current], layer_map)
                queue.append(bottom)


def coord_map_from_to(top_from, top_to):
    """The map (axis, a, b) from coordinates in `top_from` to coordinates in `top_to`, through
    their nearest common ancestor (nearest to `top_to`, breadth first). RuntimeError when they
    share no ancestor through layers with coordinate maps."""
    from_maps = dict(_ancestor_maps(top_from))
    for ancestor, to_map in _ancestor_maps(top_to):
        if ancestor in from_maps:
            return compose(to_map, inverse(from_maps[ancestor]))
    raise RuntimeError('Could not compute map between tops; are they connected by spatial '
                       'layers?')


def crop(top_from, top_to):
    """A Crop layer (net_spec Top) that crops `top_from` to the coordinates and size of
    `top_to`: its axis and offsets come from coord_map_from_to. AssertionError when no crop
    relates them: scales other than 1, or an offset that is negative or not an integer."""
    axis, a, b = coord_map_from_to(top_from, top_to)
    if not np.all(np.asarray(a) == 1):
        raise AssertionError('scale mismatch on crop (a = {})'.format(a))
    if not np.all(np.asarray(b) <= 0):
        raise AssertionError('cannot crop negative offset (b = {})'.format(b))
    if not np.all(np.round(b) == b):
        raise AssertionError('cannot crop noninteger offset (b = {})'.format(b))
    # The map's axis is the one before the coordinates; crop_param.axis the first cropped one
    # (axis None: only point-wise layers between them, so crop the spatial axes of N, C, H, W).
    first = 2 if axis is None else axis + 1
    offsets = [int(-v) for v in np.round(np.asarray(b, dtype=np.float64).reshape(-1))]
    return L.Crop(top_from, top_to, crop_param=dict(axis=first, offset=offsets))


__all__ = ['PASS_THROUGH_LAYERS', 'AxisMismatchException', 'UndefinedMapException', 'compose',
           'conv_params', 'coord_map', 'coord_map_from_to', 'crop', 'crop_params', 'inverse']
