"""Winograd convolution (caffe/layers/winograd.py) and the choice of algorithm
(conv_algorithm.py): the Toom-Cook matrices against exact arithmetic, the kernels against those
matrices, the layer's forward and both gradients against float64 definitions on sizes that are
not tile multiples, finite-difference gradient checks per algorithm, the shapes that stay on
im2col, and the error that makes F(2x2) the default and F(4x4) an opt-in."""
import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

import caffe
from caffe.common import CaffeError
from caffe.layers import conv_algorithm, convolution, winograd
from caffe.layers import winograd_kernels as kernels
from caffe.testing import build_layer, check_gradient

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POLICIES = {2: 'auto', 4: 'winograd4'}


@pytest.fixture
def policy(monkeypatch):
    """Sets the process's policy for one test (and puts it back)."""
    monkeypatch.setattr(conv_algorithm, '_policy', None)
    monkeypatch.delenv(conv_algorithm.ENVIRONMENT, raising=False)
    return conv_algorithm.set_policy


# float64 definitions ----------------------------------------------------------------------------
def padded(x, pad):
    n, c, h, w = x.shape
    out = np.zeros((n, c, h + 2 * pad[0], w + 2 * pad[1]))
    out[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + w] = x
    return out


def conv64(x, w, b, pad):
    """y[n, k, i, j] = b[k] + sum over c and the 3x3 taps of w[k, c, u, v] x[n, c, i+u-p, j+v-p],
    zero outside the image: one shifted window per tap, in float64."""
    xp = padded(x.astype(np.float64), pad)
    oh, ow = xp.shape[2] - 2, xp.shape[3] - 2
    y = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for u in range(3):
        for v in range(3):
            y += np.einsum('kc,nchw->nkhw', w[:, :, u, v].astype(np.float64),
                           xp[:, :, u:u + oh, v:v + ow])
    return y if b is None else y + np.asarray(b, np.float64)[None, :, None, None]


def data_grad64(dy, w, pad, shape):
    """The adjoint of conv64 in x: every tap's window of the padded input gets w^T dy."""
    n, c, h, width = shape
    dxp = np.zeros((n, c, h + 2 * pad[0], width + 2 * pad[1]))
    oh, ow = dy.shape[2:]
    for u in range(3):
        for v in range(3):
            dxp[:, :, u:u + oh, v:v + ow] += np.einsum('kc,nkhw->nchw',
                                                        w[:, :, u, v].astype(np.float64), dy)
    return dxp[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + width]


def weight_grad64(x, dy, pad):
    xp = padded(x.astype(np.float64), pad)
    oh, ow = dy.shape[2:]
    taps = [np.einsum('nkhw,nchw->kc', dy.astype(np.float64), xp[:, :, u:u + oh, v:v + ow])
            for u in range(3) for v in range(3)]
    return np.stack(taps, axis=2).reshape(dy.shape[1], x.shape[1], 3, 3)


def relative_error(value, reference):
    """Largest error over the largest magnitude of the reference: the measure the default's
    1e-5 bound is stated in."""
    return float(np.abs(value - reference).max() / np.abs(reference).max())


# The matrices -------------------------------------------------------------------------------------
@pytest.mark.parametrize('m,r', [(2, 3), (4, 3), (3, 2)])
def test_toom_cook_is_exact_correlation(m, r):
    # In exact arithmetic y = A^T [(G g) . (B^T d)] is y_i = sum_j d_{i+j} g_j for any d, g.
    points = winograd.POINTS[2] if m + r - 1 == 4 else winograd.POINTS[4]
    at, g, bt = winograd.toom_cook(m, r, points)
    rng = np.random.RandomState(m * 10 + r)
    for _ in range(5):
        d = [Fraction(int(v)) for v in rng.randint(-50, 50, m + r - 1)]
        f = [Fraction(int(v)) for v in rng.randint(-50, 50, r)]
        product = (g.dot(np.array(f, dtype=object))) * (bt.dot(np.array(d, dtype=object)))
        y = at.dot(product)
        assert list(y) == [sum(d[i + j] * f[j] for j in range(r)) for i in range(m)]
    # B^T has integer entries (the scale went into G).
    assert all(x.denominator == 1 for x in bt.ravel())


