"""caffe.onnx_export: Caffe layers as ONNX nodes, run in ONNX Runtime.

Layers the runtime has are checked against the runtime's own forward pass (itself checked
against brute-force references in this folder) on two input sizes through one exported graph
(height and width are free); the other BVLC types against float64 formulas written from Caffe's
definitions. RoI pooling must agree bit for bit. Refusals name the layer and its type."""
import numpy as np
import pytest
from google.protobuf import text_format

import caffe
from caffe.onnx_export import ExportError, LayerView, build_model, export_net
from caffe.onnx_export.runner import OnnxNet
from caffe.proto import caffe_pb2

ort = pytest.importorskip('onnxruntime')


def make_net(text, seed=0, scale=1.0):
    """A TEST-phase net from prototxt text, its parameter blobs random."""
    net = caffe.Net(text_format.Parse(text, caffe_pb2.NetParameter()), caffe.TEST)
    r = np.random.RandomState(seed)
    for blobs in net.params.values():
        for b in blobs:
            b.data[...] = r.randn(*b.data.shape) * scale
    return net


def session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])


def run_onnx(sess, inputs):
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, inputs)))


def compare(net, input_sets, rtol=1e-5, exact=False, **export_kwargs):
    """Exports net once and runs it and the runtime on every input set; returns the largest
    difference relative to each output's largest magnitude."""
    sess = session(export_net(net, **export_kwargs))
    worst = 0.0
    for inputs in input_sets:
        for name, value in inputs.items():
            net.blobs[name].reshape(*value.shape)
        expected = {k: v.copy() for k, v in net.forward(**inputs).items()}
        got = run_onnx(sess, inputs)
        assert set(got) == set(expected)
        for name, value in expected.items():
            assert got[name].shape == value.shape, name
            if exact:
                np.testing.assert_array_equal(got[name], value, err_msg=name)
            scale = max(float(np.abs(value).max()), 1e-30)
            diff = float(np.abs(got[name].astype(np.float64) - value).max()) / scale
            assert diff <= rtol, (name, diff)
            worst = max(worst, diff)
    return worst


def image_inputs(*shapes, seed=1):
    r = np.random.RandomState(seed)
    return [{'data': r.randn(*s).astype(np.float32)} for s in shapes]


def data_net(layers, shape=(1, 3, 10, 12)):
    return ('input: "data" input_shape { %s }\n' % ' '.join('dim: %d' % d for d in shape)
            + layers)


# Layers the runtime has -------------------------------------------------------------------------

CONV = '''layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { %s } }'''


@pytest.mark.parametrize('params', [
    'num_output: 4 kernel_size: 3',
    'num_output: 6 kernel_size: 3 pad: 1 stride: 2 group: 3',
    'num_output: 4 kernel_h: 3 kernel_w: 1 pad_h: 1 pad_w: 0 stride_h: 1 stride_w: 2',
    'num_output: 4 kernel_size: 3 dilation: 2 pad: 2 bias_term: false',
])
def test_convolution(params):
    net = make_net(data_net(CONV % params))
    compare(net, image_inputs((1, 3, 10, 12), (2, 3, 13, 9)))


@pytest.mark.parametrize('params', [
    'pool: MAX kernel_size: 3 stride: 2',
    'pool: MAX kernel_size: 3 stride: 2 pad: 1',
    'pool: MAX kernel_size: 2 stride: 2',
    'pool: AVE kernel_size: 3 stride: 2 pad: 1',
    'pool: AVE kernel_size: 3 stride: 3 pad: 1',   # the ceil window dropped for some sizes
    'pool: MAX kernel_size: 3 stride: 3 pad: 1',
    'pool: AVE kernel_h: 2 kernel_w: 3 stride_h: 1 stride_w: 2 pad_h: 1 pad_w: 0',
    'pool: MAX global_pooling: true',
    'pool: AVE global_pooling: true',
])
def test_pooling_rounds_and_divides_as_caffe(params):
    net = make_net(data_net('layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" '
                            'pooling_param { %s } }' % params, shape=(1, 2, 10, 12)))
    sizes = [(1, 2, h, w) for h, w in ((10, 12), (11, 13), (7, 8), (5, 6), (14, 9))]
    compare(net, image_inputs(*sizes), rtol=1e-6, exact='MAX' in params)


