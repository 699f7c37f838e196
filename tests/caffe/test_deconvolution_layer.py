"""Deconvolution: forward against a brute-force scatter in float64 (2-D with groups, dilation,
rectangular parameters; 3-D; a channel axis other than 1), Caffe's weight layout and output
size, the adjoint relation with Convolution, bilinear upsampling as FCN uses it, gradients
(Caffe's exhaustive check), and parameter errors."""
import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.testing import build_layer, check_gradient, check_gradient_exhaustive


def deconv_text(params, bottoms=('x',), tops=('y',), kind='Deconvolution'):
    return ('name: "deconv" type: "%s" %s %s convolution_param { %s '
            'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" } }'
            % (kind, ' '.join('bottom: "%s"' % b for b in bottoms),
               ' '.join('top: "%s"' % t for t in tops), params))


def brute_deconv(x, w, b, pad, stride, dilation, group, axis=1):
    """The definition: every input value adds value * kernel into the output, the kernel tap
    (c, o, k) landing at in * stride - pad + k * dilation; positions outside are dropped.
    x: (*batch, C, *in), w: (C, O/group, *kernel)."""
    batch = x.shape[:axis]
    x = x.reshape((-1,) + x.shape[axis:]).astype(np.float64)
    channels, spatial = x.shape[1], x.shape[2:]
    out_per_group, kernel = w.shape[1], w.shape[2:]
    out_c = out_per_group * group
    out_shape = tuple(s * (i - 1) + d * (k - 1) + 1 - 2 * p
                      for i, k, p, s, d in zip(spatial, kernel, pad, stride, dilation))
    y = np.zeros((x.shape[0], out_c) + out_shape)
    per_group = channels // group
    for n in range(x.shape[0]):
        for c in range(channels):
            g = c // per_group
            for pos in np.ndindex(*spatial):
                for tap in np.ndindex(*kernel):
                    o = tuple(q * s - p + t * d for q, s, p, t, d in
                              zip(pos, stride, pad, tap, dilation))
                    if all(0 <= v < size for v, size in zip(o, out_shape)):
                        for m in range(out_per_group):
                            y[(n, g * out_per_group + m) + o] += \
                                x[(n, c) + pos] * w[(c, m) + tap]
    if b is not None:
        y += np.asarray(b, np.float64).reshape((1, -1) + (1,) * len(out_shape))
    return y.reshape(batch + y.shape[1:])


# (prototxt params, pad, stride, dilation, group, bias, input shape)
CASES = {
    'k3_s2_p1': ('num_output: 3 kernel_size: 3 stride: 2 pad: 1', (1, 1), (2, 2), (1, 1), 1,
                 True, (2, 4, 3, 5)),
    'k4_s2_group2_dilation2': ('num_output: 4 kernel_size: 4 stride: 2 dilation: 2 group: 2',
                               (0, 0), (2, 2), (2, 2), 2, True, (2, 6, 3, 4)),
    'rect_hw_no_bias': ('num_output: 2 kernel_h: 2 kernel_w: 3 stride_h: 3 stride_w: 1 '
                        'pad_h: 1 pad_w: 0 bias_term: false', (1, 0), (3, 1), (1, 1), 1, False,
                        (1, 3, 4, 3)),
    'one_by_one': ('num_output: 5 kernel_size: 1', (0, 0), (1, 1), (1, 1), 1, True,
                   (2, 3, 3, 4)),
    'depthwise_1x1_stride': ('num_output: 4 kernel_size: 1 stride: 2 group: 4', (0, 0),
                             (2, 2), (1, 1), 4, True, (1, 4, 3, 3)),
}


def make(case, seed=0):
    params, pad, stride, dilation, group, bias, shape = CASES[case]
    x = np.random.RandomState(seed).randn(*shape).astype(np.float32)
    layer, bottom, top = build_layer(deconv_text(params), [x])
    return layer, bottom, top, (pad, stride, dilation, group, bias)


@pytest.mark.parametrize('case', sorted(CASES))
def test_forward_matches_brute_force(case):
    layer, bottom, top, (pad, stride, dilation, group, bias) = make(case)
    layer.forward(bottom, top)
    expected = brute_deconv(bottom[0].data, layer.blobs[0].data,
                            layer.blobs[1].data if bias else None, pad, stride, dilation, group)
    assert top[0].shape == expected.shape
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('case', sorted(CASES))
def test_gradient(case):
    layer, bottom, top, _ = make(case, seed=1)
    check_gradient(layer, bottom, top, max_checks=30)


