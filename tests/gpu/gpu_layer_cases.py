"""Layer cases for the CPU/GPU comparisons: every built-in layer type, with the parameters and
inputs that reach its edge cases (ties for max-based layers, padding, groups, ignored labels,
degenerate RoIs, ...). Used by test_layers_gpu.py (a real GPU) and test_layers_emulated.py (the
CPU emulator of the GPU backend).

run_layer(case, gpu) builds the layer in the chosen mode, runs forward, then backward with fixed
top diffs, parameter diffs preset to a nonzero value (gradients must accumulate onto it) and
bottom diffs preset to a sentinel (a path that forgets to write them shows). The CPU path is the
reference; `exact` cases must agree bit for bit (only +, -, *, / in the CPU code's order, and
max/compare), the others within float32 tolerances (exp/log/pow, and sums the libraries order
differently).
"""
import collections

import numpy as np

import caffe
from caffe.testing import build_layer

Case = collections.namedtuple('Case', 'name text bottoms phase exact in_place grad prepare params')
SENTINEL = 0.25
PARAM_DIFF = 0.5


def case(name, text, bottoms, phase=caffe.TRAIN, exact=True, in_place=False, grad=None,
         prepare=None, params=None):
    """bottoms: function of a RandomState giving the bottom arrays; grad: check_gradient
    keyword arguments for the GPU gradient check, or None to skip it; prepare: function of
    (layer, RandomState) run after setup, for layers fed from outside the net (MemoryData);
    params: function of a RandomState giving the parameter values (default: the layer's
    fillers)."""
    return Case(name, text, bottoms, phase, exact, in_place, grad, prepare, params)


def _memory_arrays(layer, rs):
    data = rs.randn(6, 2, 3, 2).astype(np.float32)
    labels = rs.randint(0, 5, size=(6, 1, 1, 1)).astype(np.float32)
    layer.reset(data, labels)


def _randn(rs, *shape):
    return rs.randn(*shape).astype(np.float32)


def _distinct(rs, *shape):
    # Values at least 0.1 apart: no ties, and +-0.01 steps never change a max.
    n = int(np.prod(shape))
    return (rs.permutation(n).astype(np.float32) * 0.1 - 0.05 * n).reshape(shape)


def _ties(rs, *shape):
    # Few distinct values: max-based layers must break ties as the CPU code does.
    return rs.randint(-2, 3, size=shape).astype(np.float32)


def _conv(params, bottoms=('x',), tops=('y',)):
    return ('name: "conv" type: "Convolution" %s %s convolution_param { %s '
            'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" } }'
            % (' '.join('bottom: "%s"' % b for b in bottoms),
               ' '.join('top: "%s"' % t for t in tops), params))


def _pool(params, tops=('y',)):
    return ('name: "pool" type: "Pooling" bottom: "x" %s pooling_param { %s }'
            % (' '.join('top: "%s"' % t for t in tops), params))


def _rois(rs, n_images, height, width, count, scale):
    """RoIs in image coordinates for features of (height, width) at spatial_scale `scale`,
    some degenerate (end before start, one pixel, beyond the image)."""
    rois = []
    for _ in range(count):
        x1, x2 = sorted(rs.uniform(-2, width / scale + 2, size=2))
        y1, y2 = sorted(rs.uniform(-2, height / scale + 2, size=2))
        rois.append([rs.randint(n_images), x1, y1, x2, y2])
    rois += [[0, 30, 30, 10, 10], [n_images - 1, 5, 5, 5, 5], [0, -40, -40, -20, -20]]
    return np.array(rois, np.float32)


def _labels(rs, shape, classes, ignore=None):
    labels = rs.randint(classes, size=shape).astype(np.float32)
    if ignore is not None:
        labels.flat[::4] = ignore
    return labels


