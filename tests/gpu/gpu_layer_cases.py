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


def _cont(rs, T, N, first=0):
    # sequence markers: a restart at the first step (first=0) and one mid-batch
    cont = np.ones((T, N), np.float32)
    cont[0] = first
    cont[T // 2, 0] = 0
    return cont


def _recurrent(kind, num_output, bottoms, tops=('y',), expose=False):
    return ('name: "r" type: "%s" %s %s recurrent_param { num_output: %d expose_hidden: %s '
            'weight_filler { type: "uniform" min: -0.5 max: 0.5 } '
            'bias_filler { type: "uniform" min: -0.5 max: 0.5 } }'
            % (kind, ' '.join('bottom: "%s"' % b for b in bottoms),
               ' '.join('top: "%s"' % t for t in tops), num_output,
               'true' if expose else 'false'))


CASES += [
    case('lstm', _recurrent('LSTM', 5, ('x', 'c')),
         lambda rs: [_randn(rs, 4, 3, 2, 3), _cont(rs, 4, 3)], exact=False,
         grad=dict(check_bottom=[0], max_checks=12)),
    case('lstm_static_exposed', _recurrent('LSTM', 3, ('x', 'c', 's', 'h0', 'c0'),
                                           ('y', 'hT', 'cT'), expose=True),
         lambda rs: [_randn(rs, 3, 2, 4), _cont(rs, 3, 2, first=1), _randn(rs, 2, 5),
                     _randn(rs, 1, 2, 3), _randn(rs, 1, 2, 3)], exact=False),
    case('rnn', _recurrent('RNN', 4, ('x', 'c')),
         lambda rs: [_randn(rs, 5, 2, 3), _cont(rs, 5, 2)], exact=False,
         grad=dict(check_bottom=[0], max_checks=12)),
    case('rnn_static_exposed', _recurrent('RNN', 3, ('x', 'c', 's', 'h0'), ('y', 'hT'),
                                          expose=True),
         lambda rs: [_randn(rs, 3, 2, 4), _cont(rs, 3, 2, first=1), _randn(rs, 2, 2, 2),
                     _randn(rs, 1, 2, 3)], exact=False),
    case('lstm_unit', 'name: "u" type: "LSTMUnit" bottom: "c0" bottom: "x" bottom: "cont" '
         'top: "c" top: "h"',
         lambda rs: [_randn(rs, 1, 4, 3), _randn(rs, 1, 4, 12),
                     np.array([[1, 0, 1, 0]], np.float32)], exact=False,
         grad=dict(check_bottom=[0, 1])),
]


# Neuron and loss layers. exact=False where a kernel calls expf/logf/powf/tanh (the device's are a
# few ulp from the host's) or a softmax; the losses' sums are fixed runs added in double, so
# the others agree bit for bit.
def _neuron(kind, params='', in_place=False):
    return 'name: "n" type: "%s" bottom: "x" top: "%s" %s' % (kind, 'x' if in_place else 'y',
                                                              params)


def _loss(kind, bottoms, params='', tops=('loss',)):
    return ('name: "l" type: "%s" %s %s %s'
            % (kind, ' '.join('bottom: "%s"' % b for b in bottoms),
               ' '.join('top: "%s"' % t for t in tops), params))


def _positive(rs, *shape):
    return (np.abs(rs.randn(*shape)) + 0.1).astype(np.float32)


def _off_hinge_kinks(rs, *shape):
    x = _randn(rs, *shape) * 3
    x[np.abs(np.abs(x) - 1) < 0.05] = 0.5
    return x


def _clip_inputs(rs):
    x = _ties(rs, 3, 20) * np.float32(0.4)     # hits min -0.4 and the ends exactly
    x[0, :3] = [np.nan, np.inf, -np.inf]
    return [x]


def _unit_rows(rs, rows, cols):
    p = rs.rand(rows, cols) + 0.05
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def _targets(rs, *shape, ignore=None):
    t = rs.rand(*shape).astype(np.float32)
    if ignore is not None:
        t.flat[::5] = ignore
    return t


_PRELU = 'prelu_param { filler { type: "gaussian" } %s }'
_KINK0 = dict(kink=0.0, kink_range=0.02, max_checks=30)

CASES += [
    case('absval', _neuron('AbsVal'), lambda rs: [_ties(rs, 2, 3, 4, 5) * np.float32(0.5)]),
    case('absval_grad', _neuron('AbsVal'), lambda rs: [_randn(rs, 3, 8)], grad=_KINK0),
    case('bnll', _neuron('BNLL'), lambda rs: [_randn(rs, 2, 3, 4, 5) * 40], exact=False,
         grad=dict(max_checks=30)),
    case('bnll_in_place', _neuron('BNLL', in_place=True), lambda rs: [_randn(rs, 4, 9)],
         exact=False, in_place=True),
    case('clip_ends_nan', _neuron('Clip', 'clip_param { min: -0.4 max: 0.8 }'), _clip_inputs),
    case('clip_in_place', _neuron('Clip', 'clip_param { min: -1 max: 0.5 }', True),
         lambda rs: [_randn(rs, 3, 7)], in_place=True),
    case('elu', _neuron('ELU', 'elu_param { alpha: 0.4 }'), lambda rs: [_randn(rs, 2, 3, 4, 5)],
         exact=False, grad=_KINK0),
    case('elu_in_place', _neuron('ELU', '', True), lambda rs: [_randn(rs, 5, 6)], exact=False,
         in_place=True),
    case('exp_base2_scale_shift', _neuron('Exp', 'exp_param { base: 2 scale: 0.7 shift: 0.3 }'),
         lambda rs: [_randn(rs, 2, 3, 4, 5)], exact=False, grad=dict(max_checks=30)),
    case('exp_in_place', _neuron('Exp', '', True), lambda rs: [_randn(rs, 4, 5)], exact=False,
         in_place=True),
    case('log_base10_scale_shift', _neuron('Log', 'log_param { base: 10 scale: 0.5 shift: 3 }'),
         lambda rs: [_positive(rs, 2, 3, 4, 5)], exact=False,
         grad=dict(threshold=1e-2, max_checks=30)),
    case('log_in_place', _neuron('Log', '', True), lambda rs: [_positive(rs, 4, 5)],
         exact=False, in_place=True),
    case('power_general', _neuron('Power', 'power_param { power: 1.7 scale: 0.5 shift: 3 }'),
         lambda rs: [_positive(rs, 2, 3, 4, 5)], exact=False, grad=dict(max_checks=30)),
    case('power_square', _neuron('Power', 'power_param { power: 2 scale: 0.5 shift: -1 }'),
         lambda rs: [_randn(rs, 3, 10)], exact=False),
    case('power_unshifted', _neuron('Power', 'power_param { power: 3 scale: 0.5 }'),
         lambda rs: [_randn(rs, 3, 10)], exact=False),
    case('power_affine', _neuron('Power', 'power_param { scale: 0.5 shift: -1 }'),
         lambda rs: [_randn(rs, 3, 10)]),
    case('power_constant_in_place', _neuron('Power', 'power_param { power: 2 scale: 0 '
                                                     'shift: 3 }', True),
         lambda rs: [_randn(rs, 3, 10)], in_place=True),
    case('prelu', _neuron('PReLU', _PRELU % ''), lambda rs: [_randn(rs, 2, 3, 4, 5)],
         grad=_KINK0),
    case('prelu_shared_in_place_2d', _neuron('PReLU', _PRELU % 'channel_shared: true', True),
         lambda rs: [_randn(rs, 5, 4)], in_place=True),
    case('prelu_long_rows', _neuron('PReLU', _PRELU % ''), lambda rs: [_randn(rs, 2, 2, 40, 60)]),
    case('sigmoid', _neuron('Sigmoid'), lambda rs: [_randn(rs, 2, 3, 4, 5) * 4], exact=False,
         grad=dict(max_checks=30)),
    case('sigmoid_in_place', _neuron('Sigmoid', '', True), lambda rs: [_randn(rs, 4, 5)],
         exact=False, in_place=True),
    case('swish_beta', _neuron('Swish', 'swish_param { beta: 1.5 }'),
         lambda rs: [_randn(rs, 2, 3, 4, 5) * 3], exact=False, grad=dict(max_checks=30)),
    case('swish_in_place', _neuron('Swish', '', True), lambda rs: [_randn(rs, 4, 5)],
         exact=False, in_place=True),
    case('tanh', _neuron('TanH'), lambda rs: [_randn(rs, 2, 3, 4, 5) * 2], exact=False,
         grad=dict(max_checks=30)),
    case('tanh_in_place', _neuron('TanH', '', True), lambda rs: [_randn(rs, 4, 5)],
         exact=False, in_place=True),
    case('threshold', _neuron('Threshold', 'threshold_param { threshold: 0.5 }'),
         lambda rs: [_ties(rs, 3, 4, 5) * np.float32(0.5)]),
    case('threshold_in_place', _neuron('Threshold', '', True), lambda rs: [_randn(rs, 3, 4)],
         in_place=True),
    case('euclidean_loss', _loss('EuclideanLoss', ('a', 'b')),
         lambda rs: [_randn(rs, 4, 3, 2, 2), _randn(rs, 4, 12)], grad=dict(max_checks=20)),
    case('euclidean_loss_long', _loss('EuclideanLoss', ('a', 'b')),
         lambda rs: [_randn(rs, 3, 1500), _randn(rs, 3, 1500)]),
    case('contrastive_loss', _loss('ContrastiveLoss', ('a', 'b', 'y')),
         lambda rs: [rs.uniform(-1, 1, (8, 5, 1, 1)).astype(np.float32),
                     rs.uniform(-1, 1, (8, 5, 1, 1)).astype(np.float32),
                     (rs.rand(8, 1, 1, 1) > 0.5).astype(np.float32)],
         grad=dict(check_bottom=[0, 1], max_checks=20)),
    case('contrastive_loss_legacy_margin2', _loss('ContrastiveLoss', ('a', 'b', 'y'),
                                                  'contrastive_loss_param { margin: 2 '
                                                  'legacy_version: true }'),
         lambda rs: [rs.uniform(-1, 1, (8, 5)).astype(np.float32),
                     rs.uniform(-1, 1, (8, 5)).astype(np.float32),
                     (rs.rand(8) > 0.5).astype(np.float32)],
         grad=dict(check_bottom=[0, 1], max_checks=20)),
    case('hinge_loss_l1', _loss('HingeLoss', ('x', 't')),
         lambda rs: [_off_hinge_kinks(rs, 6, 5), _labels(rs, (6,), 5)],
         grad=dict(check_bottom=[0], max_checks=20)),
    case('hinge_loss_l2_4d', _loss('HingeLoss', ('x', 't'), 'hinge_loss_param { norm: L2 }'),
         lambda rs: [_off_hinge_kinks(rs, 4, 3, 2, 2), _labels(rs, (4, 1, 1, 1), 12)],
         grad=dict(check_bottom=[0], max_checks=20, threshold=1e-2)),
    case('multinomial_logistic_loss', _loss('MultinomialLogisticLoss', ('p', 't')),
         lambda rs: [_unit_rows(rs, 6, 4), _labels(rs, (6, 1, 1, 1), 4)],
         grad=dict(check_bottom=[0], threshold=2e-2, kink=0.0, kink_range=0.05)),
    case('sigmoid_ce_loss', _loss('SigmoidCrossEntropyLoss', ('x', 't')),
         lambda rs: [_randn(rs, 3, 4, 5) * 3, _targets(rs, 3, 4, 5)], exact=False,
         grad=dict(check_bottom=[0], max_checks=20, threshold=1e-2)),
    case('sigmoid_ce_loss_ignore_valid', _loss('SigmoidCrossEntropyLoss', ('x', 't'),
                                               'loss_param { ignore_label: -1 '
                                               'normalization: VALID }'),
         lambda rs: [_randn(rs, 6, 400), _targets(rs, 6, 400, ignore=-1)], exact=False),
    case('infogain_loss_axis2', _loss('InfogainLoss', ('x', 't', 'H'),
                                      'infogain_loss_param { axis: 2 }'),
         lambda rs: [_randn(rs, 2, 3, 4, 2), _labels(rs, (2, 3, 1, 2), 4),
                     rs.uniform(0.1, 2, (4, 4)).astype(np.float32)], exact=False,
         grad=dict(check_bottom=[0], max_checks=20, threshold=1e-2)),
    case('infogain_loss_ignore_prob', _loss('InfogainLoss', ('x', 't', 'H'),
                                            'loss_param { ignore_label: 1 }', ('loss', 'prob')),
         lambda rs: [_randn(rs, 5, 3, 7), _labels(rs, (5, 7), 3),
                     rs.uniform(0.1, 2, (3, 3)).astype(np.float32)], exact=False),
]

def _deconv(params, bottoms=('x',), tops=('y',)):
    return _conv(params, bottoms, tops).replace('"Convolution"', '"Deconvolution"')


def _indices(rs, shape, high):
    return rs.randint(0, high, size=shape).astype(np.float32)


# The structural layers (issue 27): copies are exact; sums in double or through BLAS are not.
CASES += [
    case('argmax_top3_values_ties', 'name: "a" type: "ArgMax" bottom: "x" top: "y" '
         'argmax_param { top_k: 3 out_max_val: true }', lambda rs: [_ties(rs, 4, 3, 5)]),
    case('argmax_axis2', 'name: "a" type: "ArgMax" bottom: "x" top: "y" '
         'argmax_param { top_k: 2 axis: 2 }', lambda rs: [_ties(rs, 2, 3, 6, 4)]),
    case('argmax_axis1_values', 'name: "a" type: "ArgMax" bottom: "x" top: "y" '
         'argmax_param { axis: 1 out_max_val: true }', lambda rs: [_randn(rs, 2, 5, 3)]),
    case('batch_reindex_repeats', 'name: "r" type: "BatchReindex" bottom: "x" bottom: "i" '
         'top: "y"', lambda rs: [_randn(rs, 4, 3, 2),
                                 np.array([3, 1, 1, 0, 3, 3], np.float32)]),
    case('crop_offsets_per_axis', 'name: "c" type: "Crop" bottom: "x" bottom: "s" top: "y" '
         'crop_param { axis: 1 offset: 1 offset: 2 offset: 0 }',
         lambda rs: [_randn(rs, 2, 4, 6, 5), _randn(rs, 1, 2, 3, 5)],
         grad=dict(check_bottom=[0], max_checks=20)),
    case('crop_default_axis2', 'name: "c" type: "Crop" bottom: "x" bottom: "s" top: "y"',
         lambda rs: [_randn(rs, 2, 3, 7, 6), _randn(rs, 5, 1, 4, 4)]),
    case('deconv_3x3_stride2_pad1', _deconv('num_output: 4 kernel_size: 3 stride: 2 pad: 1'),
         lambda rs: [_randn(rs, 2, 3, 4, 5)], exact=False, grad=dict(max_checks=25)),
    case('deconv_group_dilation_two_bottoms', _deconv(
        'num_output: 4 kernel_size: 3 dilation: 2 group: 2', ('x', 'z'), ('y', 'w')),
        lambda rs: [_randn(rs, 2, 6, 3, 4), _randn(rs, 2, 6, 3, 4)], exact=False),
    case('deconv_1x1_no_bias', _deconv('num_output: 3 kernel_size: 1 bias_term: false'),
         lambda rs: [_randn(rs, 2, 4, 3, 3)], exact=False),
    case('deconv_3d', _deconv('num_output: 2 kernel_size: 2 kernel_size: 3 kernel_size: 2 '
                              'stride: 2 pad: 1'),
         lambda rs: [_randn(rs, 2, 3, 2, 3, 2)], exact=False, grad=dict(max_checks=20)),
    case('deconv_axis2_force_nd', _deconv('num_output: 2 kernel_size: 3 stride: 2 axis: 2 '
                                          'force_nd_im2col: true'),
         lambda rs: [_randn(rs, 2, 2, 3, 3, 4)], exact=False),
    case('conv_3d_group', _conv('num_output: 4 kernel_size: 3 kernel_size: 2 kernel_size: 2 '
                                'pad: 1 stride: 2 group: 2'),
         lambda rs: [_randn(rs, 2, 4, 5, 4, 3)], exact=False, grad=dict(max_checks=20)),
    case('conv_1d_dilation', _conv('num_output: 3 kernel_size: 3 dilation: 2 pad: 1'),
         lambda rs: [_randn(rs, 2, 2, 9)], exact=False),
    case('conv_axis2', _conv('num_output: 3 kernel_size: 3 axis: 2'),
         lambda rs: [_randn(rs, 2, 3, 2, 5, 4)], exact=False),
    case('conv_force_nd_1x1', _conv('num_output: 3 kernel_size: 1 force_nd_im2col: true'),
         lambda rs: [_randn(rs, 2, 4, 3, 3)], exact=False),
    case('embed_bias', 'name: "e" type: "Embed" bottom: "i" top: "y" embed_param { '
         'num_output: 4 input_dim: 5 weight_filler { type: "gaussian" } '
         'bias_filler { type: "gaussian" } }', lambda rs: [_indices(rs, (3, 4), 5)]),
    case('filter_two_blobs', 'name: "f" type: "Filter" bottom: "a" bottom: "b" bottom: "s" '
         'top: "y" top: "z"', lambda rs: [_randn(rs, 5, 3), _randn(rs, 5, 2, 2),
                                          np.array([0, 2, 0, -1, 1], np.float32)]),
    case('flatten_axes', 'name: "f" type: "Flatten" bottom: "x" top: "y" '
         'flatten_param { axis: 1 end_axis: 2 }', lambda rs: [_randn(rs, 2, 3, 4, 5)]),
    case('im2col_pad_stride', 'name: "i" type: "Im2col" bottom: "x" top: "y" '
         'convolution_param { kernel_size: 3 pad: 1 stride: 2 }',
         lambda rs: [_randn(rs, 2, 3, 5, 6)], grad=dict(max_checks=20)),
    case('im2col_3d_dilation', 'name: "i" type: "Im2col" bottom: "x" top: "y" '
         'convolution_param { kernel_size: 2 dilation: 2 pad: 1 }',
         lambda rs: [_randn(rs, 1, 2, 4, 3, 5)]),
    case('mvn', 'name: "m" type: "MVN" bottom: "x" top: "y"',
         lambda rs: [_randn(rs, 2, 3, 4, 5) * 3 + 1], exact=False,
         grad=dict(threshold=2e-3, max_checks=30)),
    case('mvn_across_channels_in_place', 'name: "m" type: "MVN" bottom: "x" top: "x" '
         'mvn_param { across_channels: true eps: 0.01 }', lambda rs: [_randn(rs, 2, 3, 4, 5)],
         exact=False, in_place=True),
    case('mvn_mean_only', 'name: "m" type: "MVN" bottom: "x" top: "y" '
         'mvn_param { normalize_variance: false }', lambda rs: [_randn(rs, 3, 2, 3, 3)],
         exact=False),
    case('parameter', 'name: "p" type: "Parameter" top: "y" parameter_param { '
         'shape { dim: 2 dim: 3 } }', lambda rs: [], params=lambda rs: [_randn(rs, 2, 3)]),
    case('reduction_sum_all', 'name: "r" type: "Reduction" bottom: "x" top: "y"',
         lambda rs: [_randn(rs, 3, 4, 5)], exact=False, grad=dict(max_checks=10)),
    case('reduction_asum_axis1_coeff', 'name: "r" type: "Reduction" bottom: "x" top: "y" '
         'reduction_param { operation: ASUM axis: 1 coeff: -2 }',
         lambda rs: [_randn(rs, 3, 4, 5)], exact=False),
    case('reduction_sumsq_axis2', 'name: "r" type: "Reduction" bottom: "x" top: "y" '
         'reduction_param { operation: SUMSQ axis: 2 coeff: 0.5 }',
         lambda rs: [_randn(rs, 2, 3, 4, 5)], exact=False),
    case('reduction_mean_last_axis', 'name: "r" type: "Reduction" bottom: "x" top: "y" '
         'reduction_param { operation: MEAN axis: -1 coeff: 3 }',
         lambda rs: [_randn(rs, 2, 3, 7)], exact=False),
    case('slice_points_axis2', 'name: "s" type: "Slice" bottom: "x" top: "a" top: "b" '
         'top: "c" slice_param { axis: 2 slice_point: 1 slice_point: 4 }',
         lambda rs: [_randn(rs, 2, 3, 6, 2)], grad=dict(max_checks=20)),
    case('slice_even_legacy_dim', 'name: "s" type: "Slice" bottom: "x" top: "a" top: "b" '
         'slice_param { slice_dim: 0 }', lambda rs: [_randn(rs, 4, 3)]),
    case('spp_max_3_levels', 'name: "s" type: "SPP" bottom: "x" top: "y" '
         'spp_param { pyramid_height: 3 }', lambda rs: [_ties(rs, 2, 3, 9, 8)]),
    case('spp_ave_2_levels', 'name: "s" type: "SPP" bottom: "x" top: "y" '
         'spp_param { pyramid_height: 2 pool: AVE }', lambda rs: [_randn(rs, 2, 2, 6, 5)],
         grad=dict(max_checks=30)),
    case('spp_one_level', 'name: "s" type: "SPP" bottom: "x" top: "y" '
         'spp_param { pyramid_height: 1 }', lambda rs: [_randn(rs, 2, 3, 5, 4)]),
    case('tile_axis1', 'name: "t" type: "Tile" bottom: "x" top: "y" tile_param { tiles: 3 }',
         lambda rs: [_randn(rs, 2, 3, 4)], grad=dict(max_checks=20)),
    case('tile_axis0', 'name: "t" type: "Tile" bottom: "x" top: "y" '
         'tile_param { tiles: 2 axis: 0 }', lambda rs: [_randn(rs, 3, 2)]),
    case('pool_stochastic_train', _pool('pool: STOCHASTIC kernel_size: 3 stride: 2'),
         lambda rs: [np.abs(_randn(rs, 2, 3, 7, 6))]),
    case('pool_stochastic_train_negatives', _pool('pool: STOCHASTIC kernel_h: 2 kernel_w: 3 '
                                                  'stride: 1'),
         lambda rs: [_randn(rs, 1, 2, 4, 5)]),
    case('pool_stochastic_test', _pool('pool: STOCHASTIC kernel_size: 2 stride: 2'),
         lambda rs: [np.abs(_randn(rs, 2, 2, 5, 6))], phase=caffe.TEST, exact=False,
         grad=dict(max_checks=30)),
    case('pool_max_floor', _pool('pool: MAX kernel_size: 3 stride: 2 pad: 1 '
                                 'round_mode: FLOOR'), lambda rs: [_ties(rs, 2, 2, 8, 7)]),
]

LOSS_TYPES = ('SoftmaxWithLoss', 'SmoothL1Loss', 'ContrastiveLoss', 'EuclideanLoss', 'HingeLoss',
              'InfogainLoss', 'MultinomialLogisticLoss', 'SigmoidCrossEntropyLoss')
# Types without a backward (Caffe's NOT_IMPLEMENTED): the comparison runs forward only.
NO_BACKWARD_TYPES = ('Threshold',)


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
    if layer.type not in NO_BACKWARD_TYPES:
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
