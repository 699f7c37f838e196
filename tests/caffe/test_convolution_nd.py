"""Convolution beyond the 2-D NCHW case, as Caffe runs it: N-d kernels (1-D, 3-D), a channel
axis other than 1, force_nd_im2col; against a brute-force N-d convolution in float64, with
gradient checks, and the N-d im2col/col2im kernels against direct loops and the 2-D kernels."""
import numpy as np
import pytest

from caffe.layers.im2col import col2im, im2col
from caffe.layers.im2col_nd import col2im_nd, im2col_nd
from caffe.testing import build_layer, check_gradient


def conv_text(params, kind='Convolution'):
    return ('name: "conv" type: "%s" bottom: "x" top: "y" convolution_param { %s '
            'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" } }'
            % (kind, params))


def brute_conv_nd(x, w, b, pad, stride, dilation, group, axis=1):
    """Each output is the sum over its window (zero outside the input); x: (*batch, C, *in),
    w: (O, C/group, *kernel)."""
    batch = x.shape[:axis]
    x = x.reshape((-1,) + x.shape[axis:]).astype(np.float64)
    spatial = x.shape[2:]
    out_c, group_c, kernel = w.shape[0], w.shape[1], w.shape[2:]
    out_shape = tuple((i + 2 * p - d * (k - 1) - 1) // s + 1
                      for i, k, p, s, d in zip(spatial, kernel, pad, stride, dilation))
    y = np.zeros((x.shape[0], out_c) + out_shape)
    per_group = out_c // group
    for n in range(x.shape[0]):
        for m in range(out_c):
            first = (m // per_group) * group_c
            for o in np.ndindex(*out_shape):
                total = 0.0 if b is None else float(b[m])
                for c in range(group_c):
                    for tap in np.ndindex(*kernel):
                        pos = tuple(q * s - p + t * d for q, s, p, t, d in
                                    zip(o, stride, pad, tap, dilation))
                        if all(0 <= v < size for v, size in zip(pos, spatial)):
                            total += float(w[(m, c) + tap]) * float(x[(n, first + c) + pos])
                y[(n, m) + o] = total
    return y.reshape(batch + y.shape[1:])


# (params, pad, stride, dilation, group, input shape, axis)
CASES = {
    '3d_group_pad_stride': ('num_output: 4 kernel_size: 3 kernel_size: 2 kernel_size: 2 pad: 1 '
                            'stride: 2 group: 2', (1, 1, 1), (2, 2, 2), (1, 1, 1), 2,
                            (2, 4, 5, 4, 3), 1),
    '3d_dilation_per_axis': ('num_output: 2 kernel_size: 2 dilation: 1 dilation: 2 dilation: 1 '
                             'pad: 0 pad: 1 pad: 0', (0, 1, 0), (1, 1, 1), (1, 2, 1), 1,
                             (1, 2, 3, 4, 3), 1),
    '1d_dilation_pad': ('num_output: 3 kernel_size: 3 dilation: 2 pad: 1', (1,), (1,), (2,), 1,
                        (2, 2, 9), 1),
    '2d_axis2': ('num_output: 3 kernel_size: 3 pad: 1 axis: 2', (1, 1), (1, 1), (1, 1), 1,
                 (2, 3, 2, 5, 4), 2),
    '2d_axis_minus3': ('num_output: 2 kernel_size: 2 stride: 2 axis: -3', (0, 0), (2, 2),
                          (1, 1), 1, (3, 2, 4, 5), 1),
    '2d_force_nd': ('num_output: 3 kernel_size: 3 stride: 2 pad: 1 force_nd_im2col: true',
                    (1, 1), (2, 2), (1, 1), 1, (2, 2, 5, 6), 1),
    '3d_one_by_one': ('num_output: 3 kernel_size: 1', (0, 0, 0), (1, 1, 1), (1, 1, 1), 1,
                      (2, 2, 2, 3, 2), 1),
}


def make(case, seed=0):
    params, pad, stride, dilation, group, shape, axis = CASES[case]
    x = np.random.RandomState(seed).randn(*shape).astype(np.float32)
    layer, bottom, top = build_layer(conv_text(params), [x])
    return layer, bottom, top, (pad, stride, dilation, group, axis)


@pytest.mark.parametrize('case', sorted(CASES))
def test_forward_matches_brute_force(case):
    layer, bottom, top, (pad, stride, dilation, group, axis) = make(case)
    # axis -3 of a 4-D blob is axis 1: the 2-D path; every other case takes the general one.
    assert layer.general == (case != '2d_axis_minus3')
    layer.forward(bottom, top)
    expected = brute_conv_nd(bottom[0].data, layer.blobs[0].data, layer.blobs[1].data, pad,
                             stride, dilation, group, axis)
    assert top[0].shape == expected.shape
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('case', sorted(CASES))
def test_gradient(case):
    layer, bottom, top, _ = make(case, seed=1)
    check_gradient(layer, bottom, top, max_checks=25)


def test_weight_shape_has_every_kernel_axis():
    layer, _, top, _ = make('3d_group_pad_stride')
    assert layer.blobs[0].shape == (4, 2, 3, 2, 2)
    assert top[0].shape == (2, 4, 3, 3, 2)


def test_nd_path_matches_the_2d_path():
    # Caffe's TestNDAgainst2D: force_nd_im2col computes what the 2-D path computes.
    r = np.random.RandomState(2)
    x = r.randn(2, 3, 6, 5).astype(np.float32)
    results = []
    for extra in ('', 'force_nd_im2col: true'):
        layer, bottom, top = build_layer(conv_text('num_output: 4 kernel_size: 3 stride: 2 '
                                                   'pad: 1 dilation: 1 group: 1 ' + extra), [x])
        layer.blobs[0].data[...] = r.randn(*layer.blobs[0].shape) if not results else \
            results[0][4]
        layer.blobs[1].data[...] = 0.5
        layer.forward(bottom, top)
        top[0].diff[...] = np.linspace(-1, 1, top[0].count).reshape(top[0].shape)
        for p in layer.blobs:
            p.diff[...] = 0
        layer.backward(top, [True], bottom)
        results.append([top[0].data.copy(), bottom[0].diff.copy(), layer.blobs[0].diff.copy(),
                        layer.blobs[1].diff.copy(), layer.blobs[0].data.copy()])
    # The 2-D path batches images into one product, the N-d one goes image by image: BLAS
    # may block the sums differently, so float32 tolerance.
    for a, b in zip(results[0][:4], results[1][:4]):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)


