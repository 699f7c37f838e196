"""Caffe layer types as ONNX nodes: one converter per type, found by the type's name.

A converter is `convert(g, layer)`: g is the Graph (graph.py), layer a LayerView (the Caffe
LayerParameter, the ONNX names of its bottoms and of the tops it must produce, its parameter
blobs as arrays, and its bottoms' shapes when the net was built). It adds nodes that compute
layer.tops from layer.bottoms, or returns a list of existing value names that the tops are
(a layer that copies its input: Split, Dropout at test). Converters read only the ranks and the
non-spatial sizes of layer.bottom_shapes (channels, a weight's shape): image height and width
stay free in the graph.

Each converter computes what the runtime's layer (lib/caffe/layers/) computes, in the same
order of float32 operations where ONNX has the same operation; where ONNX's nearest operator
differs from Caffe's definition, the converter builds Caffe's from smaller operators and says
why. Parameters are read by their BVLC caffe.proto field names, so types whose messages the
project's proto lacks are written against Caffe's schema. A type that is not in CONVERTERS has
no ONNX form here; the exporter refuses it naming the layer.
"""
from dataclasses import dataclass

import numpy as np

from ..common import CaffeError

CONVERTERS = {}

# Field numbers of enums, as BVLC caffe.proto gives them (so this file needs no particular
# generated module).
_POOL_MAX, _POOL_AVE, _POOL_STOCHASTIC = 0, 1, 2
_ROUND_CEIL, _ROUND_FLOOR = 0, 1
_LRN_ACROSS, _LRN_WITHIN = 0, 1
_ELTWISE_PROD, _ELTWISE_SUM, _ELTWISE_MAX = 0, 1, 2
_REDUCE_SUM, _REDUCE_ASUM, _REDUCE_SUMSQ, _REDUCE_MEAN = 1, 2, 3, 4
_INT64_MAX = np.iinfo(np.int64).max


class ExportError(CaffeError):
    """A net or layer that cannot be written as ONNX; the message names the layer."""


@dataclass
class LayerView:
    """What a converter sees of one layer: name and type, its LayerParameter, the ONNX value
    names of its bottoms and of the tops it produces, its parameter blobs (float32 arrays) and
    the shapes of its bottoms when the net was built (use the ranks, not the spatial sizes)."""
    name: str
    type: str
    param: object
    bottoms: list
    tops: list
    blobs: list
    bottom_shapes: list

    def error(self, message):
        return ExportError('layer %r (%s): %s' % (self.name, self.type, message))

    def rank(self, i=0):
        return len(self.bottom_shapes[i])

    def axis(self, axis, i=0, field='axis'):
        """Caffe's CanonicalAxisIndex on bottom i."""
        rank = self.rank(i)
        if not -rank <= axis < rank:
            raise self.error('%s %d is out of range for a %d-D bottom' % (field, axis, rank))
        return axis % rank


def converts(*type_names):
    def wrap(fn):
        for name in type_names:
            CONVERTERS[name] = fn
        return fn
    return wrap


def _has(message, field):
    """HasField for an optional field that the message may lack (a schema without it)."""
    try:
        return message.HasField(field)
    except ValueError:
        return False


def _sub(layer, field):
    """The layer's parameter message `field` (e.g. 'elu_param'); an error naming the field when
    the project's caffe.proto does not have it."""
    try:
        return getattr(layer.param, field)
    except AttributeError:
        raise layer.error('this caffe.proto has no LayerParameter.%s' % field) from None


def _spatial(layer, message, field, prefix, n, default):
    """Per-axis values of an N-D parameter: `field` (repeated: one value for all axes or one
    per axis; optional: one value) or, for 2-D, the `<prefix>_h` / `<prefix>_w` pair."""
    h_name, w_name = prefix + '_h', prefix + '_w'
    if _has(message, h_name) or _has(message, w_name):
        if n != 2:
            raise layer.error('%s/%s are for 2-D inputs' % (h_name, w_name))
        return [getattr(message, h_name), getattr(message, w_name)]
    value = getattr(message, field)
    if hasattr(value, '__len__'):
        values = list(value)
    else:
        values = [value] if _has(message, field) else []
    if not values:
        if default is None:
            raise layer.error('%s is required' % field)
        return [default] * n
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise layer.error('%s has %d values for %d spatial axes' % (field, len(values), n))
    return values