def test_pooling_that_caffe_and_onnx_round_differently_is_refused():
    net = make_net(data_net('layer { name: "sparse" type: "Pooling" bottom: "data" '
                            'top: "p" pooling_param { pool: MAX kernel_size: 1 stride: 2 } }'))
    with pytest.raises(ExportError, match="'sparse' \\(Pooling\\).*stride 2 > kernel 1"):
        export_net(net)


@pytest.mark.parametrize('params', [
    'local_size: 5 alpha: 0.0001 beta: 0.75',
    'local_size: 3 alpha: 0.00005 beta: 0.75 k: 2',
    'local_size: 3 alpha: 0.1 beta: 0.75 norm_region: WITHIN_CHANNEL',
])
def test_lrn(params):
    net = make_net(data_net('layer { name: "norm" type: "LRN" bottom: "data" top: "norm" '
                            'lrn_param { %s } }' % params, shape=(1, 7, 6, 5)))
    inputs = image_inputs((1, 7, 6, 5), (1, 7, 9, 4))
    for x in inputs:
        x['data'] *= 20
    compare(net, inputs)


@pytest.mark.parametrize('slope', [0, 0.1])
def test_relu_in_place_and_as_output(slope):
    net = make_net(data_net(CONV % 'num_output: 3 kernel_size: 1' +
                            'layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" '
                            'relu_param { negative_slope: %g } }' % slope))
    model = export_net(net)
    assert [o.name for o in model.graph.output] == ['conv']
    compare(net, image_inputs((1, 3, 10, 12), (1, 3, 4, 4)))


@pytest.mark.parametrize('params, shape', [
    ('num_output: 5', (2, 3, 4, 5)),
    ('num_output: 5 bias_term: false', (2, 3, 4, 5)),
    ('num_output: 5 axis: 2', (2, 3, 4, 5)),
    ('num_output: 5 transpose: true', (2, 12)),
])
def test_inner_product(params, shape):
    net = make_net(data_net('layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" '
                            'inner_product_param { %s } }' % params, shape=shape))
    compare(net, image_inputs(shape), dynamic_axes={'data': {0: 'batch'}})


@pytest.mark.parametrize('text', [
    'layer { name: "s" type: "Softmax" bottom: "data" top: "s" }',
    'layer { name: "s" type: "Softmax" bottom: "data" top: "s" softmax_param { axis: 2 } }',
    'layer { name: "r" type: "Reshape" bottom: "data" top: "r" '
    '  reshape_param { shape { dim: 0 dim: 2 dim: -1 dim: 0 } } }',
    'layer { name: "r" type: "Reshape" bottom: "data" top: "r" '
    '  reshape_param { shape { dim: -1 } axis: 1 } }',
    'layer { name: "r" type: "Reshape" bottom: "data" top: "r" '
    '  reshape_param { shape { dim: 0 dim: 1 } axis: 1 num_axes: 1 } }',
    'layer { name: "c" type: "Concat" bottom: "data" bottom: "data" top: "c" }',
    'layer { name: "c" type: "Concat" bottom: "data" bottom: "data" top: "c" '
    '  concat_param { concat_dim: 3 } }',
    'layer { name: "e" type: "Eltwise" bottom: "data" bottom: "data" bottom: "data" top: "e" '
    '  eltwise_param { operation: SUM coeff: 0.5 coeff: -2 coeff: 1 } }',
    'layer { name: "e" type: "Eltwise" bottom: "data" bottom: "data" top: "e" '
    '  eltwise_param { operation: PROD } }',
    'layer { name: "a" type: "Dropout" bottom: "data" top: "a" } '
    'layer { name: "e" type: "Eltwise" bottom: "data" bottom: "a" top: "e" '
    '  eltwise_param { operation: MAX } }',
    'layer { name: "d" type: "Dropout" bottom: "data" top: "d" '
    '  dropout_param { dropout_ratio: 0.3 scale_train: false } }',
    'layer { name: "d" type: "Dropout" bottom: "data" top: "d" '
    '  dropout_param { dropout_ratio: 0.5 } }'
    'layer { name: "s" type: "Scale" bottom: "d" top: "d" scale_param { bias_term: true } }',
    'layer { name: "s" type: "Scale" bottom: "data" top: "s" '
    '  scale_param { axis: 1 num_axes: 2 } }',
    'layer { name: "s" type: "Scale" bottom: "data" top: "s" scale_param { num_axes: 0 } }',
    'layer { name: "p" type: "Pooling" bottom: "data" top: "p" '
    '  pooling_param { pool: AVE global_pooling: true } } '
    'layer { name: "r" type: "Reshape" bottom: "p" top: "r" '
    '  reshape_param { shape { dim: 0 dim: -1 } } } '
    'layer { name: "s" type: "Scale" bottom: "data" bottom: "r" top: "s" '
    '  scale_param { axis: 0 bias_term: true } }',
    'layer { name: "b" type: "Bias" bottom: "data" top: "b" }',
    'layer { name: "split" type: "Split" bottom: "data" top: "x" top: "y" } '
    'layer { name: "e" type: "Eltwise" bottom: "x" bottom: "y" top: "e" } '
    'layer { name: "z" type: "Silence" bottom: "e" }'
    'layer { name: "relu" type: "ReLU" bottom: "y" top: "out" }',
])
def test_common_layers(text):
    net = make_net(data_net(text, shape=(2, 3, 4, 5)))
    compare(net, image_inputs((2, 3, 4, 5), (2, 3, 4, 2)))