def _geometry(image, out, kernel, pad, stride, dilation):
    return np.array((len(kernel),) + image + out + kernel + pad + stride + dilation, np.int32)


@pytest.mark.parametrize('image,kernel,pad,stride,dilation', [
    ((5, 6), (3, 2), (1, 0), (2, 1), (1, 2)),
    ((4, 3, 5), (2, 3, 2), (1, 1, 0), (1, 2, 2), (2, 1, 1)),
    ((7,), (3,), (2,), (3,), (2,)),
])
def test_im2col_nd_matches_direct_loops(image, kernel, pad, stride, dilation):
    r = np.random.RandomState(3)
    channels = 2
    x = r.randn(channels, *image).astype(np.float32)
    out = tuple((i + 2 * p - d * (k - 1) - 1) // s + 1
                for i, k, p, s, d in zip(image, kernel, pad, stride, dilation))
    g = _geometry(image, out, kernel, pad, stride, dilation)
    taps = list(np.ndindex(*kernel))
    expected = np.zeros((channels * len(taps), int(np.prod(out))), np.float32)
    grad = r.randn(*expected.shape).astype(np.float32)
    back = np.zeros(x.shape, np.float64)
    for c in range(channels):
        for t, tap in enumerate(taps):
            for j, o in enumerate(np.ndindex(*out)):
                pos = tuple(q * s - p + k * d for q, s, p, k, d in
                            zip(o, stride, pad, tap, dilation))
                if all(0 <= v < n for v, n in zip(pos, image)):
                    expected[c * len(taps) + t, j] = x[(c,) + pos]
                    back[(c,) + pos] += grad[c * len(taps) + t, j]
    col = np.full(expected.shape, 9, np.float32)
    im2col_nd(x.reshape(channels, -1), g, col)
    np.testing.assert_array_equal(col, expected)
    img = np.full(x.shape, 9, np.float32)
    col2im_nd(grad, g, img.reshape(channels, -1))
    np.testing.assert_allclose(img, back, rtol=1e-6, atol=1e-6)
    if len(image) == 2:
        # The 2-D kernels give the same matrix, and col2im the same float32 sums.
        col2 = np.empty_like(col)
        im2col(x, *kernel, *pad, *stride, *dilation, col2, *out)
        np.testing.assert_array_equal(col2, col)
        img2 = np.empty_like(img)
        col2im(grad, *kernel, *pad, *stride, *dilation, *out, img2)
        np.testing.assert_array_equal(img2, img)


def test_im2col_nd_rejects_a_bad_geometry():
    with pytest.raises(ValueError, match='geometry'):
        im2col_nd(np.zeros((1, 4), np.float32), np.array([2, 2, 2], np.int32),
                  np.zeros((1, 4), np.float32))