def _weight(g, layer, i, suffix, array=None):
    return g.const(layer.blobs[i] if array is None else array, name=suffix)


def _broadcastable(array, axis, rank):
    """array (the shape of bottom axes axis .. axis + array.ndim) with trailing unit axes, so it
    broadcasts against a rank-D bottom."""
    array = np.asarray(array, dtype=np.float32)
    return array.reshape(array.shape + (1,) * (rank - axis - array.ndim))


def _out(layer, i=0):
    return [layer.tops[i]]


# Plumbing -------------------------------------------------------------------------------------

@converts('Split')
def split(g, layer):
    return [layer.bottoms[0]] * len(layer.tops)


@converts('Silence')
def silence(g, layer):
    return []


@converts('Dropout')
def dropout(g, layer):
    # Test-time Dropout (lib/caffe/layers/dropout.py): the identity, or with the fork's
    # scale_train: false a product by 1 - ratio, rounded as Caffe rounds it (1 / float(1 / (1 -
    # ratio)) with the inner quotient a float).
    p = layer.param.dropout_param
    if not _has(p, 'scale_train') or p.scale_train:
        return [layer.bottoms[0]]
    ratio = np.float32(p.dropout_ratio)
    scale = np.float32(1.0 / float(np.float32(1.0 / (1.0 - float(ratio)))))
    g.op('Mul', [layer.bottoms[0], g.const(scale)], _out(layer))


@converts('Parameter')
def parameter(g, layer):
    return [_weight(g, layer, 0, 'blob')]


@converts('DummyData')
def dummy_data(g, layer):
    # Only constant fillers are deterministic; the random ones have no fixed value to export.
    p = layer.param.dummy_data_param
    shapes = [list(s.dim) for s in p.shape] or [
        [p.num[i], p.channels[i], p.height[i], p.width[i]] for i in range(len(p.num))]
    if len(shapes) == 1:
        shapes = shapes * len(layer.tops)
    fillers = list(p.data_filler) or [None]
    if len(fillers) == 1:
        fillers = fillers * len(layer.tops)
    for i, (shape, filler) in enumerate(zip(shapes, fillers)):
        kind = filler.type if filler is not None else 'constant'
        if kind != 'constant':
            raise layer.error('data_filler %r is random; only constant DummyData is exported'
                              % kind)
        value = filler.value if filler is not None else 0.0
        g.op('ConstantOfShape', [g.ints(shape)], _out(layer, i),
             value=_float_tensor(value))


def _float_tensor(value):
    from onnx import numpy_helper
    return numpy_helper.from_array(np.array([value], dtype=np.float32))


# Vision layers --------------------------------------------------------------------------------

def _conv_attrs(layer, p):
    n = layer.rank() - 2
    if n < 1:
        raise layer.error('needs a bottom with spatial axes; got %d-D' % layer.rank())
    if _has(p, 'axis') and layer.axis(p.axis) != 1:
        raise layer.error('only channel axis 1 is exported')
    kernel = _spatial(layer, p, 'kernel_size', 'kernel', n, None)
    pad = _spatial(layer, p, 'pad', 'pad', n, 0)
    stride = _spatial(layer, p, 'stride', 'stride', n, 1)
    dilation = _spatial(layer, p, 'dilation', 'dilation', n, 1)
    return dict(kernel_shape=kernel, pads=pad + pad, strides=stride, dilations=dilation,
                group=p.group)


@converts('Convolution', 'Deconvolution')
def convolution(g, layer):
    """Caffe's output size floor((in + 2p - dil*(k-1) - 1) / s) + 1 is Conv's with pads p;
    Deconvolution's weights (in, out / group, k...) and output s*(in-1) + dil*(k-1) + 1 - 2p
    are ConvTranspose's with pads p and no output padding."""
    p = layer.param.convolution_param
    inputs = [layer.bottoms[0], _weight(g, layer, 0, 'weight')]
    if p.bias_term:
        inputs.append(_weight(g, layer, 1, 'bias'))
    op_type = 'Conv' if layer.type == 'Convolution' else 'ConvTranspose'
    g.op(op_type, inputs, _out(layer), **_conv_attrs(layer, p))