def batch_norm_net(extra=''):
    net = make_net(data_net('layer { name: "bn" type: "BatchNorm" bottom: "data" top: "y" '
                            '%s } layer { name: "scale" type: "Scale" bottom: "y" '
                            'top: "y" scale_param { bias_term: true } }' % extra,
                            shape=(2, 4, 5, 6)))
    r = np.random.RandomState(3)
    mean, var, weight = net.params['bn']
    mean.data[...] = r.randn(4) * 7
    var.data[...] = r.uniform(0.5, 3, 4) * 7
    weight.data[...] = 7
    return net


def test_batch_norm_with_saved_statistics_and_scale():
    compare(batch_norm_net(), image_inputs((2, 4, 5, 6), (1, 4, 3, 8)))


def test_batch_norm_with_batch_statistics():
    net = batch_norm_net('batch_norm_param { use_global_stats: false }')
    compare(net, image_inputs((2, 4, 5, 6), (3, 4, 3, 8)), rtol=1e-5)


def test_dummy_data_constant():
    net = make_net(data_net('layer { name: "d" type: "DummyData" top: "d" dummy_data_param { '
                            'shape { dim: 2 dim: 3 } data_filler { type: "constant" '
                            'value: 2.5 } } } '
                            'layer { name: "z" type: "Silence" bottom: "data" }'))
    got = run_onnx(session(export_net(net)), image_inputs((1, 3, 10, 12))[0])
    np.testing.assert_array_equal(got['d'], np.full((2, 3), 2.5, np.float32))


# RoI layers -------------------------------------------------------------------------------------

def roi_net(layer_type, params, channels=3):
    return make_net('input: "data" input_shape { dim: 2 dim: %d dim: 9 dim: 11 } '
                    'input: "rois" input_shape { dim: 1 dim: 5 } '
                    'layer { name: "pool" type: "%s" bottom: "data" bottom: "rois" top: "pool" '
                    '%s }' % (channels, layer_type, params))


def random_rois(r, count, height, width, stride):
    """Boxes in image pixels of every kind: inside, across and beyond the borders, tiny,
    reversed, and corners on exact halves of a cell (where rounding matters)."""
    rois = np.zeros((count, 5), np.float32)
    rois[:, 0] = r.randint(0, 2, count)
    extent = np.array([width, height, width, height]) * stride
    rois[:, 1:] = r.uniform(-0.2, 1.2, (count, 4)) * extent
    rois[::4, 1:] = np.round(rois[::4, 1:] / (stride / 2.0)) * (stride / 2.0)
    rois[1::5, 3:] = rois[1::5, 1:3] + r.uniform(0, 2, (len(rois[1::5]), 2))
    return rois