def test_gradient_exhaustive():
    # Caffe's TestGradient runs the exhaustive checker (each top element alone).
    x = np.random.RandomState(2).randn(1, 2, 2, 2).astype(np.float32)
    layer, bottom, top = build_layer(deconv_text('num_output: 2 kernel_size: 2 stride: 2 '
                                                 'pad: 1'), [x])
    assert top[0].shape == (1, 2, 2, 2)
    check_gradient_exhaustive(layer, bottom, top, max_checks=6)


def test_weight_layout_and_output_size():
    # Caffe's layout: (channels, num_output / group, kh, kw), channels first, unlike
    # Convolution; out = stride * (in - 1) + dilation * (k - 1) + 1 - 2 * pad.
    x = np.zeros((2, 6, 7, 5), np.float32)
    layer, _, top = build_layer(deconv_text('num_output: 4 kernel_h: 3 kernel_w: 5 stride: 3 '
                                            'pad: 2 dilation: 2 group: 2'), [x])
    assert layer.blobs[0].shape == (6, 2, 3, 5)
    assert layer.blobs[1].shape == (4,)
    assert top[0].shape == (2, 4, 3 * 6 + 2 * 2 + 1 - 4, 3 * 4 + 2 * 4 + 1 - 4)


def test_is_the_adjoint_of_convolution():
    # <conv(x), y> = <x, deconv(y)> for the same weights and geometry: Deconvolution's forward
    # is Convolution's data gradient.
    r = np.random.RandomState(3)
    params = 'num_output: 3 kernel_size: 3 stride: 2 pad: 1 dilation: 1 group: 1 bias_term: false'
    x = r.randn(2, 4, 7, 5).astype(np.float32)  # sizes the stride divides: shapes round-trip
    conv, cb, ct = build_layer(deconv_text(params, kind='Convolution'), [x])
    conv.forward(cb, ct)
    y = r.randn(*ct[0].shape).astype(np.float32)
    deconv, db, dt = build_layer(deconv_text(params.replace('num_output: 3', 'num_output: 4')),
                                 [y])
    deconv.blobs[0].data[...] = conv.blobs[0].data
    deconv.forward(db, dt)
    assert dt[0].shape == x.shape
    lhs = np.dot(ct[0].data.ravel().astype(np.float64), y.ravel())
    rhs = np.dot(x.ravel().astype(np.float64), dt[0].data.ravel())
    assert abs(lhs - rhs) < 1e-4 * max(abs(lhs), 1)


def test_bilinear_upsampling():
    # FCN's upsampling: group = channels, kernel 2f, stride f, pad f/2 with the bilinear filler
    # interpolates linearly between input pixels (away from the border).
    r = np.random.RandomState(4)
    x = r.randn(1, 2, 4, 5).astype(np.float32)
    layer, bottom, top = build_layer(
        'name: "up" type: "Deconvolution" bottom: "x" top: "y" convolution_param { '
        'num_output: 2 kernel_size: 4 stride: 2 pad: 1 group: 2 bias_term: false '
        'weight_filler { type: "bilinear" } }', [x])
    layer.forward(bottom, top)
    y = top[0].data
    assert y.shape == (1, 2, 8, 10)
    # Output position o sits at input coordinate (o - 0.5) / 2: 1 -> 0.25, 2 -> 0.75, ...
    for oh in range(1, 7):
        for ow in range(1, 9):
            fh, fw = (oh - 0.5) / 2, (ow - 0.5) / 2
            h0, w0 = int(np.floor(fh)), int(np.floor(fw))
            ah, aw = fh - h0, fw - w0
            expected = ((1 - ah) * (1 - aw) * x[0, :, h0, w0] + (1 - ah) * aw * x[0, :, h0, w0 + 1]
                        + ah * (1 - aw) * x[0, :, h0 + 1, w0] + ah * aw * x[0, :, h0 + 1, w0 + 1])
            np.testing.assert_allclose(y[0, :, oh, ow], expected, rtol=1e-5, atol=1e-6)


def test_three_spatial_axes():
    r = np.random.RandomState(5)
    x = r.randn(2, 3, 2, 3, 2).astype(np.float32)
    layer, bottom, top = build_layer(deconv_text('num_output: 2 kernel_size: 2 kernel_size: 3 '
                                                 'kernel_size: 2 stride: 2 pad: 1'), [x])
    assert layer.blobs[0].shape == (3, 2, 2, 3, 2)
    layer.forward(bottom, top)
    expected = brute_deconv(x, layer.blobs[0].data, layer.blobs[1].data, (1, 1, 1), (2, 2, 2),
                            (1, 1, 1), 1)
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-5, atol=1e-5)
    check_gradient(layer, bottom, top, max_checks=20)