@converts('Pooling')
def pooling(g, layer):
    """Caffe's pooled size is ceil((in + 2p - k) / s) + 1, one less when padding makes the last
    window start at or past in + p; ONNX (opset 19) ceil_mode is that rule (windows that would
    start in the right padding are ignored). MAX clips windows to the input; AVE divides by the
    window clipped to in + p, which is AveragePool's count_include_pad (tested against the
    runtime in tests/caffe/test_onnx_export.py). Without padding Caffe does not drop that
    window, which only matters when the stride exceeds the kernel: refused."""
    p = layer.param.pooling_param
    method = p.pool
    if method == _POOL_STOCHASTIC:
        raise layer.error('STOCHASTIC pooling has no ONNX form (the runtime does not run it '
                          'either)')
    if layer.rank() != 4:
        raise layer.error('needs a 4-D bottom; got %d-D' % layer.rank())
    if len(layer.tops) > 1:
        raise layer.error('the argmax mask top is not exported')
    x = layer.bottoms[0]
    if p.global_pooling:
        g.op('GlobalMaxPool' if method == _POOL_MAX else 'GlobalAveragePool', [x], _out(layer))
        return
    kernel = _spatial(layer, p, 'kernel_size', 'kernel', 2, None)
    pad = _spatial(layer, p, 'pad', 'pad', 2, 0)
    stride = _spatial(layer, p, 'stride', 'stride', 2, 1)
    ceil = not (_has(p, 'round_mode') and p.round_mode == _ROUND_FLOOR)
    for k, q, s in zip(kernel, pad, stride):
        if ceil and q == 0 and s > k:
            raise layer.error('stride %d > kernel %d without padding: Caffe keeps a last window '
                              'that starts past the input (ONNX drops it)' % (s, k))
    attrs = dict(kernel_shape=kernel, pads=pad + pad, strides=stride, ceil_mode=int(ceil))
    if method == _POOL_MAX:
        g.op('MaxPool', [x], _out(layer), **attrs)
    else:
        g.op('AveragePool', [x], _out(layer), count_include_pad=1, **attrs)


@converts('LRN')
def lrn(g, layer):
    p = layer.param.lrn_param
    size = p.local_size
    if size % 2 == 0:
        raise layer.error('local_size %d must be odd' % size)
    x = layer.bottoms[0]
    if p.norm_region == _LRN_ACROSS:
        # ONNX's LRN is Caffe's: x / (k + alpha / n * sum of n squares)^beta.
        g.op('LRN', [x], _out(layer), size=size, alpha=p.alpha, beta=p.beta, bias=p.k)
        return
    # WITHIN_CHANNEL: Caffe's own construction, x * (1 + alpha * avg(x^2))^-beta with the
    # average over a size x size window padded by (size - 1) / 2 (all windows count n^2).
    pad = (size - 1) // 2
    squares = g.op('Mul', [x, x])
    mean = g.op('AveragePool', [squares], kernel_shape=[size, size], pads=[pad] * 4,
                strides=[1, 1], count_include_pad=1)
    base = g.op('Add', [g.op('Mul', [mean, g.const(p.alpha)]), g.const(1.0)])
    g.op('Mul', [x, g.op('Pow', [base, g.const(-p.beta)])], _out(layer))


@converts('ROIPooling')
def roi_pooling(g, layer):
    # ONNX's MaxRoiPool rounds the corners half away from zero, makes bins of (end - start + 1)
    # / pooled cells with floor/ceil edges clipped to the map, and gives 0 for an empty bin:
    # the Fast R-CNN fork's definition (equal outputs: tests/caffe/test_onnx_export.py).
    p = layer.param.roi_pooling_param
    g.op('MaxRoiPool', [layer.bottoms[0], _roi_rows(g, layer)], _out(layer),
         pooled_shape=[p.pooled_h, p.pooled_w], spatial_scale=p.spatial_scale)


def _roi_rows(g, layer):
    rois = layer.bottoms[1]
    if layer.rank(1) != 2:
        rois = g.op('Reshape', [rois, g.ints([-1, 5])])
    return rois