@pytest.mark.parametrize('scale', [0.0625, 0.125, 1 / 12.0])
def test_roi_pooling_equals_caffe_bit_for_bit(scale):
    net = roi_net('ROIPooling', 'roi_pooling_param { pooled_h: 3 pooled_w: 4 spatial_scale: '
                  '%r }' % float(np.float32(scale)))
    r = np.random.RandomState(5)
    sets = []
    for height, width in ((9, 11), (6, 14), (13, 5)):
        rois = random_rois(r, 60, height, width, 1 / scale)
        sets.append({'data': r.randn(2, 3, height, width).astype(np.float32), 'rois': rois})
    compare(net, sets, exact=True, dynamic_axes={'rois': {0: 'rois'}})


@pytest.mark.parametrize('samples', [1, 2, 3])
def test_roi_warping(samples):
    net = roi_net('ROIWarping', 'roi_warping_param { pooled_h: 3 pooled_w: 2 spatial_scale: '
                  '0.0625 samples_per_bin: %d }' % samples)
    r = np.random.RandomState(6)
    sets = []
    for height, width in ((9, 11), (5, 16)):
        rois = random_rois(r, 50, height, width, 16)
        rois[::7, 3] = rois[::7, 1] - r.uniform(1.5, 40, len(rois[::7]))  # mirrored boxes
        sets.append({'data': r.randn(2, 3, height, width).astype(np.float32), 'rois': rois})
    compare(net, sets, rtol=1e-5, dynamic_axes={'rois': {0: 'rois'}})


# BVLC types the runtime does not have: against Caffe's formulas -------------------------------

def layer_view(text, bottom_shapes, blobs=()):
    """A LayerView of one layer (bottoms b0, b1, ...); skipped when this caffe.proto lacks the
    layer's parameter message (BVLC's full schema has it)."""
    try:
        param = text_format.Parse(text, caffe_pb2.LayerParameter())
    except text_format.ParseError as e:
        pytest.skip('this caffe.proto lacks a field of %r (%s)' % (text, e))
    return LayerView(param.name, param.type, param, ['b%d' % i for i in range(len(bottom_shapes))],
                     list(param.top), [np.asarray(b, np.float32) for b in blobs],
                     [tuple(s) for s in bottom_shapes])


def run_view(view, *arrays):
    """The layer's ONNX outputs for the bottoms `arrays`, every axis of the inputs free."""
    inputs = [(name, ['%s_%d' % (name, i) for i in range(len(shape))])
              for name, shape in zip(view.bottoms, view.bottom_shapes)]
    try:
        model = build_model([view], inputs, [(t, None) for t in view.tops])
    except ExportError as e:
        if 'this caffe.proto has no' not in str(e):
            raise
        pytest.skip(str(e))
    feed = {name: np.asarray(a, np.float32) for name, a in zip(view.bottoms, arrays)}
    outputs = session(model).run(None, feed)
    return outputs[0] if len(outputs) == 1 else outputs


def one(type_name, params='', tops=('y',)):
    return 'name: "l" type: "%s" %s %s' % (type_name, ' '.join('top: "%s"' % t for t in tops),
                                           params)


