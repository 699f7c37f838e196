"""Im2col: Caffe's top shape and column layout against direct loops (2-D, N-d, a channel axis
other than 1), force_nd_im2col giving the same numbers, col2im as the gradient (exhaustive
check), and errors."""
import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.testing import build_layer, check_gradient_exhaustive


def im2col_text(params):
    return 'name: "i" type: "Im2col" bottom: "x" top: "y" convolution_param { %s }' % params


def brute_columns(x, kernel, pad, stride, dilation, axis=1):
    """(*batch, C * prod(kernel), *out): row (c, tap) holds the value each output position's
    tap sees, 0 in the padding."""
    batch = x.shape[:axis]
    x = x.reshape((-1,) + x.shape[axis:])
    channels, image = x.shape[1], x.shape[2:]
    out = tuple((i + 2 * p - d * (k - 1) - 1) // s + 1
                for i, k, p, s, d in zip(image, kernel, pad, stride, dilation))
    taps = list(np.ndindex(*kernel))
    y = np.zeros((x.shape[0], channels * len(taps)) + out, np.float32)
    for n in range(x.shape[0]):
        for c in range(channels):
            for t, tap in enumerate(taps):
                for o in np.ndindex(*out):
                    pos = tuple(q * s - p + k * d for q, s, p, k, d in
                                zip(o, stride, pad, tap, dilation))
                    if all(0 <= v < size for v, size in zip(pos, image)):
                        y[(n, c * len(taps) + t) + o] = x[(n, c) + pos]
    return y.reshape(batch + y.shape[1:])


@pytest.mark.parametrize('params,shape,kernel,pad,stride,dilation,axis', [
    ('kernel_size: 3 pad: 1 stride: 2', (2, 3, 5, 6), (3, 3), (1, 1), (2, 2), (1, 1), 1),
    ('kernel_h: 2 kernel_w: 3 stride_h: 1 stride_w: 2 pad_h: 0 pad_w: 1 dilation: 2',
     (1, 2, 6, 5), (2, 3), (0, 1), (1, 2), (2, 2), 1),
    ('kernel_size: 2 kernel_size: 1 kernel_size: 2 pad: 1', (2, 2, 3, 2, 4), (2, 1, 2),
     (1, 1, 1), (1, 1, 1), (1, 1, 1), 1),
    ('kernel_size: 2 axis: 2', (2, 2, 3, 4, 3), (2, 2), (0, 0), (1, 1), (1, 1), 2),
    ('kernel_size: 3 stride: 2 force_nd_im2col: true', (2, 2, 7, 5), (3, 3), (0, 0), (2, 2),
     (1, 1), 1),
])
def test_forward_and_backward(params, shape, kernel, pad, stride, dilation, axis):
    r = np.random.RandomState(0)
    x = r.randn(*shape).astype(np.float32)
    layer, bottom, top = build_layer(im2col_text(params), [x])
    layer.forward(bottom, top)
    expected = brute_columns(x, kernel, pad, stride, dilation, axis)
    assert top[0].shape == expected.shape
    np.testing.assert_array_equal(top[0].data, expected)
    # Backward is the adjoint: <im2col(x), g> = <x, col2im(g)>.
    g = r.randn(*top[0].shape).astype(np.float32)
    top[0].diff[...] = g
    layer.backward(top, [True], bottom)
    lhs = np.dot(expected.ravel().astype(np.float64), g.ravel())
    rhs = np.dot(x.ravel().astype(np.float64), bottom[0].diff.ravel())
    assert abs(lhs - rhs) < 1e-4 * max(1, abs(lhs))


def test_force_nd_is_bit_for_bit_the_2d_path():
    r = np.random.RandomState(1)
    x = r.randn(2, 3, 6, 5).astype(np.float32)
    out = []
    for extra in ('', 'force_nd_im2col: true'):
        layer, bottom, top = build_layer(im2col_text('kernel_size: 3 pad: 1 dilation: 2 ' +
                                                     extra), [x])
        layer.forward(bottom, top)
        top[0].diff[...] = np.linspace(-3, 2, top[0].count).reshape(top[0].shape)
        layer.backward(top, [True], bottom)
        out.append((top[0].data.copy(), bottom[0].diff.copy()))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])


def test_gradient_exhaustive():
    layer, bottom, top = build_layer(im2col_text('kernel_size: 2 stride: 1 pad: 1'),
                                     [np.random.RandomState(2).randn(1, 1, 2, 2)])
    check_gradient_exhaustive(layer, bottom, top)


def test_kernel_larger_than_the_input_is_an_error():
    with pytest.raises(CaffeError, match='larger than the padded input'):
        build_layer(im2col_text('kernel_size: 5'), [np.zeros((1, 1, 3, 3))])