@converts('ROIWarping')
def roi_warping(g, layer):
    """docs/roi_warping.md: bilinear samples at the centres of F x F sub-bins of the box
    [x1 * s, (x2 + 1) * s) (read at index position u - 0.5), cells off the map counting 0, and
    for F > 1 the maximum of each bin's samples. RoiAlign (half_pixel) samples the same points
    but clamps a sample within one cell outside the map to the border cell, where this layer
    fades to 0: the map gets a ring of zeros (Pad 1) and the boxes move one cell (1 / s pixels)
    right and down, x2 and y2 one pixel more for the +1 extent. F > 1 samples the F-times finer
    grid with one sample per bin, then max-pools F x F (RoiAlign's own max mode weights the
    corners before taking the maximum)."""
    p = layer.param.roi_warping_param
    scale = float(p.spatial_scale)
    f = int(p.samples_per_bin) if _has(p, 'samples_per_bin') else 1
    padded = g.op('Pad', [layer.bottoms[0], g.ints([0, 0, 1, 1, 0, 0, 1, 1])])
    rois = _roi_rows(g, layer)
    index = g.op('Cast', [g.op('Slice', [rois, g.ints([0]), g.ints([1]), g.ints([1])])],
                 to=7)  # int64, truncated as the layer truncates it
    index = g.op('Reshape', [index, g.ints([-1])])
    corners = g.op('Slice', [rois, g.ints([1]), g.ints([5]), g.ints([1])])
    shift = np.float32(1.0 / scale)
    corners = g.op('Add', [corners, g.const([shift, shift, shift + 1, shift + 1])])
    warped = g.op('RoiAlign', [padded, corners, index],
                  None if f > 1 else _out(layer), mode='avg',
                  output_height=p.pooled_h * f, output_width=p.pooled_w * f, sampling_ratio=1,
                  spatial_scale=scale, coordinate_transformation_mode='half_pixel')
    if f > 1:
        g.op('MaxPool', [warped], _out(layer), kernel_shape=[f, f], strides=[f, f])


# Neurons --------------------------------------------------------------------------------------

@converts('ReLU')
def relu(g, layer):
    slope = layer.param.relu_param.negative_slope
    if slope:
        g.op('LeakyRelu', [layer.bottoms[0]], _out(layer), alpha=slope)
    else:
        g.op('Relu', [layer.bottoms[0]], _out(layer))


def _unary(op_type):
    def convert(g, layer):
        g.op(op_type, [layer.bottoms[0]], _out(layer))
    return convert


converts('Sigmoid')(_unary('Sigmoid'))
converts('TanH')(_unary('Tanh'))
converts('AbsVal')(_unary('Abs'))
# BNLL is log(1 + exp(x)), which Caffe evaluates as x + log(1 + exp(-x)) for x > 0.
converts('BNLL')(_unary('Softplus'))


@converts('ELU')
def elu(g, layer):
    g.op('Elu', [layer.bottoms[0]], _out(layer), alpha=_sub(layer, 'elu_param').alpha)


@converts('PReLU')
def prelu(g, layer):
    slope = layer.blobs[0].reshape(-1)
    if slope.size > 1:
        slope = _broadcastable(slope, 1, layer.rank())
    g.op('PRelu', [layer.bottoms[0], g.const(slope, name='slope')], _out(layer))


@converts('Threshold')
def threshold(g, layer):
    t = _sub(layer, 'threshold_param').threshold
    above = g.op('Greater', [layer.bottoms[0], g.const(t)])
    g.op('Cast', [above], _out(layer), to=1)


@converts('Clip')
def clip(g, layer):
    p = _sub(layer, 'clip_param')
    g.op('Clip', [layer.bottoms[0], g.const(p.min), g.const(p.max)],
         _out(layer))


@converts('Swish')
def swish(g, layer):
    x = layer.bottoms[0]
    beta = _sub(layer, 'swish_param').beta
    scaled = x if beta == 1 else g.op('Mul', [x, g.const(beta)])
    g.op('Mul', [x, g.op('Sigmoid', [scaled])], _out(layer))