X = np.random.RandomState(7).randn(2, 3, 4, 5).astype(np.float32) * 3
X64 = X.astype(np.float64)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize('type_name, params, reference', [
    ('Sigmoid', '', sigmoid),
    ('TanH', '', np.tanh),
    ('AbsVal', '', np.abs),
    ('BNLL', '', lambda x: np.where(x > 0, x + np.log1p(np.exp(-x)), np.log1p(np.exp(x)))),
    ('ELU', 'elu_param { alpha: 0.7 }', lambda x: np.where(x > 0, x, 0.7 * (np.exp(x) - 1))),
    ('Threshold', 'threshold_param { threshold: 0.5 }', lambda x: (x > 0.5) * 1.0),
    ('Clip', 'clip_param { min: -1 max: 2 }', lambda x: np.clip(x, -1, 2)),
    ('Swish', 'swish_param { beta: 1.5 }', lambda x: x * sigmoid(1.5 * x)),
    ('Power', 'power_param { power: 2 scale: 0.5 shift: 1 }', lambda x: (1 + 0.5 * x) ** 2),
    ('Power', 'power_param { power: 0.5 scale: 0.1 shift: 2 }', lambda x: (2 + 0.1 * x) ** 0.5),
    ('Power', 'power_param { power: 3 scale: 0 shift: 2 }', lambda x: np.full_like(x, 8.0)),
    ('Power', '', lambda x: x),
    ('Exp', '', np.exp),
    ('Exp', 'exp_param { base: 2 scale: 0.5 shift: 1 }', lambda x: 2.0 ** (1 + 0.5 * x)),
    ('Log', 'log_param { scale: 0.1 shift: 2 }', lambda x: np.log(2 + 0.1 * x)),
    ('Log', 'log_param { base: 10 scale: 0.2 shift: 3 }', lambda x: np.log10(3 + 0.2 * x)),
])
def test_neurons(type_name, params, reference):
    view = layer_view(one(type_name, params), [X.shape])
    np.testing.assert_allclose(run_view(view, X), reference(X64), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize('shared', [False, True])
def test_prelu(shared):
    slope = np.array([0.5] if shared else [0.1, -0.2, 0.3])
    view = layer_view(one('PReLU', 'prelu_param { channel_shared: %s }' % str(shared).lower()),
                      [X.shape], [slope])
    expected = np.where(X64 > 0, X64, X64 * slope.reshape(-1, 1, 1))
    np.testing.assert_allclose(run_view(view, X), expected, rtol=1e-6)


@pytest.mark.parametrize('params, shape', [
    ('', (2, 60)), ('flatten_param { axis: 2 }', (2, 3, 20)),
    ('flatten_param { axis: 1 end_axis: 2 }', (2, 12, 5)), ('flatten_param { axis: 0 }', (120,)),
])
def test_flatten(params, shape):
    view = layer_view(one('Flatten', params), [X.shape])
    np.testing.assert_array_equal(run_view(view, X), X.reshape(shape))


def test_slice_at_points_and_evenly():
    view = layer_view(one('Slice', 'slice_param { axis: 3 slice_point: 1 slice_point: 3 }',
                          ('a', 'b', 'c')), [X.shape])
    for got, want in zip(run_view(view, X), np.split(X, [1, 3], axis=3)):
        np.testing.assert_array_equal(got, want)
    view = layer_view(one('Slice', 'slice_param { slice_dim: 0 }', ('a', 'b')), [X.shape])
    for got, want in zip(run_view(view, X), np.split(X, 2, axis=0)):
        np.testing.assert_array_equal(got, want)


def deconvolution_reference(x, w, b, stride, pad, dilation, group):
    """Each input pixel scatters its weighted kernel into the output (Caffe's col2im view)."""
    n, cin, h, wd = x.shape
    cout_g, k = w.shape[1], w.shape[2]
    oh = stride * (h - 1) + dilation * (k - 1) + 1 - 2 * pad
    ow = stride * (wd - 1) + dilation * (k - 1) + 1 - 2 * pad
    out = np.zeros((n, cout_g * group, oh + 2 * pad, ow + 2 * pad))
    cin_g = cin // group
    for i in range(n):
        for c in range(cin):
            g = c // cin_g
            for y in range(h):
                for xx in range(wd):
                    for ky in range(k):
                        for kx in range(k):
                            out[i, g * cout_g:(g + 1) * cout_g, y * stride + ky * dilation,
                                xx * stride + kx * dilation] += x[i, c, y, xx] * w[c, :, ky, kx]
    out = out[:, :, pad:pad + oh, pad:pad + ow]
    return out + b.reshape(1, -1, 1, 1)


@pytest.mark.parametrize('stride, pad, dilation, group', [(2, 1, 1, 1), (1, 0, 2, 3),
                                                          (3, 2, 1, 1)])
def test_deconvolution(stride, pad, dilation, group):
    r = np.random.RandomState(8)
    w = r.randn(3, 2, 3, 3)
    b = r.randn(2 * group)
    view = layer_view(one('Deconvolution', 'convolution_param { num_output: %d kernel_size: 3 '
                          'stride: %d pad: %d dilation: %d group: %d }'
                          % (2 * group, stride, pad, dilation, group)), [X.shape], [w, b])
    np.testing.assert_allclose(run_view(view, X),
                               deconvolution_reference(X64, w, b, stride, pad, dilation, group),
                               rtol=1e-5, atol=1e-5)


def test_crop_to_the_second_bottom():
    view = layer_view(one('Crop', 'crop_param { axis: 2 offset: 1 offset: 2 }'),
                      [X.shape, (1, 1, 2, 3)])
    np.testing.assert_array_equal(run_view(view, X, np.zeros((1, 1, 2, 3))), X[:, :, 1:3, 2:5])
    view = layer_view(one('Crop', 'crop_param { axis: 1 offset: 1 }'), [X.shape, (1, 2, 3, 3)])
    np.testing.assert_array_equal(run_view(view, X, np.zeros((1, 2, 3, 3))), X[:, 1:3, 1:4, 1:4])


def test_tile():
    view = layer_view(one('Tile', 'tile_param { axis: 2 tiles: 3 }'), [X.shape])
    np.testing.assert_array_equal(run_view(view, X), np.tile(X, (1, 1, 3, 1)))


def argmax_reference(x, k, axis, out_max_val):
    """Caffe: (value, index) pairs sorted in descending order, so equal values list the larger
    index first."""
    def top(values):
        pairs = sorted(((v, j) for j, v in enumerate(values)), reverse=True)[:k]
        return [j for _, j in pairs], [v for v, _ in pairs]
    if axis is None:
        flat = x.reshape(x.shape[0], -1)
        rows = [top(row) for row in flat]
        index = np.array([r[0] for r in rows], np.float64)[:, None, :]
        if out_max_val:
            index = np.concatenate([index, np.array([r[1] for r in rows])[:, None, :]], axis=1)
        return index.reshape(index.shape + (1,) * (x.ndim - 3))
    moved = np.moveaxis(x, axis, -1)
    out = np.zeros(moved.shape[:-1] + (k,))
    for pos in np.ndindex(moved.shape[:-1]):
        index, values = top(moved[pos])
        out[pos] = values if out_max_val else index
    return np.moveaxis(out, -1, axis)


@pytest.mark.parametrize('params, k, axis, out_max_val', [
    ('', 1, None, False), ('argmax_param { top_k: 3 out_max_val: true }', 3, None, True),
    ('argmax_param { axis: 1 top_k: 2 }', 2, 1, False),
    ('argmax_param { axis: 3 out_max_val: true }', 1, 3, True),
])
def test_argmax_breaks_ties_as_caffe(params, k, axis, out_max_val):
    x = np.round(X)  # many ties
    view = layer_view(one('ArgMax', params), [x.shape])
    np.testing.assert_array_equal(run_view(view, x),
                                  argmax_reference(x.astype(np.float64), k, axis, out_max_val))


@pytest.mark.parametrize('operation, axis, coeff, reference', [
    ('SUM', 0, 1, lambda x, a: x.sum()),
    ('ASUM', 1, 2, lambda x, a: 2 * np.abs(x).reshape(x.shape[:a] + (-1,)).sum(-1)),
    ('SUMSQ', 2, 1, lambda x, a: (x ** 2).reshape(x.shape[:a] + (-1,)).sum(-1)),
    ('MEAN', -1, 0.5, lambda x, a: 0.5 * x.mean(axis=-1)),
])
def test_reduction(operation, axis, coeff, reference):
    view = layer_view(one('Reduction', 'reduction_param { operation: %s axis: %d coeff: %g }'
                          % (operation, axis, coeff)), [X.shape])
    np.testing.assert_allclose(run_view(view, X), reference(X64, axis % 4), rtol=1e-5)


@pytest.mark.parametrize('variance, across', [(True, False), (False, False), (True, True)])
def test_mvn(variance, across):
    view = layer_view(one('MVN', 'mvn_param { normalize_variance: %s across_channels: %s '
                          'eps: 0.001 }' % (str(variance).lower(), str(across).lower())),
                      [X.shape])
    axes = (1, 2, 3) if across else (2, 3)
    centred = X64 - X64.mean(axis=axes, keepdims=True)
    if variance:
        centred /= np.sqrt((centred ** 2).mean(axis=axes, keepdims=True)) + 0.001
    np.testing.assert_allclose(run_view(view, X), centred, rtol=1e-5, atol=1e-6)


def test_embed_batch_reindex_filter_parameter():
    r = np.random.RandomState(9)
    w, b = r.randn(6, 4), r.randn(4)
    index = np.array([[0, 5, 2], [3, 3, 1]], np.float32)
    view = layer_view(one('Embed', 'embed_param { num_output: 4 input_dim: 6 }'),
                      [index.shape], [w, b])
    np.testing.assert_allclose(run_view(view, index), w[index.astype(int)] + b, rtol=1e-6)
    view = layer_view(one('BatchReindex'), [X.shape, (3,)])
    np.testing.assert_array_equal(run_view(view, X, [1, 0, 1]), X[[1, 0, 1]])
    view = layer_view(one('Filter', tops=('y', 'z')), [X.shape, X.shape[:1] + (3,), (2, 1)])
    other = r.randn(2, 3)
    got = run_view(view, X, other, [[0], [1]])
    np.testing.assert_array_equal(got[0], X[1:])
    np.testing.assert_allclose(got[1], other[1:], rtol=1e-7)
    blob = r.randn(2, 3)
    view = layer_view(one('Parameter', 'parameter_param { shape { dim: 2 dim: 3 } }'), [],
                      [blob])
    model = build_model([view], [], [('y', 2)])
    np.testing.assert_allclose(session(model).run(None, {})[0], blob, rtol=1e-7)


# The exporter's rules ---------------------------------------------------------------------------

def test_python_layer_without_a_hook_is_refused_by_name_and_type():
    net = make_net(data_net('layer { name: "twice" type: "Python" bottom: "data" top: "y" '
                            'python_param { module: "net_test_layers" layer: "Scale" '
                            'param_str: "2" } }'))
    with pytest.raises(ExportError, match="layer 'twice' \\(Python\\): Python layer "
                                          "net_test_layers.Scale has no ONNX form"):
        export_net(net)

    def hook(g, layer):
        factor = float(layer.param.python_param.param_str)
        g.op('Mul', [layer.bottoms[0], g.const(factor)], [layer.tops[0]])
    compare(net, image_inputs((1, 3, 10, 12)), python_layers={'net_test_layers.Scale': hook})


def test_a_type_without_onnx_form_is_refused_by_name_and_type():
    net = make_net('input: "data" input_shape { dim: 2 dim: 3 } '
                   'input: "label" input_shape { dim: 2 } '
                   'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "data" '
                   'bottom: "label" top: "loss" }')
    with pytest.raises(ExportError, match="layer 'loss' of type SoftmaxWithLoss has no ONNX "
                                          "form"):
        export_net(net)


def test_train_phase_is_refused():
    param = text_format.Parse(data_net(CONV % 'num_output: 2 kernel_size: 1'),
                              caffe_pb2.NetParameter())
    with pytest.raises(ExportError, match='TEST-phase'):
        export_net(caffe.Net(param, caffe.TRAIN))


def test_graph_inputs_are_free_in_batch_height_and_width_and_checked(tmp_path):
    net = make_net(data_net(CONV % 'num_output: 2 kernel_size: 3'))
    model = export_net(net)  # onnx.checker (full check) runs inside
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ['batch', 3, 'height', 'width']
    path = str(tmp_path / 'conv.onnx')
    with open(path, 'wb') as f:
        f.write(model.SerializeToString())
    runner = OnnxNet(path)
    assert runner.inputs == ['data'] and runner.outputs == ['conv']
    x = image_inputs((3, 3, 7, 20))[0]['data']
    runner.blobs['data'].reshape(*x.shape)
    out = runner.forward(data=x)
    net.blobs['data'].reshape(*x.shape)
    np.testing.assert_allclose(out['conv'], net.forward(data=x)['conv'], rtol=1e-5, atol=1e-5)
    assert runner.blobs['conv'].data is out['conv']
    with pytest.raises(caffe.CaffeError, match='not inputs of the graph'):
        runner.forward(image=x)


def test_runner_names_a_missing_or_bad_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        OnnxNet(str(tmp_path / 'none.onnx'))
    bad = tmp_path / 'bad.onnx'
    bad.write_bytes(b'not a model')
    with pytest.raises(caffe.CaffeError, match='bad.onnx: ONNX Runtime cannot load it'):
        OnnxNet(str(bad))