CASES = [
    case('relu', 'name: "r" type: "ReLU" bottom: "x" top: "y"',
         lambda rs: [_randn(rs, 2, 3, 4, 5)], grad=dict(kink=0.0, kink_range=0.02)),
    case('relu_leaky_in_place', 'name: "r" type: "ReLU" bottom: "x" top: "x" '
         'relu_param { negative_slope: 0.1 }', lambda rs: [_randn(rs, 3, 7)], in_place=True),
    case('dropout_train', 'name: "d" type: "Dropout" bottom: "x" top: "y" '
         'dropout_param { dropout_ratio: 0.3 }', lambda rs: [_randn(rs, 4, 50)]),
    case('dropout_train_no_scale_in_place', 'name: "d" type: "Dropout" bottom: "x" top: "x" '
         'dropout_param { dropout_ratio: 0.5 scale_train: false }',
         lambda rs: [_randn(rs, 4, 50)], in_place=True),
    case('dropout_test', 'name: "d" type: "Dropout" bottom: "x" top: "y" '
         'dropout_param { dropout_ratio: 0.3 }', lambda rs: [_randn(rs, 4, 50)],
         phase=caffe.TEST),
    case('dropout_test_no_scale', 'name: "d" type: "Dropout" bottom: "x" top: "y" '
         'dropout_param { dropout_ratio: 0.5 scale_train: false }',
         lambda rs: [_randn(rs, 4, 50)], phase=caffe.TEST),
    case('inner_product', 'name: "ip" type: "InnerProduct" bottom: "x" top: "y" '
         'inner_product_param { num_output: 7 weight_filler { type: "gaussian" std: 0.3 } '
         'bias_filler { type: "gaussian" } }', lambda rs: [_randn(rs, 5, 3, 2, 2)], exact=False,
         grad=dict(max_checks=20)),
    case('inner_product_transpose_axis2', 'name: "ip" type: "InnerProduct" bottom: "x" '
         'top: "y" inner_product_param { num_output: 6 transpose: true axis: 2 '
         'weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "gaussian" } }',
         lambda rs: [_randn(rs, 2, 3, 4, 2)], exact=False, grad=dict(max_checks=20)),
    case('inner_product_no_bias', 'name: "ip" type: "InnerProduct" bottom: "x" top: "y" '
         'inner_product_param { num_output: 4 bias_term: false '
         'weight_filler { type: "gaussian" std: 0.3 } }', lambda rs: [_randn(rs, 3, 10)],
         exact=False),
    case('softmax', 'name: "s" type: "Softmax" bottom: "x" top: "y"',
         lambda rs: [_randn(rs, 2, 5, 3, 4)], exact=False, grad=dict(max_checks=20)),
    case('softmax_rows', 'name: "s" type: "Softmax" bottom: "x" top: "y"',
         lambda rs: [_randn(rs, 30, 21) * 5], exact=False),
    case('softmax_loss', 'name: "l" type: "SoftmaxWithLoss" bottom: "x" bottom: "t" '
         'top: "loss"', lambda rs: [_randn(rs, 3, 4, 2, 5), _labels(rs, (3, 1, 2, 5), 4)],
         exact=False, grad=dict(check_bottom=[0], max_checks=15)),
    case('softmax_loss_ignore_prob', 'name: "l" type: "SoftmaxWithLoss" bottom: "x" '
         'bottom: "t" top: "loss" top: "prob" loss_param { ignore_label: -1 }',
         lambda rs: [_randn(rs, 2, 2, 18, 7), _labels(rs, (2, 1, 18, 7), 2, ignore=-1)],
         exact=False),
    case('softmax_loss_batch_size', 'name: "l" type: "SoftmaxWithLoss" bottom: "x" bottom: "t" '
         'top: "loss" loss_param { normalize: false ignore_label: 2 }',
         lambda rs: [_randn(rs, 16, 5), _labels(rs, (16,), 5, ignore=2)], exact=False),
    case('smooth_l1', 'name: "l" type: "SmoothL1Loss" bottom: "p" bottom: "t" top: "loss"',
         lambda rs: [_randn(rs, 4, 8), _randn(rs, 4, 8)],
         grad=dict(max_checks=20)),
    case('smooth_l1_weights_sigma3', 'name: "l" type: "SmoothL1Loss" bottom: "p" bottom: "t" '
         'bottom: "in" bottom: "out" top: "loss" smooth_l1_loss_param { sigma: 3.0 }',
         lambda rs: [_randn(rs, 2, 12, 3, 4), _randn(rs, 2, 12, 3, 4),
                     (rs.rand(2, 12, 3, 4) > 0.3).astype(np.float32),
                     rs.rand(2, 12, 3, 4).astype(np.float32)],
         grad=dict(check_bottom=[0, 1], max_checks=25)),
    case('roi_pooling', 'name: "roi" type: "ROIPooling" bottom: "x" bottom: "rois" top: "y" '
         'roi_pooling_param { pooled_h: 3 pooled_w: 2 spatial_scale: 0.25 }',
         lambda rs: [_distinct(rs, 2, 3, 9, 11), _rois(rs, 2, 9, 11, 12, 0.25)],
         grad=dict(check_bottom=[0], max_checks=40)),
    case('roi_pooling_ties_7x7', 'name: "roi" type: "ROIPooling" bottom: "x" bottom: "rois" '
         'top: "y" roi_pooling_param { pooled_h: 7 pooled_w: 7 spatial_scale: 0.0625 }',
         lambda rs: [_ties(rs, 1, 4, 14, 19), _rois(rs, 1, 14, 19, 20, 0.0625)]),
    case('roi_warping', 'name: "w" type: "ROIWarping" bottom: "x" bottom: "rois" top: "y" '
         'roi_warping_param { pooled_h: 3 pooled_w: 2 spatial_scale: 0.25 }',
         lambda rs: [_randn(rs, 2, 3, 9, 11), _rois(rs, 2, 9, 11, 12, 0.25)],
         grad=dict(check_bottom=[0], max_checks=40)),
    case('roi_warping_2x2_ties_7x7', 'name: "w" type: "ROIWarping" bottom: "x" bottom: "rois" '
         'top: "y" roi_warping_param { pooled_h: 7 pooled_w: 7 spatial_scale: 0.0625 '
         'samples_per_bin: 2 }',
         lambda rs: [_ties(rs, 1, 4, 14, 19), _rois(rs, 1, 14, 19, 20, 0.0625)]),
    case('roi_warping_3x3_overlapping', 'name: "w" type: "ROIWarping" bottom: "x" '
         'bottom: "rois" top: "y" roi_warping_param { pooled_h: 2 pooled_w: 3 '
         'spatial_scale: 0.5 samples_per_bin: 3 }',
         lambda rs: [_randn(rs, 2, 2, 6, 8), _rois(rs, 2, 6, 8, 40, 0.5)]),
    case('reshape', 'name: "r" type: "Reshape" bottom: "x" top: "y" '
         'reshape_param { shape { dim: 0 dim: -1 dim: 2 } }', lambda rs: [_randn(rs, 2, 3, 4)]),
    case('split', 'name: "s" type: "Split" bottom: "x" top: "a" top: "b" top: "c"',
         lambda rs: [_randn(rs, 3, 4)]),
    case('silence', 'name: "s" type: "Silence" bottom: "x" bottom: "z"',
         lambda rs: [_randn(rs, 3), _randn(rs, 2, 2)]),
    case('concat_axis1', 'name: "c" type: "Concat" bottom: "a" bottom: "b" bottom: "c" top: "y"',
         lambda rs: [_randn(rs, 2, 3, 4), _randn(rs, 2, 1, 4), _randn(rs, 2, 5, 4)],
         grad=dict(max_checks=10)),
    case('concat_axis0', 'name: "c" type: "Concat" bottom: "a" bottom: "b" top: "y" '
         'concat_param { axis: 0 }', lambda rs: [_randn(rs, 2, 3), _randn(rs, 4, 3)]),
    case('concat_last_axis', 'name: "c" type: "Concat" bottom: "a" bottom: "b" top: "y" '
         'concat_param { axis: -1 }', lambda rs: [_randn(rs, 2, 3, 2), _randn(rs, 2, 3, 5)]),
    case('eltwise_sum_coeff', 'name: "e" type: "Eltwise" bottom: "a" bottom: "b" bottom: "c" '
         'top: "y" eltwise_param { operation: SUM coeff: 1 coeff: -0.5 coeff: 2 }',
         lambda rs: [_randn(rs, 3, 4), _randn(rs, 3, 4), _randn(rs, 3, 4)],
         grad=dict(max_checks=12)),
    case('eltwise_prod', 'name: "e" type: "Eltwise" bottom: "a" bottom: "b" bottom: "c" '
         'top: "y" eltwise_param { operation: PROD }',
         lambda rs: [_randn(rs, 3, 4), _randn(rs, 3, 4), _randn(rs, 3, 4)]),
    case('eltwise_prod_unstable', 'name: "e" type: "Eltwise" bottom: "a" bottom: "b" top: "y" '
         'eltwise_param { operation: PROD stable_prod_grad: false }',
         lambda rs: [_randn(rs, 3, 4) + 3, _randn(rs, 3, 4) + 3]),
    case('eltwise_max_ties', 'name: "e" type: "Eltwise" bottom: "a" bottom: "b" bottom: "c" '
         'top: "y" eltwise_param { operation: MAX }',
         lambda rs: [_ties(rs, 4, 5), _ties(rs, 4, 5), _ties(rs, 4, 5)]),
    case('accuracy', 'name: "a" type: "Accuracy" bottom: "x" bottom: "t" top: "acc" '
         'top: "per_class" accuracy_param { top_k: 2 ignore_label: 1 }',
         lambda rs: [_ties(rs, 12, 5), _labels(rs, (12,), 5)]),
    case('dummy_data', 'name: "d" type: "DummyData" top: "a" top: "b" dummy_data_param { '
         'shape { dim: 2 dim: 3 } shape { dim: 4 } data_filler { type: "constant" value: 3 } '
         'data_filler { type: "gaussian" std: 2 } }', lambda rs: []),
    case('input', 'name: "i" type: "Input" top: "a" input_param { shape { dim: 2 dim: 5 } }',
         lambda rs: []),
    case('memory_data', 'name: "m" type: "MemoryData" top: "d" top: "l" memory_data_param { '
         'batch_size: 3 channels: 2 height: 3 width: 2 }', lambda rs: [],
         prepare=_memory_arrays),
    case('conv_3x3', _conv('num_output: 4 kernel_size: 3'), lambda rs: [_randn(rs, 2, 3, 6, 5)],
         exact=False, grad=dict(max_checks=25)),
    case('conv_group_pad_stride_dilation', _conv(
        'num_output: 6 kernel_size: 3 pad: 2 stride: 2 dilation: 2 group: 2'),
        lambda rs: [_randn(rs, 2, 4, 9, 8)], exact=False, grad=dict(max_checks=20)),
    case('conv_rect_no_bias', _conv('num_output: 3 kernel_h: 3 kernel_w: 1 pad_h: 1 pad_w: 0 '
                                    'stride_h: 1 stride_w: 2 bias_term: false'),
         lambda rs: [_randn(rs, 1, 2, 5, 7)], exact=False),
    case('conv_1x1_two_bottoms', _conv('num_output: 5 kernel_size: 1', ('x', 'z'), ('y', 'w')),
         lambda rs: [_randn(rs, 2, 3, 4, 4), _randn(rs, 2, 3, 4, 4)], exact=False),
    case('pool_max_mask_pad', _pool('pool: MAX kernel_size: 3 stride: 2 pad: 1', ('y', 'mask')),
         lambda rs: [_ties(rs, 2, 3, 7, 8)]),
    case('pool_max_rect', _pool('pool: MAX kernel_h: 2 kernel_w: 3 stride_h: 2 stride_w: 1'),
         lambda rs: [_distinct(rs, 1, 2, 6, 7)], grad=dict(max_checks=40)),
    case('pool_ave_pad', _pool('pool: AVE kernel_size: 3 stride: 2 pad: 1'),
         lambda rs: [_randn(rs, 2, 2, 7, 6)], grad=dict(max_checks=40)),
    case('pool_ave_global', _pool('pool: AVE global_pooling: true'),
         lambda rs: [_randn(rs, 2, 3, 5, 4)]),
    case('lrn_across', 'name: "n" type: "LRN" bottom: "x" top: "y" lrn_param { local_size: 5 '
         'alpha: 0.5 beta: 0.75 k: 2 }', lambda rs: [_randn(rs, 2, 7, 3, 4)], exact=False,
         grad=dict(threshold=2e-3, max_checks=40)),
    case('lrn_within_zf', 'name: "n" type: "LRN" bottom: "x" top: "y" lrn_param { local_size: 3 '
         'alpha: 0.00005 beta: 0.75 norm_region: WITHIN_CHANNEL engine: CAFFE }',
         lambda rs: [_randn(rs, 1, 3, 6, 7) * 20], exact=False),
    case('lrn_within', 'name: "n" type: "LRN" bottom: "x" top: "y" lrn_param { local_size: 3 '
         'alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL }',
         lambda rs: [_randn(rs, 2, 2, 5, 6)], exact=False,
         grad=dict(threshold=2e-3, max_checks=40)),
    case('lrn_within_beta_minus2', 'name: "n" type: "LRN" bottom: "x" top: "y" lrn_param { '
         'local_size: 3 alpha: 0.25 beta: -2 norm_region: WITHIN_CHANNEL }',
         lambda rs: [_randn(rs, 1, 2, 4, 5)], exact=False),
]