@converts('Power')
def power(g, layer):
    # Caffe: (shift + scale * x)^power, computed as scale, then shift, then power, each step
    # skipped when it changes nothing; with scale or power 0 the output is a constant.
    p = _sub(layer, 'power_param')
    x = layer.bottoms[0]
    if p.scale == 0 or p.power == 0:
        value = 1.0 if p.power == 0 else float(np.float32(p.shift) ** np.float32(p.power))
        g.op('ConstantOfShape', [g.op('Shape', [x])], _out(layer), value=_float_tensor(value))
        return
    steps = []
    if p.scale != 1:
        steps.append(('Mul', p.scale))
    if p.shift != 0:
        steps.append(('Add', p.shift))
    if p.power != 1:
        steps.append(('Pow', p.power))
    return _chain(g, layer, x, steps)


def _chain(g, layer, x, steps):
    if not steps:
        return [x]
    for i, (op_type, value) in enumerate(steps):
        last = i == len(steps) - 1
        inputs = [x] if value is None else [x, g.const(value)]
        x = g.op(op_type, inputs, _out(layer) if last else None)
    return None


@converts('Exp')
def exp(g, layer):
    # Caffe: base^(shift + scale * x) = outer * exp(inner * x), inner = ln(base) * scale and
    # outer = base^shift, both computed once in float (base -1 means e).
    p = _sub(layer, 'exp_param')
    log_base = 1.0 if p.base == -1 else float(np.log(np.float32(p.base)))
    inner = np.float32(log_base * p.scale)
    outer = np.float32(1.0 if p.shift == 0 else (np.exp(p.shift) if p.base == -1
                                                  else np.float32(p.base) ** p.shift))
    steps = ([('Mul', inner)] if inner != 1 else []) + [('Exp', None)]
    if outer != 1:
        steps.append(('Mul', outer))
    return _chain(g, layer, layer.bottoms[0], steps)


@converts('Log')
def log(g, layer):
    # Caffe: log_base(shift + scale * x) = ln(shift + scale * x) / ln(base).
    p = _sub(layer, 'log_param')
    steps = []
    if p.scale != 1:
        steps.append(('Mul', p.scale))
    if p.shift != 0:
        steps.append(('Add', p.shift))
    steps.append(('Log', None))
    if p.base != -1:
        steps.append(('Mul', np.float32(1.0 / np.log(np.float32(p.base)))))
    return _chain(g, layer, layer.bottoms[0], steps)


# Common layers --------------------------------------------------------------------------------

@converts('InnerProduct')
def inner_product(g, layer):
    # Caffe flattens the bottom from `axis` on: (outer, K) x (N, K)^T (or (K, N) with
    # transpose) -> shape[:axis] + (N,).
    p = layer.param.inner_product_param
    axis = layer.axis(p.axis)
    weight = _weight(g, layer, 0, 'weight')
    inputs = [g.op('Flatten', [layer.bottoms[0]], axis=axis), weight]
    if p.bias_term:
        inputs.append(_weight(g, layer, 1, 'bias'))
    transposed = _has(p, 'transpose') and p.transpose
    if axis == 1:
        g.op('Gemm', inputs, _out(layer), transB=0 if transposed else 1)
        return
    y = g.op('Gemm', inputs, transB=0 if transposed else 1)
    shape = g.concat_shape([g.dims(layer.bottoms[0], 0, axis), [p.num_output]])
    g.op('Reshape', [y, shape], _out(layer))


@converts('Softmax')
def softmax(g, layer):
    axis = layer.axis(layer.param.softmax_param.axis)
    g.op('Softmax', [layer.bottoms[0]], _out(layer), axis=axis)


@converts('Reshape')
def reshape(g, layer):
    p = layer.param.reshape_param
    rank = layer.rank()
    dims = [int(d) for d in p.shape.dim]
    start = p.axis if p.axis >= 0 else rank + p.axis + 1
    end = rank if p.num_axes == -1 else start + p.num_axes
    if not 0 <= start <= end <= rank:
        raise layer.error('axis %d / num_axes %d out of range for a %d-D bottom'
                          % (p.axis, p.num_axes, rank))
    x = layer.bottoms[0]
    if start == 0 and end == rank:
        # ONNX's 0 copies the input's dimension at the same index and -1 infers one: Caffe's.
        g.op('Reshape', [x, g.ints(dims)], _out(layer))
        return
    parts = [g.dims(x, 0, start)] if start > 0 else []
    for i, d in enumerate(dims):
        parts.append(g.dim(x, start + i) if d == 0 else [d])
    if end < rank:
        parts.append(g.dims(x, end))
    g.op('Reshape', [x, g.concat_shape(parts)], _out(layer))


