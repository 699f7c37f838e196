"""Convolution layer: forward against a brute-force loop, gradients by finite differences,
im2col/col2im against direct loops, the Layer contract and parameter errors."""
import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.layers import convolution
from caffe.layers.im2col import col2im, im2col
from caffe.testing import build_layer, check_gradient


def conv_text(params, bottoms=('x',), tops=('y',)):
    return ('name: "conv" type: "Convolution" %s %s convolution_param { %s '
            'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" } }'
            % (' '.join('bottom: "%s"' % b for b in bottoms),
               ' '.join('top: "%s"' % t for t in tops), params))


def brute_conv(x, w, b, pad, stride, dilation, group):
    """Direct definition: each output is a sum over its window, zero outside the image."""
    num, channels, height, width = x.shape
    out_c, group_c, kh, kw = w.shape
    out_h = (height + 2 * pad[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    out_w = (width + 2 * pad[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    y = np.zeros((num, out_c, out_h, out_w))
    per_group = out_c // group
    for n in range(num):
        for m in range(out_c):
            first = (m // per_group) * group_c
            for oh in range(out_h):
                for ow in range(out_w):
                    total = 0.0 if b is None else float(b[m])
                    for c in range(group_c):
                        for i in range(kh):
                            for j in range(kw):
                                ih = oh * stride[0] - pad[0] + i * dilation[0]
                                iw = ow * stride[1] - pad[1] + j * dilation[1]
                                if 0 <= ih < height and 0 <= iw < width:
                                    total += float(w[m, c, i, j]) * float(x[n, first + c, ih, iw])
                    y[n, m, oh, ow] = total
    return y


# (prototxt params, pad, stride, dilation, group, bias, input shape)
CASES = {
    'plain_3x3': ('num_output: 4 kernel_size: 3', (0, 0), (1, 1), (1, 1), 1, True, (2, 3, 6, 5)),
    'group2_pad_stride2_dilation2': (
        'num_output: 6 kernel_size: 3 pad: 2 stride: 2 dilation: 2 group: 2',
        (2, 2), (2, 2), (2, 2), 2, True, (2, 4, 9, 8)),
    'group2_pad_stride2_dilation2_no_bias': (
        'num_output: 4 kernel_size: 3 pad: 1 stride: 2 dilation: 2 group: 2 bias_term: false',
        (1, 1), (2, 2), (2, 2), 2, False, (2, 6, 8, 9)),
    'no_bias_pad1': ('num_output: 3 kernel_size: 3 pad: 1 bias_term: false',
                     (1, 1), (1, 1), (1, 1), 1, False, (2, 2, 5, 7)),
    'rectangular_hw_fields': (
        'num_output: 4 kernel_h: 3 kernel_w: 2 pad_h: 1 pad_w: 0 stride_h: 1 stride_w: 3',
        (1, 0), (1, 3), (1, 1), 1, True, (1, 3, 6, 8)),
    'repeated_per_axis': ('num_output: 2 kernel_size: 2 kernel_size: 3 pad: 0 pad: 1 '
                          'stride: 2 stride: 1 dilation: 1 dilation: 2',
                          (0, 1), (2, 1), (1, 2), 1, True, (2, 2, 7, 6)),
    'one_by_one': ('num_output: 5 kernel_size: 1', (0, 0), (1, 1), (1, 1), 1, True,
                   (3, 4, 3, 4)),
    'one_by_one_group': ('num_output: 4 kernel_size: 1 group: 2 bias_term: false',
                         (0, 0), (1, 1), (1, 1), 2, False, (2, 4, 3, 3)),
}


@pytest.fixture(params=['batched', 'per_image', 'bands'])
def batching(request, monkeypatch):
    # The ways the layer can cut a batch: all images in one product; one image at a time in
    # bands of one output row (a buffer too small for anything more); or in bands of two rows
    # (the last one shorter where the height is odd).
    if request.param == 'per_image':
        monkeypatch.setattr(convolution, 'COL_BUFFER_FLOATS', 1)
    elif request.param == 'bands':
        monkeypatch.setattr(convolution, 'COL_BUFFER_FLOATS', -2)  # set per case in make()
    return request.param


def make(case, seed=0):
    params, pad, stride, dilation, group, bias, shape = CASES[case]
    x = np.random.RandomState(seed).randn(*shape).astype(np.float32)
    if convolution.COL_BUFFER_FLOATS < 0:
        # Room for two output rows of one image's column matrix.
        layer, _, _ = build_layer(conv_text(params), [x[:1]])
        convolution.COL_BUFFER_FLOATS = 2 * layer.kdim * layer.out_w
    layer, bottom, top = build_layer(conv_text(params), [x])
    return layer, bottom, top, (pad, stride, dilation, group, bias)


@pytest.mark.parametrize('case', sorted(CASES))
def test_forward_matches_brute_force(case, batching):
    layer, bottom, top, (pad, stride, dilation, group, bias) = make(case)
    assert layer.chunk == (bottom[0].shape[0] if batching == 'batched' else 1)
    if batching != 'batched' and not layer.is_1x1:
        assert layer.band == min(layer.out_h, 1 if batching == 'per_image' else 2)
    layer.forward(bottom, top)
    b = layer.blobs[1].data if bias else None
    expected = brute_conv(bottom[0].data, layer.blobs[0].data, b, pad, stride, dilation, group)
    assert top[0].shape == expected.shape
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('case', sorted(CASES))
def test_gradient(case, batching):
    layer, bottom, top, _ = make(case, seed=1)
    check_gradient(layer, bottom, top, max_checks=25)


def test_shapes_and_fillers():
    layer, _, top = build_layer(
        'name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param { num_output: 6 '
        'kernel_size: 3 group: 3 pad: 1 stride: 2 bias_filler { type: "constant" value: 0.25 } }',
        [np.zeros((2, 9, 10, 7))])
    assert layer.blobs[0].shape == (6, 3, 3, 3)
    assert layer.blobs[1].shape == (6,)
    assert (layer.blobs[1].data == 0.25).all()
    # floor((10 + 2 - 3) / 2) + 1 = 5, floor((7 + 2 - 3) / 2) + 1 = 4
    assert top[0].shape == (2, 6, 5, 4)


def test_shared_weights_over_several_bottoms():
    r = np.random.RandomState(3)
    xs = [r.randn(2, 3, 5, 4).astype(np.float32) for _ in range(2)]
    layer, bottom, top = build_layer(
        conv_text('num_output: 2 kernel_size: 3 pad: 1', ('a', 'b'), ('ya', 'yb')), xs)
    layer.forward(bottom, top)
    for i in range(2):
        expected = brute_conv(xs[i], layer.blobs[0].data, layer.blobs[1].data, (1, 1), (1, 1),
                              (1, 1), 1)
        np.testing.assert_allclose(top[i].data, expected, rtol=1e-5, atol=1e-5)
    check_gradient(layer, bottom, top, max_checks=20)


def test_param_diffs_accumulate_and_respect_propagate_flags():
    layer, bottom, top, _ = make('group2_pad_stride2_dilation2')
    layer.forward(bottom, top)
    top[0].diff[...] = np.random.RandomState(5).randn(*top[0].shape)
    layer.blobs[0].diff[...] = 0
    layer.blobs[1].diff[...] = 0
    layer.backward(top, [True], bottom)
    once_w, once_b = layer.blobs[0].diff.copy(), layer.blobs[1].diff.copy()
    bottom_once = bottom[0].diff.copy()
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * once_w, rtol=1e-6)
    np.testing.assert_allclose(layer.blobs[1].diff, 2 * once_b, rtol=1e-6)
    # Bottom diffs are written, not accumulated.
    np.testing.assert_array_equal(bottom[0].diff, bottom_once)

    layer.param_propagate_down = [False, False]
    bottom[0].diff[...] = 7
    layer.backward(top, [False], bottom)
    np.testing.assert_array_equal(layer.blobs[0].diff, 2 * once_w)
    np.testing.assert_array_equal(layer.blobs[1].diff, 2 * once_b)
    assert (bottom[0].diff == 7).all()

    layer.param_propagate_down = [False, True]
    layer.backward(top, [False], bottom)
    np.testing.assert_array_equal(layer.blobs[0].diff, 2 * once_w)
    np.testing.assert_allclose(layer.blobs[1].diff, 3 * once_b, rtol=1e-6)


def test_bias_gradient_is_sum_of_top_diff():
    layer, bottom, top, _ = make('plain_3x3')
    layer.forward(bottom, top)
    top[0].diff[...] = np.random.RandomState(2).randn(*top[0].shape)
    layer.blobs[1].diff[...] = 0
    layer.backward(top, [False], bottom)
    np.testing.assert_allclose(layer.blobs[1].diff, top[0].diff.astype(np.float64).sum((0, 2, 3)),
                               rtol=1e-5)


def test_reshape_to_a_new_input_size():
    layer, bottom, top, (pad, stride, dilation, group, bias) = make('group2_pad_stride2_dilation2')
    x = np.random.RandomState(4).randn(1, 4, 12, 5).astype(np.float32)
    bottom[0].reshape(x.shape)
    bottom[0].data[...] = x
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    expected = brute_conv(x, layer.blobs[0].data, layer.blobs[1].data, pad, stride, dilation,
                          group)
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-5, atol=1e-5)


def test_layers_share_one_column_buffer(monkeypatch):
    # Two layers of different sizes take turns with the one workspace: each result must still
    # be its own (a layer may not keep a view of the buffer across calls).
    monkeypatch.setattr(convolution, 'WORKSPACE', convolution._Workspace())
    r = np.random.RandomState(6)
    small = build_layer(conv_text('num_output: 3 kernel_size: 3 pad: 1'),
                        [r.randn(1, 2, 5, 6).astype(np.float32)])
    large = build_layer(conv_text('num_output: 4 kernel_size: 5 pad: 2 stride: 2'),
                        [r.randn(1, 3, 11, 9).astype(np.float32)])
    for layer, bottom, top in (small, large, small):
        layer.forward(bottom, top)
        pad, stride = layer.pad, layer.stride
        expected = brute_conv(bottom[0].data, layer.blobs[0].data, layer.blobs[1].data, pad,
                              stride, (1, 1), 1)
        np.testing.assert_allclose(top[0].data, expected, rtol=1e-5, atol=1e-5)
    assert len(convolution.WORKSPACE.buffers['col']) == large[0].kdim * 6 * 5
    # A 1x1, stride 1, unpadded convolution of one image reads its bottom as the column matrix.
    before = convolution.WORKSPACE.buffers['col']
    layer, bottom, top = build_layer(conv_text('num_output: 2 kernel_size: 1'),
                                     [r.randn(1, 80, 40, 30).astype(np.float32)])
    layer.forward(bottom, top)
    top[0].diff[...] = r.randn(*top[0].shape)
    layer.backward(top, [True], bottom)
    assert convolution.WORKSPACE.buffers['col'] is before
    w = layer.blobs[0].data.reshape(2, 80)
    np.testing.assert_allclose(top[0].data[0], np.einsum('oc,chw->ohw', w, bottom[0].data[0])
                               + layer.blobs[1].data[:, None, None], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bottom[0].diff[0], np.einsum('oc,ohw->chw', w, top[0].diff[0]),
                               rtol=1e-4, atol=1e-5)


def test_bands_give_the_bottom_diff_of_one_pass(monkeypatch):
    # col2im adds the bands last first, which keeps Caffe's summation order: with the same
    # column values the bottom diff is the same to the bit. One output channel and powers of
    # two make every column value an exact product (whatever BLAS does), while the sums over
    # the taps, of widely different magnitudes, round differently in another order.
    r = np.random.RandomState(8)
    x = r.randn(1, 3, 13, 7).astype(np.float32)
    text = conv_text('num_output: 1 kernel_size: 3 pad: 1 stride: 1')
    one, b1, t1 = build_layer(text, [x])
    monkeypatch.setattr(convolution, 'COL_BUFFER_FLOATS', 3 * one.kdim * one.out_w)
    banded, b2, t2 = build_layer(text, [x])
    assert banded.band == 3 and one.band == one.out_h
    powers = lambda shape, lo, hi: (r.choice([-1, 1], shape) *  # noqa: E731
                                    np.exp2(r.randint(lo, hi, shape))).astype(np.float32)
    one.blobs[0].data[...] = banded.blobs[0].data[...] = powers(one.blobs[0].shape, -3, 4)
    dy = powers(t1[0].shape, -12, 13)
    for layer, bottom, top in ((one, b1, t1), (banded, b2, t2)):
        layer.forward(bottom, top)
        top[0].diff[...] = dy
        layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(b2[0].diff, b1[0].diff)
    np.testing.assert_allclose(banded.blobs[0].diff, one.blobs[0].diff, rtol=1e-5, atol=1e-4)


def test_reshape_skips_only_what_is_unchanged():
    # reshape runs before every forward; it may skip its work only while the bottom shapes and
    # the top shapes it set stay as they were.
    layer, bottom, top, _ = make('plain_3x3')
    shape = top[0].shape
    top[0].reshape(1, 1, 1, 1)
    layer.reshape(bottom, top)
    assert top[0].shape == shape
    bottom[0].reshape(1, 3, 8, 7)
    layer.reshape(bottom, top)
    assert top[0].shape == (1, 4, 6, 5) and (layer.out_h, layer.out_w) == (6, 5)
    bottom[0].reshape(1, 5, 8, 7)
    with pytest.raises(CaffeError, match='expected'):
        layer.reshape(bottom, top)
    with pytest.raises(CaffeError, match='expected'):   # a failed reshape is not remembered
        layer.reshape(bottom, top)


# im2col / col2im ------------------------------------------------------------------------------
def brute_im2col(x, k, pad, stride, dilation):
    channels, height, width = x.shape
    out_h = (height + 2 * pad[0] - dilation[0] * (k[0] - 1) - 1) // stride[0] + 1
    out_w = (width + 2 * pad[1] - dilation[1] * (k[1] - 1) - 1) // stride[1] + 1
    col = np.zeros((channels * k[0] * k[1], out_h * out_w), np.float32)
    for c in range(channels):
        for i in range(k[0]):
            for j in range(k[1]):
                for oh in range(out_h):
                    for ow in range(out_w):
                        ih = oh * stride[0] - pad[0] + i * dilation[0]
                        iw = ow * stride[1] - pad[1] + j * dilation[1]
                        if 0 <= ih < height and 0 <= iw < width:
                            col[(c * k[0] + i) * k[1] + j, oh * out_w + ow] = x[c, ih, iw]
    return col, out_h, out_w


def brute_col2im(col, shape, k, pad, stride, dilation, out_h, out_w):
    # Caffe's summation order (channel, kernel row, kernel column, output row, output column),
    # in float32, so the layer must match it bit for bit.
    img = np.zeros(shape, np.float32)
    channels, height, width = shape
    for c in range(channels):
        for i in range(k[0]):
            for j in range(k[1]):
                for oh in range(out_h):
                    for ow in range(out_w):
                        ih = oh * stride[0] - pad[0] + i * dilation[0]
                        iw = ow * stride[1] - pad[1] + j * dilation[1]
                        if 0 <= ih < height and 0 <= iw < width:
                            img[c, ih, iw] += col[(c * k[0] + i) * k[1] + j, oh * out_w + ow]
    return img


@pytest.mark.parametrize('shape,k,pad,stride,dilation', [
    ((2, 5, 6), (3, 3), (1, 1), (1, 1), (1, 1)),
    ((3, 7, 5), (3, 2), (2, 0), (2, 3), (2, 1)),
    ((1, 4, 4), (5, 5), (2, 3), (1, 2), (1, 1)),
    ((2, 9, 8), (3, 3), (3, 1), (3, 1), (3, 2)),
    ((3, 11, 37), (7, 7), (3, 3), (2, 2), (1, 1)),   # ZF's conv1 (stride 2's own path)
])
def test_im2col_and_col2im_match_direct_loops(shape, k, pad, stride, dilation):
    r = np.random.RandomState(0)
    x = r.randn(*shape).astype(np.float32)
    expected, out_h, out_w = brute_im2col(x, k, pad, stride, dilation)
    # A column slice of a wider buffer, as the layer uses for several images.
    wide = np.full((expected.shape[0], 3 * expected.shape[1]), 9, np.float32)
    col = wide[:, expected.shape[1]:2 * expected.shape[1]]
    im2col(x, k[0], k[1], pad[0], pad[1], stride[0], stride[1], dilation[0], dilation[1], col,
           out_h, out_w)
    np.testing.assert_array_equal(col, expected)
    assert (wide[:, :expected.shape[1]] == 9).all() and (wide[:, 2 * expected.shape[1]:] == 9).all()

    grad = r.randn(*expected.shape).astype(np.float32)
    img = np.full(shape, 5, np.float32)
    col2im(grad, k[0], k[1], pad[0], pad[1], stride[0], stride[1], dilation[0], dilation[1],
           out_h, out_w, img)
    brute = brute_col2im(grad, shape, k, pad, stride, dilation, out_h, out_w)
    np.testing.assert_array_equal(img, brute)

    # Bands of output rows: im2col gives those columns; col2im of the bands added last first
    # (accumulate after the first, which overwrites) is the whole col2im to the bit.
    args = (k[0], k[1], pad[0], pad[1], stride[0], stride[1], dilation[0], dilation[1])
    img = np.full(shape, 5, np.float32)
    for band in (1, 2, 3):
        starts = list(range(0, out_h, band))[::-1]
        for i, r0 in enumerate(starts):
            r1 = min(r0 + band, out_h)
            cols = slice(r0 * out_w, r1 * out_w)
            part = np.full((expected.shape[0], (r1 - r0) * out_w), 9, np.float32)
            im2col(x, *args, part, out_h, out_w, r0, r1)
            np.testing.assert_array_equal(part, expected[:, cols])
            col2im(np.ascontiguousarray(grad[:, cols]), *args, out_h, out_w, img, r0, r1, i > 0)
        np.testing.assert_array_equal(img, brute)


# Errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize('params,shape,message', [
    ('kernel_size: 3', (1, 2, 5, 5), 'num_output'),
    ('num_output: 4 kernel_size: 3 group: 2', (1, 3, 5, 5), 'group'),
    ('num_output: 3 kernel_size: 3 group: 2', (1, 4, 5, 5), 'group'),
    ('num_output: 4', (1, 2, 5, 5), 'kernel_size'),
    ('num_output: 4 kernel_size: 3 kernel_h: 3 kernel_w: 3', (1, 2, 5, 5), 'not both'),
    # Caffe reads kernel_h and kernel_w as a pair; an absent kernel_w is its default, 0.
    ('num_output: 4 kernel_h: 3', (1, 2, 5, 5), r'kernel \(3, 0\).*positive'),
    ('num_output: 4 kernel_size: 8 pad: 1', (1, 2, 5, 5), 'larger than the padded input'),
    ('num_output: 4 kernel_size: 3 dilation: 3', (1, 2, 6, 6), 'larger than the padded input'),
    ('num_output: 4 kernel_size: 3 stride: 0', (1, 2, 5, 5), 'positive'),
])
def test_bad_parameters_name_the_layer(params, shape, message):
    with pytest.raises(CaffeError, match=message) as info:
        build_layer('name: "bad_conv" type: "Convolution" bottom: "x" top: "y" '
                    'convolution_param { %s }' % params, [np.zeros(shape)])
    assert 'bad_conv' in str(info.value)


def test_channel_change_after_setup_is_an_error():
    layer, bottom, top, _ = make('plain_3x3')
    bottom[0].reshape(2, 4, 6, 5)
    with pytest.raises(CaffeError, match='conv'):
        layer.reshape(bottom, top)