def _bn_stats(rs, channels, weight):
    return [rs.uniform(-2, 2, channels).astype(np.float32),
            rs.uniform(0.5, 3, channels).astype(np.float32), np.array([weight], np.float32)]


def _bn(params='', top='y'):
    return 'name: "bn" type: "BatchNorm" bottom: "x" top: "%s" %s' % (top, params)


def _scale(params, bottoms=('x',), top='y', kind='Scale'):
    return ('name: "s" type: "%s" %s top: "%s" %s_param { %s }'
            % (kind, ' '.join('bottom: "%s"' % b for b in bottoms), top, kind.lower(), params))


# BatchNorm, Scale and Bias sum per channel in double on both paths, in different orders.
CASES += [
    case('batch_norm_batch_stats', _bn(), lambda rs: [_randn(rs, 3, 4, 5, 6) * 2 + 1],
         exact=False, grad=dict(check_params=False, threshold=5e-3, max_checks=30),
         params=lambda rs: _bn_stats(rs, 4, 2.5)),
    case('batch_norm_batch_stats_in_place_2d', _bn(top='x'), lambda rs: [_randn(rs, 7, 3)],
         exact=False, in_place=True, params=lambda rs: _bn_stats(rs, 3, 1)),
    case('batch_norm_global_stats', _bn(), lambda rs: [_randn(rs, 2, 3, 4, 4)], phase=caffe.TEST,
         exact=False, grad=dict(check_params=False, max_checks=30),
         params=lambda rs: _bn_stats(rs, 3, 2.5)),
    case('batch_norm_global_stats_weight0_in_place', _bn(top='x'),
         lambda rs: [_randn(rs, 2, 3, 2, 5)], phase=caffe.TEST, exact=False, in_place=True,
         params=lambda rs: _bn_stats(rs, 3, 0)),
    case('scale_bias_axis1', _scale('bias_term: true filler { type: "gaussian" } '
                                    'bias_filler { type: "gaussian" }'),
         lambda rs: [_randn(rs, 2, 3, 4, 5)], exact=False, grad=dict(max_checks=20)),
    case('scale_in_place_axis2_two_axes', _scale('axis: 2 num_axes: 2 filler { type: "gaussian" }',
                                                 top='x'),
         lambda rs: [_randn(rs, 2, 3, 4, 5)], exact=False, in_place=True),
    case('scale_two_bottoms_bias', _scale('bias_term: true bias_filler { type: "gaussian" }',
                                          ('x', 'z')),
         lambda rs: [_randn(rs, 2, 3, 4, 5), _randn(rs, 3, 4)], exact=False,
         grad=dict(max_checks=20)),
    case('scale_two_bottoms_in_place_scalar', _scale('', ('x', 'z'), top='x'),
         lambda rs: [_randn(rs, 3, 4), np.float32(rs.randn())], exact=False, in_place=True),
    case('bias_axis0_all', _scale('axis: 0 num_axes: -1 filler { type: "gaussian" }',
                                  kind='Bias'), lambda rs: [_randn(rs, 3, 2, 4)], exact=False,
         grad=dict(max_checks=20)),
    case('bias_two_bottoms_in_place', _scale('', ('x', 'z'), top='x', kind='Bias'),
         lambda rs: [_randn(rs, 2, 3, 4), _randn(rs, 3)], exact=False, in_place=True),
]