@converts('Flatten')
def flatten(g, layer):
    p = _sub(layer, 'flatten_param')
    rank = layer.rank()
    axis = layer.axis(p.axis)
    end = layer.axis(p.end_axis, field='end_axis')
    x = layer.bottoms[0]
    if end == rank - 1 and axis == 1:
        g.op('Flatten', [x], _out(layer), axis=1)
        return
    parts = ([g.dims(x, 0, axis)] if axis > 0 else []) + [[-1]]
    if end < rank - 1:
        parts.append(g.dims(x, end + 1))
    g.op('Reshape', [x, g.concat_shape(parts)], _out(layer))


def _legacy_axis(layer, p, legacy_field):
    if _has(p, legacy_field):
        return layer.axis(getattr(p, legacy_field), field=legacy_field)
    return layer.axis(p.axis)


@converts('Concat')
def concat(g, layer):
    axis = _legacy_axis(layer, layer.param.concat_param, 'concat_dim')
    if len(layer.bottoms) == 1:
        return [layer.bottoms[0]]
    g.op('Concat', layer.bottoms, _out(layer), axis=axis)


@converts('Slice')
def slice_(g, layer):
    p = _sub(layer, 'slice_param')
    axis = _legacy_axis(layer, p, 'slice_dim')
    x = layer.bottoms[0]
    points = list(p.slice_point)
    if not points:
        if len(layer.tops) == 1:
            return [x]
        g.op('Split', [x], list(layer.tops), axis=axis, num_outputs=len(layer.tops))
        return
    if len(points) != len(layer.tops) - 1:
        raise layer.error('%d slice_point values for %d tops' % (len(points), len(layer.tops)))
    edges = [0] + points + [_INT64_MAX]
    for i in range(len(layer.tops)):
        g.op('Slice', [x, g.ints([edges[i]]), g.ints([edges[i + 1]]), g.ints([axis])],
             _out(layer, i))


@converts('Eltwise')
def eltwise(g, layer):
    p = layer.param.eltwise_param
    xs = list(layer.bottoms)
    if p.operation == _ELTWISE_MAX:
        g.op('Max', xs, _out(layer))
        return None
    if p.operation == _ELTWISE_PROD:
        return _fold(g, layer, 'Mul', xs)
    coeffs = list(p.coeff) or [1.0] * len(xs)
    if len(coeffs) != len(xs):
        raise layer.error('%d coeff values for %d bottoms' % (len(coeffs), len(xs)))
    # The runtime adds coeff_i * x_i into the top, bottom by bottom.
    return _fold(g, layer, 'Add',
                 [x if c == 1 else g.op('Mul', [x, g.const(c)]) for x, c in zip(xs, coeffs)])


def _fold(g, layer, op_type, terms):
    """terms[0] op terms[1] op ... from the left, the last into the top (or the one term)."""
    if len(terms) == 1:
        return [terms[0]]
    total = terms[0]
    for i, term in enumerate(terms[1:], start=2):
        total = g.op(op_type, [total, term], _out(layer) if i == len(terms) else None)
    return None


@converts('BatchNorm')
def batch_norm(g, layer):
    """(x - mean) / sqrt(var + eps). With global statistics (the default at test) the stored
    sums divided by the stored weight (0 for a weight of 0), computed in float32 as the runtime
    does; BatchNormalization then runs them. Without (use_global_stats: false) the batch's mean
    and biased variance over every axis but the channels."""
    p = layer.param.batch_norm_param
    use_global = p.use_global_stats if _has(p, 'use_global_stats') else True
    eps = float(np.float32(p.eps))
    x = layer.bottoms[0]
    channels = layer.bottom_shapes[0][1]
    if use_global:
        weight = np.float32(layer.blobs[2].reshape(-1)[0])
        factor = np.float32(0) if weight == 0 else np.float32(1) / weight
        mean = factor * layer.blobs[0].astype(np.float32)
        var = factor * layer.blobs[1].astype(np.float32)
        g.op('BatchNormalization',
             [x, g.const(np.ones(channels), name='scale'), g.const(np.zeros(channels),
                                                                    name='bias'),
              g.const(mean, name='mean'), g.const(var, name='var')],
             _out(layer), epsilon=eps)
        return
    axes = g.ints([0] + list(range(2, layer.rank())))
    mean = g.op('ReduceMean', [x, axes], keepdims=1)
    centred = g.op('Sub', [x, mean])
    var = g.op('ReduceMean', [g.op('Mul', [centred, centred]), axes], keepdims=1)
    std = g.op('Sqrt', [g.op('Add', [var, g.const(eps)])])
    g.op('Div', [centred, std], _out(layer))