def test_channel_axis_two():
    # axis: 2 makes the first two axes batch axes (Caffe's num = count(0, axis)).
    r = np.random.RandomState(6)
    x = r.randn(2, 3, 2, 3, 4).astype(np.float32)
    layer, bottom, top = build_layer(deconv_text('num_output: 3 kernel_size: 2 stride: 2 '
                                                 'axis: 2'), [x])
    layer.forward(bottom, top)
    expected = brute_deconv(x, layer.blobs[0].data, layer.blobs[1].data, (0, 0), (2, 2),
                            (1, 1), 1, axis=2)
    assert top[0].shape == (2, 3, 3, 6, 8)
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-5, atol=1e-5)
    check_gradient(layer, bottom, top, max_checks=20)


def test_force_nd_im2col_gives_the_2d_numbers():
    # Caffe's N-d im2col/col2im and its 2-D ones add in the same order: bit for bit.
    r = np.random.RandomState(7)
    x = r.randn(2, 4, 3, 5).astype(np.float32)
    results = []
    for extra in ('', 'force_nd_im2col: true'):
        layer, bottom, top = build_layer(deconv_text('num_output: 3 kernel_size: 3 stride: 2 '
                                                     'pad: 1 group: 1 ' + extra), [x])
        layer.blobs[0].data[...] = np.linspace(-1, 1, layer.blobs[0].count).reshape(
            layer.blobs[0].shape)
        layer.blobs[1].data[...] = 0.25
        layer.forward(bottom, top)
        top[0].diff[...] = np.linspace(-2, 1, top[0].count).reshape(top[0].shape)
        for p in layer.blobs:
            p.diff[...] = 0
        layer.backward(top, [True], bottom)
        results.append([top[0].data.copy(), bottom[0].diff.copy(), layer.blobs[0].diff.copy(),
                        layer.blobs[1].diff.copy()])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_param_diffs_accumulate_and_propagate_flags():
    layer, bottom, top, _ = make('k3_s2_p1', seed=8)
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    for p in layer.blobs:
        p.diff[...] = 0
    layer.backward(top, [True], bottom)
    once = [p.diff.copy() for p in layer.blobs]
    # The bias gradient is the sum of the top diff over images and positions.
    np.testing.assert_allclose(once[1], np.full(3, top[0].count // 3), rtol=1e-6)
    bottom[0].diff[...] = 7
    layer.backward(top, [False], bottom)
    assert (bottom[0].diff == 7).all()
    for a, p in zip(once, layer.blobs):
        np.testing.assert_allclose(p.diff, 2 * a, rtol=1e-5, atol=1e-6)
    layer.param_propagate_down = [False, False]
    layer.backward(top, [False], bottom)
    for a, p in zip(once, layer.blobs):
        np.testing.assert_allclose(p.diff, 2 * a, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('params,shape,message', [
    ('kernel_size: 3', (1, 2, 5, 5), 'num_output'),
    ('num_output: 4 kernel_size: 3 group: 3', (1, 3, 5, 5), 'group'),
    ('num_output: 4', (1, 2, 5, 5), 'kernel_size'),
    ('num_output: 4 kernel_size: 3 kernel_size: 3 kernel_size: 3', (1, 2, 5, 5),
     'once per spatial axis'),
    ('num_output: 4 kernel_size: 2 kernel_h: 2 kernel_w: 2', (1, 2, 3, 4, 5), 'only be used for 2-D'),
    ('num_output: 4 kernel_size: 2 pad: 2', (1, 2, 1, 1), 'crops away'),
    ('num_output: 4 kernel_size: 3 axis: 3', (1, 2, 5, 5), 'no spatial axis'),
])
def test_bad_parameters_name_the_layer(params, shape, message):
    with pytest.raises(CaffeError, match=message) as info:
        build_layer('name: "bad_deconv" type: "Deconvolution" bottom: "x" top: "y" '
                    'convolution_param { %s }' % params, [np.zeros(shape)])
    assert 'bad_deconv' in str(info.value)


def test_pad_h_alone_is_accepted_as_caffe_does():
    # Caffe reads pad_h and pad_w as a pair, an absent one as its default 0.
    layer, _, top = build_layer(deconv_text('num_output: 2 kernel_size: 3 pad_h: 1'),
                                [np.zeros((1, 2, 4, 4), np.float32)])
    assert layer.pad == (1, 0)
    assert top[0].shape == (1, 2, 4, 6)