LOSS_TYPES = ('SoftmaxWithLoss', 'SmoothL1Loss')


def _set_mode(gpu):
    if gpu:
        caffe.set_mode_gpu()
    else:
        caffe.set_mode_cpu()


def run_layer(c, gpu, params=None, seed=3):
    """Runs case c on the GPU (gpu=True) or the CPU. Returns (tops, bottom diffs, param
    diffs, the parameter values used, the parameter values after forward (BatchNorm updates
    its statistics)); params: parameter values to load (default: filled)."""
    _set_mode(gpu)
    rs = np.random.RandomState(seed)
    bottoms = c.bottoms(rs)
    caffe.set_random_seed(seed)  # fillers and dropout masks
    layer, bottom, top = build_layer(c.text, bottoms, phase=c.phase)
    if c.prepare is not None:
        c.prepare(layer, rs)
    if c.in_place:
        top = bottom[:1]
    if params is None and c.params is not None:
        params = c.params(rs)
    if params is not None:
        for blob, value in zip(layer.blobs, params):
            blob.data[...] = value
    used_params = [p.data.copy() for p in layer.blobs]
    layer.reshape(bottom, top)
    caffe.set_random_seed(seed + 1)
    layer.forward(bottom, top)
    tops = [t.data.copy() for t in top]
    params_after = [p.data.copy() for p in layer.blobs]

    drs = np.random.RandomState(seed + 2)
    for t in top:
        if layer.type in LOSS_TYPES and t is top[0]:
            t.diff[...] = 1.75           # a loss weight
        else:
            t.diff[...] = drs.uniform(-1, 1, size=t.shape).astype(np.float32)
    if not c.in_place:
        for b in bottom:
            b.diff[...] = SENTINEL
    for p in layer.blobs:
        p.diff[...] = PARAM_DIFF
    layer.backward(top, [True] * len(bottom), bottom)
    bottom_diffs = [b.diff.copy() for b in bottom]
    param_diffs = [p.diff.copy() for p in layer.blobs]
    caffe.set_mode_cpu()
    return tops, bottom_diffs, param_diffs, used_params, params_after


def assert_same(c, cpu, gpu, rtol=2e-5, atol=2e-6):
    """Compares run_layer results: bit for bit for exact cases, else within tolerance."""
    kinds = ('top', 'bottom diff', 'param diff', 'param after forward')
    for kind, a_list, b_list in zip(kinds, cpu[:3] + cpu[4:], gpu[:3] + gpu[4:]):
        assert len(a_list) == len(b_list)
        for i, (a, b) in enumerate(zip(a_list, b_list)):
            what = '%s: %s %d' % (c.name, kind, i)
            assert a.shape == b.shape, what
            if c.exact:
                np.testing.assert_array_equal(b, a, err_msg=what)
            else:
                scale = max(float(np.max(np.abs(a))) if a.size else 0.0, 1.0)
                np.testing.assert_allclose(b, a, rtol=rtol, atol=atol * scale, err_msg=what)


# The data layers' cases, on files made at import.
from gpu_data_cases import data_cases  # noqa: E402

CASES += data_cases(case, _randn)