def _operand(g, layer, p, array=None):
    """Scale's / Bias's second operand, broadcastable against bottom 0: a parameter blob
    (array) or bottom 1, whose axes line up with bottom 0's from `axis` on."""
    rank = layer.rank()
    axis = layer.axis(p.axis) if rank else 0
    if array is not None:
        return g.const(_broadcastable(array, axis, rank), name='blob')
    trailing = rank - axis - layer.rank(1)
    if trailing == 0:
        return layer.bottoms[1]
    first = layer.rank(1)
    return g.op('Unsqueeze', [layer.bottoms[1], g.ints(range(first, first + trailing))])


@converts('Scale')
def scale(g, layer):
    # Caffe's Scale: x * scale (+ bias): the scale a blob or bottom 1, shaped as bottom 0's
    # axes axis .. axis + num_axes, broadcast over the rest.
    p = layer.param.scale_param
    two_bottoms = len(layer.bottoms) > 1
    factor = _operand(g, layer, p, None if two_bottoms else layer.blobs[0])
    if not p.bias_term:
        g.op('Mul', [layer.bottoms[0], factor], _out(layer))
        return
    product = g.op('Mul', [layer.bottoms[0], factor])
    bias = _operand(g, layer, p, layer.blobs[0 if two_bottoms else 1])
    g.op('Add', [product, bias], _out(layer))


@converts('Bias')
def bias(g, layer):
    p = _sub(layer, 'bias_param')
    operand = _operand(g, layer, p, None if len(layer.bottoms) > 1 else layer.blobs[0])
    g.op('Add', [layer.bottoms[0], operand], _out(layer))


@converts('Crop')
def crop(g, layer):
    # Caffe crops bottom 0 to bottom 1's shape on the axes from `axis` on, starting at offset
    # (one value for all of them, or one per axis).
    p = _sub(layer, 'crop_param')
    rank = layer.rank()
    axis = layer.axis(p.axis)
    n = rank - axis
    offsets = list(p.offset)
    if len(offsets) == 1:
        offsets = offsets * n
    elif not offsets:
        offsets = [0] * n
    elif len(offsets) != n:
        raise layer.error('%d offset values for %d cropped axes' % (len(offsets), n))
    starts = g.ints(offsets)
    ends = g.op('Add', [starts, g.dims(layer.bottoms[1], axis)])
    g.op('Slice', [layer.bottoms[0], starts, ends, g.ints(range(axis, rank))], _out(layer))


@converts('Tile')
def tile(g, layer):
    p = _sub(layer, 'tile_param')
    repeats = [1] * layer.rank()
    repeats[layer.axis(p.axis)] = p.tiles
    g.op('Tile', [layer.bottoms[0], g.ints(repeats)], _out(layer))


@converts('ArgMax')
def argmax(g, layer):
    """Caffe sorts (value, index) pairs in descending order, so among equal values the larger
    index comes first; TopK puts the smaller first. The axis is therefore reversed before TopK
    and the indices mapped back (d - 1 - i). Without `axis` the per-sample values are
    flattened and the top is (N, 1, k) indices, or (N, 2, k) indices then values."""
    p = _sub(layer, 'argmax_param')
    k = p.top_k
    x = layer.bottoms[0]
    rank = layer.rank()
    if _has(p, 'axis'):
        axis = layer.axis(p.axis)
        flat = x
    else:
        axis = 1
        flat = g.op('Flatten', [x], axis=1)
    reverse = g.op('Slice', [flat, g.ints([-1]), g.ints([-_INT64_MAX]), g.ints([axis]),
                             g.ints([-1])])
    values, rev_index = g.op('TopK', [reverse, g.ints([k])], num_outputs=2, axis=axis,
                             largest=1, sorted=1)
    # d - 1 as a one-element value, which broadcasts along every axis.
    last = g.op('Sub', [g.dim(flat, axis), g.ints([1])])
    index = g.op('Cast', [g.op('Sub', [last, rev_index])], to=1)
    if _has(p, 'axis'):
        g.op('Identity', [values if p.out_max_val else index], _out(layer))
        return
    parts = [index, values] if p.out_max_val else [index]
    stacked = g.op('Concat', [g.op('Unsqueeze', [t, g.ints([1])]) for t in parts], axis=1) \
        if len(parts) > 1 else g.op('Unsqueeze', [index, g.ints([1])])
    trailing = max(rank, 3) - 3
    if trailing:
        stacked = g.op('Unsqueeze', [stacked, g.ints(range(3, 3 + trailing))])
    g.op('Identity', [stacked], _out(layer))