def test_weight_gradient_shares_the_forward_input_transform():
    # F(3, 2) and F(2, 3) interpolate at the same points, so the input tiles of the weight
    # gradient are the forward F(2x2)'s.
    np.testing.assert_array_equal(winograd.GRADIENT_MATRICES[2], winograd.MATRICES[2][2])


def tile_reference(image, m, pad, tiles_h, tiles_w):
    """B^T d B of every tile, (a*a, C, tiles), in float64 from the matrices."""
    bt = winograd.MATRICES[m][2]
    a = m + 2
    xp = np.zeros((image.shape[0], tiles_h * m + 2 + 2 * abs(pad[0]),
                   tiles_w * m + 2 + 2 * abs(pad[1])))
    h, w = image.shape[1:]
    xp[:, pad[0]:pad[0] + h, pad[1]:pad[1] + w] = image[:, :xp.shape[1] - pad[0],
                                                        :xp.shape[2] - pad[1]]
    out = np.empty((a * a, image.shape[0], tiles_h * tiles_w))
    for ty in range(tiles_h):
        for tx in range(tiles_w):
            d = xp[:, ty * m:ty * m + a, tx * m:tx * m + a]
            v = np.einsum('ij,cjk,lk->cil', bt, d, bt).reshape(image.shape[0], a * a)
            out[:, :, ty * tiles_w + tx] = v.T
    return out


@pytest.mark.parametrize('m', [2, 4])
def test_input_and_output_kernels_match_the_matrices(m):
    rng = np.random.RandomState(m)
    a = m + 2
    image = rng.randn(3, 7, 10).astype(np.float32)
    tiles_h, tiles_w = winograd.tile_count(7, m), winograd.tile_count(8, m)
    v = np.full((a * a, 3, (tiles_h - 1) * tiles_w), np.nan, np.float32)
    kernels.input_transform(image, m, 1, 2, 1, tiles_h, tiles_w, v)   # all tile rows but one
    expected = tile_reference(image, m, (1, 2), tiles_h, tiles_w)[:, :, tiles_w:]
    np.testing.assert_allclose(v, expected, rtol=1e-6, atol=1e-5)

    at = winograd.MATRICES[m][0]
    products = rng.randn(a * a, 2, tiles_h * tiles_w).astype(np.float32)
    bias = np.array([0.5, -2], np.float32)
    out = np.full((2, 7, 8), np.nan, np.float32)
    kernels.output_transform(products, m, bias, 0, tiles_h, tiles_w, out)
    tiles = products.reshape(a, a, 2, tiles_h, tiles_w).astype(np.float64)
    y = np.einsum('ij,jlkpq,ml->kpiqm', at, tiles, at).reshape(2, tiles_h * m, tiles_w * m)
    np.testing.assert_allclose(out, y[:, :7, :8] + bias[:, None, None], rtol=1e-5, atol=1e-5)