@converts('Reduction')
def reduction(g, layer):
    # Caffe reduces every axis from `axis` on: the top has shape[:axis].
    p = _sub(layer, 'reduction_param')
    axis = layer.axis(p.axis)
    op_type = {_REDUCE_SUM: 'ReduceSum', _REDUCE_ASUM: 'ReduceL1',
               _REDUCE_SUMSQ: 'ReduceSumSquare', _REDUCE_MEAN: 'ReduceMean'}[p.operation]
    axes = g.ints(range(axis, layer.rank()))
    if p.coeff == 1:
        g.op(op_type, [layer.bottoms[0], axes], _out(layer), keepdims=0)
        return
    reduced = g.op(op_type, [layer.bottoms[0], axes], keepdims=0)
    g.op('Mul', [reduced, g.const(p.coeff)], _out(layer))


@converts('MVN')
def mvn(g, layer):
    # BVLC Caffe: x - E[x] over each sample (across_channels) or each channel of a sample;
    # with normalize_variance divided by sqrt(E[(x - E[x])^2]) + eps (eps outside the root).
    p = _sub(layer, 'mvn_param')
    first = 1 if p.across_channels else 2
    axes = g.ints(range(first, layer.rank()))
    x = layer.bottoms[0]
    centred = g.op('Sub', [x, g.op('ReduceMean', [x, axes], keepdims=1)],
                   None if p.normalize_variance else _out(layer))
    if not p.normalize_variance:
        return
    var = g.op('ReduceMean', [g.op('Mul', [centred, centred]), axes], keepdims=1)
    std = g.op('Add', [g.op('Sqrt', [var]), g.const(p.eps)])
    g.op('Div', [centred, std], _out(layer))


@converts('Embed')
def embed(g, layer):
    # Bottom values are row indices into the (input_dim, num_output) weights.
    p = _sub(layer, 'embed_param')
    index = g.op('Cast', [layer.bottoms[0]], to=7)
    weight = _weight(g, layer, 0, 'weight')
    if not p.bias_term:
        g.op('Gather', [weight, index], _out(layer), axis=0)
        return
    rows = g.op('Gather', [weight, index], axis=0)
    g.op('Add', [rows, _weight(g, layer, 1, 'bias')], _out(layer))


@converts('BatchReindex')
def batch_reindex(g, layer):
    index = g.op('Cast', [layer.bottoms[1]], to=7)
    g.op('Gather', [layer.bottoms[0], index], _out(layer), axis=0)


@converts('Filter')
def filter_(g, layer):
    # The last bottom selects the items (axis 0) whose value is not 0, for every other bottom.
    selector = g.op('Reshape', [layer.bottoms[-1], g.ints([-1])])
    keep = g.op('Not', [g.op('Equal', [selector, g.const(0.0)])])
    for i, x in enumerate(layer.bottoms[:-1]):
        g.op('Compress', [x, keep], _out(layer, i), axis=0)


@converts('Python')
def python(g, layer):
    # Python layers are the user's code; the exporter passes hooks for the ones it knows
    # (Graph.python_layers, keyed 'module.Layer').
    p = layer.param.python_param
    key = '%s.%s' % (p.module, p.layer)
    hook = g.python_layers.get(key)
    if hook is None:
        raise layer.error('Python layer %s has no ONNX form: no export hook is registered '
                          'for it' % key)
    return hook(g, layer)