def test_gradient_kernel_matches_its_matrix():
    rng = np.random.RandomState(3)
    top_diff = rng.randn(2, 5, 7).astype(np.float32)
    out = np.full((16, 2, 3 * 4), np.nan, np.float32)
    kernels.gradient_transform(top_diff, 0, 3, 4, out)
    g = winograd.GRADIENT_MATRICES[1]
    padded_diff = np.zeros((2, 6, 8))
    padded_diff[:, :5, :7] = top_diff
    for ty in range(3):
        for tx in range(4):
            tile = padded_diff[:, 2 * ty:2 * ty + 2, 2 * tx:2 * tx + 2]
            expected = np.einsum('ij,kjl,ml->kim', g, tile, g).reshape(2, 16).T
            np.testing.assert_allclose(out[:, :, ty * 4 + tx], expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('call', [
    lambda: kernels.input_transform(np.zeros((2, 5, 5), np.float32), 3, 1, 1, 0, 1, 3,
                                    np.zeros((25, 2, 3), np.float32)),
    lambda: kernels.input_transform(np.zeros((2, 5, 5), np.float32), 2, 1, 1, 0, 1, 3,
                                    np.zeros((16, 2, 4), np.float32)),
    lambda: kernels.output_transform(np.zeros((16, 2, 3), np.float32), 2, None, 0, 1, 3,
                                     np.zeros((2, 2, 7), np.float32)),
    lambda: kernels.output_transform(np.zeros((16, 2, 3), np.float32), 2,
                                     np.zeros(3, np.float32), 0, 1, 3,
                                     np.zeros((2, 2, 6), np.float32)),
])
def test_kernels_refuse_mismatched_shapes(call):
    with pytest.raises(ValueError):
        call()


# The layer ----------------------------------------------------------------------------------------
def conv_layer(x, num_output, params='', bottoms=1):
    text = ('name: "wconv" type: "Convolution" %s %s convolution_param { num_output: %d '
            'kernel_size: 3 %s weight_filler { type: "gaussian" std: 0.3 } '
            'bias_filler { type: "gaussian" std: 1 } }'
            % (' '.join('bottom: "x%d"' % i for i in range(bottoms)),
               ' '.join('top: "y%d"' % i for i in range(bottoms)), num_output, params))
    return build_layer(text, x if isinstance(x, list) else [x])


# (input shape, num_output, pad): heights and widths that are not multiples of 2 or 4, pads of
# 0, 1 and 2, one and two images.
SHAPES = [((2, 16, 7, 9), 16, (1, 1)), ((1, 17, 11, 6), 20, (0, 0)), ((1, 16, 5, 13), 18, (2, 1)),
          ((2, 24, 10, 10), 16, (1, 2))]


@pytest.mark.parametrize('tile', [2, 4])
@pytest.mark.parametrize('shape,num_output,pad', SHAPES)
def test_forward_and_gradients_match_float64(policy, tile, shape, num_output, pad):
    policy(POLICIES[tile])
    rng = np.random.RandomState(sum(shape))
    x = rng.randn(*shape).astype(np.float32)
    layer, bottom, top = conv_layer(x, num_output, 'pad_h: %d pad_w: %d' % pad)
    assert layer.winograd is not None and layer.winograd.tile == tile
    w, b = layer.blobs[0].data, layer.blobs[1].data
    layer.forward(bottom, top)
    expected = conv64(x, w, b, pad)
    assert top[0].shape == expected.shape
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-4, atol=1e-4 * tile)

    dy = rng.randn(*top[0].shape).astype(np.float32)
    top[0].diff[...] = dy
    layer.blobs[0].diff[...] = 1   # the weight gradient accumulates
    layer.blobs[1].diff[...] = 0
    bottom[0].diff[...] = np.nan   # the data gradient overwrites
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, data_grad64(dy, w, pad, shape),
                               rtol=1e-4, atol=1e-4 * tile)
    np.testing.assert_allclose(layer.blobs[0].diff, 1 + weight_grad64(x, dy, pad),
                               rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(layer.blobs[1].diff, dy.astype(np.float64).sum((0, 2, 3)),
                               rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize('tile', [2, 4])
def test_bands_and_several_bottoms(policy, monkeypatch, tile):
    # A column buffer of one tile row per band; two bottoms sharing the weights.
    policy(POLICIES[tile])
    monkeypatch.setattr(convolution, 'COL_BUFFER_FLOATS', 1)
    rng = np.random.RandomState(5)
    xs = [rng.randn(2, 16, 9, 7).astype(np.float32) for _ in range(2)]
    layer, bottom, top = conv_layer(xs, 16, 'pad: 1', bottoms=2)
    layer.forward(bottom, top)
    w, b = layer.blobs[0].data, layer.blobs[1].data
    layer.blobs[0].diff[...] = 0
    dys = [rng.randn(*top[0].shape).astype(np.float32) for _ in range(2)]
    for t, dy in zip(top, dys):
        t.diff[...] = dy
    layer.backward(top, [True, True], bottom)
    for i in range(2):
        np.testing.assert_allclose(top[i].data, conv64(xs[i], w, b, (1, 1)), rtol=1e-4,
                                   atol=1e-4 * tile)
        np.testing.assert_allclose(bottom[i].diff, data_grad64(dys[i], w, (1, 1), xs[i].shape),
                                   rtol=1e-4, atol=1e-4 * tile)
    np.testing.assert_allclose(layer.blobs[0].diff, weight_grad64(xs[0], dys[0], (1, 1)) +
                               weight_grad64(xs[1], dys[1], (1, 1)), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize('tile', [2, 4])
@pytest.mark.parametrize('params,shape', [('num_output: 3 pad: 1', (2, 2, 6, 7)),
                                          ('num_output: 2 pad: 0', (1, 3, 7, 5)),
                                          ('num_output: 2 pad: 2 bias_term: false', (1, 2, 5, 6)),
                                          ('num_output: 2 pad: 3', (1, 2, 4, 5))])
@pytest.mark.parametrize('seed', [1, 2, 3])
def test_finite_difference_gradients(policy, monkeypatch, tile, params, shape, seed):
    # Small layers (Winograd forced below its channel threshold) so every element is checked;
    # a pad of 3 makes the data gradient's padding negative (a crop).
    monkeypatch.setattr(conv_algorithm, 'MIN_CHANNELS', 1)
    policy(POLICIES[tile])
    x = np.random.RandomState(7).randn(*shape).astype(np.float32)
    caffe.set_random_seed(seed)  # the fillers' weights, whatever ran before
    layer, bottom, top = build_layer(
        'name: "g" type: "Convolution" bottom: "x" top: "y" convolution_param { %s '
        'kernel_size: 3 weight_filler { type: "gaussian" std: 0.5 } '
        'bias_filler { type: "gaussian" } }' % params, [x])
    assert layer.winograd is not None and layer.winograd.tile == tile
    # The central difference divides the forward pass's float32 error by the step (1e-2):
    # F(4x4)'s, some ten times im2col's (docs/cpu_performance.md), leaves about 1e-3 of noise
    # in the numeric side, so its check allows 3e-3. The analytic gradients themselves are held
    # to 1e-4 against float64 above.
    check_gradient(layer, bottom, top, threshold=1e-3 if tile == 2 else 3e-3)


@pytest.mark.parametrize('params', [
    'kernel_size: 3 stride: 2 pad: 1', 'kernel_size: 3 dilation: 2 pad: 2',
    'kernel_size: 3 pad: 1 group: 2', 'kernel_size: 5 pad: 2', 'kernel_size: 1',
    'kernel_h: 3 kernel_w: 1 pad_h: 1 pad_w: 0', 'kernel_size: 3 pad: 1 engine: CAFFE'])
@pytest.mark.parametrize('name', ['auto', 'winograd4'])
def test_other_shapes_and_engine_caffe_stay_on_im2col(policy, params, name):
    # These must be the im2col path itself: the same floats as with the policy 'im2col'.
    rng = np.random.RandomState(2)
    x = rng.randn(2, 16, 9, 8).astype(np.float32)
    results = []
    for p in (name, 'im2col'):
        policy(p)
        text = ('name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param { '
                'num_output: 16 %s }' % params)
        layer, bottom, top = build_layer(text, [x])
        assert layer.winograd is None
        layer.blobs[0].data[...] = rng.randn(*layer.blobs[0].shape) if not results else \
            results[0][0]
        layer.forward(bottom, top)
        results.append((layer.blobs[0].data.copy(), top[0].data.copy()))
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_small_channel_counts_stay_on_im2col(policy):
    policy('auto')
    layer, _, _ = conv_layer(np.zeros((1, 3, 8, 8), np.float32), 64, 'pad: 1')
    assert layer.winograd is None     # VGG16's conv1_1: 3 input channels
    layer, _, _ = conv_layer(np.zeros((1, 64, 8, 8), np.float32), 8, 'pad: 1')
    assert layer.winograd is None


def test_policy_im2col_and_reshape_follow_the_policy(policy):
    policy('im2col')
    x = np.zeros((1, 16, 8, 8), np.float32)
    layer, bottom, top = conv_layer(x, 16, 'pad: 1')
    assert layer.winograd is None
    policy('winograd4')
    bottom[0].reshape(1, 16, 9, 8)   # a new shape: the layer chooses again
    layer.reshape(bottom, top)
    assert layer.winograd.tile == 4


def test_bad_policy_is_an_error(policy, monkeypatch):
    with pytest.raises(CaffeError, match='expected one of'):
        policy('winograd8')
    monkeypatch.setenv(conv_algorithm.ENVIRONMENT, 'fastest')
    with pytest.raises(CaffeError, match='CAFFE_CPU_CONV'):
        conv_algorithm.policy()
    monkeypatch.setenv(conv_algorithm.ENVIRONMENT, 'Winograd4')
    assert conv_algorithm.policy() == 'winograd4'


# The default's accuracy ---------------------------------------------------------------------------
def test_default_error_is_within_the_golden_bound_and_f4_is_not_below_it(policy):
    # A VGG16-like layer (256 channels; post-ReLU inputs, He-scaled weights): F(2x2) must stay
    # within the 1e-5 (of the largest output) that makes it the default, about twice im2col's
    # error; F(4x4) is measurably worse, which is why it is only an opt-in.
    rng = np.random.RandomState(11)
    x = np.maximum(rng.randn(1, 256, 19, 31), 0).astype(np.float32)
    w = (rng.randn(256, 256, 3, 3) * np.sqrt(2.0 / (9 * 256))).astype(np.float32)
    reference = conv64(x, w, None, (1, 1))
    errors = {}
    for name in ('im2col', 'auto', 'winograd4'):
        policy(name)
        layer, bottom, top = conv_layer(x, 256, 'pad: 1 bias_term: false')
        layer.blobs[0].data[...] = w
        layer.forward(bottom, top)
        errors[name] = relative_error(top[0].data, reference)
    assert errors['im2col'] < 1e-6
    assert errors['auto'] < 1e-5 / 4
    assert errors['winograd4'] > 2 * errors['auto']


def test_results_do_not_depend_on_the_kernels_thread_count():
    # Every output of the transforms is one thread's: one and two OpenMP threads give the same
    # bits. (Whether BLAS's own results depend on its thread count is BLAS's matter; both runs
    # use one BLAS thread.)
    script = (
        'import numpy as np, sys\n'
        'from caffe.testing import build_layer\n'
        'r = np.random.RandomState(0)\n'
        'x = r.randn(1, 32, 90, 74).astype(np.float32)\n'
        'l, b, t = build_layer(\'name: "c" type: "Convolution" bottom: "x" top: "y" '
        'convolution_param { num_output: 48 kernel_size: 3 pad: 1 '
        'weight_filler { type: "gaussian" std: 0.1 } }\', [x])\n'
        'assert l.winograd is not None\n'
        'l.blobs[0].data[...] = r.randn(*l.blobs[0].shape) * 0.1\n'
        'l.forward(b, t)\n'
        't[0].diff[...] = r.randn(*t[0].shape)\n'
        'l.backward(t, [True], b)\n'
        'sys.stdout.buffer.write(t[0].data.tobytes() + b[0].diff.tobytes() + '
        'l.blobs[0].diff.tobytes())\n')
    outputs = []
    for threads in ('1', '2'):
        env = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS='1',
                   PYTHONPATH=os.path.join(ROOT, 'lib'))
        env.pop(conv_algorithm.ENVIRONMENT, None)
        outputs.append(subprocess.run([sys.executable, '-c', script], env=env, check=True,
                                      capture_output=True).stdout)
    assert len(outputs[0]) > 0 and outputs[0] == outputs[1]
