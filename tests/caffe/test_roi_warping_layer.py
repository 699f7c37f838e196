"""ROIWarping against an independent float64 reference, finite differences for both gradients,
the conventions at the kinks, propagate_down, and a whole net."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import caffe
from caffe.common import CaffeError
from caffe.testing import build_layer, check_gradient

WARP = '''name: "warp" type: "ROIWarping" bottom: "conv" bottom: "rois" top: "warped"
roi_warping_param { pooled_h: %d pooled_w: %d spatial_scale: %r samples_per_bin: %d }'''


# The float64 reference, written from the definition in docs/roi_warping.md ---------------------

def tent(d):
    return np.maximum(0.0, 1.0 - np.abs(d))


def interpolate(plane, y, x):
    """Bilinear interpolation written as a sum of tents over every cell: cell (h, w) holds its
    value at cell-index position (h, w); there are no cells off the map (they count as 0)."""
    height, width = plane.shape
    return float(tent(y - np.arange(height)) @ plane.astype(np.float64)
                 @ tent(x - np.arange(width)))


def positions(lo, hi, count, scale):
    """Cell-index positions of `count` samples spread evenly over the box edges lo .. hi + 1
    (image pixels, the +1 convention), each at the middle of its step; cell centres at j + 0.5
    in map coordinates, hence the -0.5."""
    k = np.arange(count, dtype=np.float64)
    return scale * (lo + (k + 0.5) / count * (hi - lo + 1.0)) - 0.5


def sample_grids(rois, scale, ph, pw, f):
    """Per RoI: (image, sample rows, sample columns)."""
    out = []
    for roi in np.asarray(rois, np.float64):
        out.append((int(roi[0]), positions(roi[2], roi[4], f * ph, scale),
                    positions(roi[1], roi[3], f * pw, scale)))
    return out


def reference_forward(data, rois, ph, pw, scale, f):
    """Warped features (float64) and, per bin, the index i * f + j of the first maximum."""
    out = np.zeros((len(rois), data.shape[1], ph, pw))
    choice = np.zeros(out.shape, np.int64)
    for r, (b, ys, xs) in enumerate(sample_grids(rois, scale, ph, pw, f)):
        for c in range(data.shape[1]):
            samples = np.array([[interpolate(data[b, c], y, x) for x in xs] for y in ys])
            for i in range(ph):
                for j in range(pw):
                    block = samples[i * f:(i + 1) * f, j * f:(j + 1) * f].ravel()
                    choice[r, c, i, j] = int(np.argmax(block))  # first maximum
                    out[r, c, i, j] = block.max()
    return out, choice


def reference_feature_gradient(shape, rois, top_diff, choice, ph, pw, scale, f):
    grad = np.zeros(shape)
    height, width = shape[2:]
    for r, (b, ys, xs) in enumerate(sample_grids(rois, scale, ph, pw, f)):
        for c in range(shape[1]):
            for i in range(ph):
                for j in range(pw):
                    a = choice[r, c, i, j]
                    y, x = ys[i * f + a // f], xs[j * f + a % f]
                    grad[b, c] += top_diff[r, c, i, j] * np.outer(tent(y - np.arange(height)),
                                                                  tent(x - np.arange(width)))
    return grad


def slopes(plane, y, x, eps=1e-7):
    """d/dy and d/dx of the interpolation (central differences: used only away from kinks)."""
    return ((interpolate(plane, y + eps, x) - interpolate(plane, y - eps, x)) / (2 * eps),
            (interpolate(plane, y, x + eps) - interpolate(plane, y, x - eps)) / (2 * eps))


def kink_free(data, roi, ph, pw, scale, f, step):
    """Whether moving any corner of roi by +-step keeps every sample off integer positions (no
    bilinear kink, the map border included) and every max-pool block's winner ahead by more
    than the samples can move (no change of argmax)."""
    (b, ys, xs), = sample_grids([roi], scale, ph, pw, f)
    move = scale * step  # a position moves by at most scale per unit of a corner
    for p in np.concatenate([ys, xs]):
        if abs(p - np.round(p)) <= move + 1e-3:
            return False
    if f == 1:
        return True
    for c in range(data.shape[1]):
        plane = data[b, c]
        for i in range(ph):
            for j in range(pw):
                block = [(interpolate(plane, y, x), max(map(abs, slopes(plane, y, x))))
                         for y in ys[i * f:(i + 1) * f] for x in xs[j * f:(j + 1) * f]]
                values = sorted(v for v, _ in block)
                steepest = max(s for _, s in block)
                # +0.03: the feature check's +-0.01 steps move a sample by up to 0.01
                if values[-1] - values[-2] <= 2 * steepest * move + 0.03:
                    return False
    return True


def smooth_features(shape, seed):
    """A tilted plane plus noise: samples in a pooling block differ clearly (few near-ties)."""
    rs = np.random.RandomState(seed)
    n, c, h, w = shape
    ramp = (np.arange(h)[:, None] * rs.uniform(0.5, 1.0, size=(n, c, 1, 1)) +
            np.arange(w)[None, :] * rs.uniform(0.5, 1.0, size=(n, c, 1, 1)))
    return (ramp * rs.choice([-1, 1], size=(n, c, 1, 1)) +
            0.3 * rs.randn(*shape)).astype(np.float32)


def kink_free_rois(data, count, ph, pw, scale, f, step, seed):
    """count boxes (some partly off the map) drawn at random, keeping those kink_free; the batch
    indices are fractional (0.25, 1.25) and truncate as the fork's do, so the checker's +-0.01
    steps on that column keep the image and must find its gradient 0."""
    rs = np.random.RandomState(seed)
    n, _, height, width = data.shape
    size_h, size_w = height / scale, width / scale
    found = []
    for _ in range(5000):
        x1 = rs.uniform(-0.4, 0.9) * size_w
        y1 = rs.uniform(-0.4, 0.9) * size_h
        roi = [rs.randint(n) + 0.25, x1, y1, x1 + rs.uniform(0.1, 0.9) * size_w,
               y1 + rs.uniform(0.1, 0.9) * size_h]
        roi = [float(np.float32(v)) for v in roi]
        if kink_free(data, roi, ph, pw, scale, f, step):
            found.append(roi)
            if len(found) == count:
                return np.array(found, np.float32)
    raise AssertionError('found only %d kink-free boxes' % len(found))


# Forward -----------------------------------------------------------------------------------------

ROIS = np.array([
    [0, 2, 3, 9, 7],            # inside the map
    [1, -6, -5, 4, 3],          # partly off the top left
    [1, 8, 2, 15, 12],          # partly off the bottom right
    [0, 7, 4, 5, 6],            # x2 < x1 - 1: the grid runs right to left
    [1, 5, 5, 4, 4],            # x2 = x1 - 1: zero width and height, every sample on one point
    [0, 4.3, 3.1, 4.6, 3.2],    # tiny
    [1, -40, -30, 60, 45],      # huge: far beyond the map, some samples still on it
    [0, -5e4, -5e4, 9e4, 9e4],  # enormous: every sample off the map
    [0, 30, 30, 40, 40],        # entirely off the map
], dtype=np.float32)


@pytest.mark.parametrize('f', [1, 2, 3])
@pytest.mark.parametrize('pooled', [(2, 3), (1, 1)])
def test_forward_matches_the_float64_reference(f, pooled):
    data = np.random.RandomState(0).randn(2, 3, 5, 6).astype(np.float32)
    ph, pw = pooled
    layer, bottom, top = build_layer(WARP % (ph, pw, 0.5, f), [data, ROIS])
    layer.forward(bottom, top)
    expect, choice = reference_forward(data, ROIS, ph, pw, 0.5, f)
    assert top[0].shape == (len(ROIS), 3, ph, pw)
    np.testing.assert_allclose(top[0].data, expect, rtol=1e-5, atol=1e-5)
    # the boxes beyond the map warp to exact zeros; the others up to the huge one really
    # sampled the map (the huge one's sparse grid lands on it for some shapes only)
    assert (top[0].data[7:] == 0).all()
    assert (np.abs(top[0].data[:6]).reshape(6, -1).max(axis=1) > 0).all()


def test_the_one_pixel_box_and_cell_centres():
    # A one-pixel box at scale 1 has its only sample at the pixel's centre, x + 0.5 in map
    # coordinates, which is where cell x holds its value: the sample is that cell exactly.
    data = np.arange(20, dtype=np.float32).reshape(1, 1, 4, 5)
    rois = np.array([[0, 3, 2, 3, 2], [0, 0, 0, 4, 3]], np.float32)
    layer, bottom, top = build_layer(WARP % (1, 1, 1.0, 1), [data, rois])
    layer.forward(bottom, top)
    assert top[0].data[0, 0, 0, 0] == data[0, 0, 2, 3]
    # the whole map (5 x 4 pixels) sampled once: its centre, (1.5, 2) in cell-index space
    assert top[0].data[1, 0, 0, 0] == pytest.approx(0.5 * (data[0, 0, 1, 2] + data[0, 0, 2, 2]))


def test_a_box_with_x2_below_x1_is_mirrored():
    # The grid is affine in the corners: a box whose edges x1 and x2 + 1 trade places samples
    # the same columns in reverse order.
    data = np.random.RandomState(1).randn(1, 2, 6, 7).astype(np.float32)
    rois = np.array([[0, 2.3, 1.2, 8.6, 9.1], [0, 9.6, 1.2, 1.3, 9.1]], np.float32)
    layer, bottom, top = build_layer(WARP % (2, 3, 0.5, 1), [data, rois])
    layer.forward(bottom, top)
    # box 0 spans 2.3 .. 8.6 + 1, box 1 spans 9.6 .. 1.3 + 1: the same extent reversed
    np.testing.assert_allclose(top[0].data[1], top[0].data[0][:, :, ::-1], rtol=1e-5, atol=1e-6)


# Feature gradient --------------------------------------------------------------------------------

@pytest.mark.parametrize('f', [1, 2])
def test_feature_gradient_matches_the_reference(f):
    data = smooth_features((2, 3, 5, 6), seed=2)
    layer, bottom, top = build_layer(WARP % (2, 3, 0.5, f), [data, ROIS])
    layer.forward(bottom, top)
    _, choice = reference_forward(data, ROIS, 2, 3, 0.5, f)
    if f > 1:
        np.testing.assert_array_equal(layer.argmax, choice)
    dy = np.random.RandomState(3).randn(*top[0].shape).astype(np.float32)
    top[0].diff[...] = dy
    bottom[0].diff[...] = 7.0   # backward must overwrite, not add
    layer.backward(top, [True, False], bottom)
    expect = reference_feature_gradient(data.shape, ROIS, dy, choice, 2, 3, 0.5, f)
    np.testing.assert_allclose(bottom[0].diff, expect, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('f', [1, 2])
def test_feature_gradient_finite_differences(f):
    data = smooth_features((2, 2, 5, 6), seed=4)
    rois = kink_free_rois(data, 4, 2, 2, 0.5, f, 0.05, seed=5)
    layer, bottom, top = build_layer(WARP % (2, 2, 0.5, f), [data, rois])
    check_gradient(layer, bottom, top, check_bottom=[0], max_checks=60)


# Coordinate gradient -----------------------------------------------------------------------------

@pytest.mark.parametrize('f', [1, 2])
def test_coordinate_gradient_finite_differences(f):
    data = smooth_features((2, 3, 6, 7), seed=6)
    rois = kink_free_rois(data, 5, 2, 3, 0.5, f, 0.05, seed=7)
    layer, bottom, top = build_layer(WARP % (2, 3, 0.5, f), [data, rois])
    check_gradient(layer, bottom, top, check_bottom=[1], stepsize=0.05, threshold=1e-3)
    # the check found real gradients, and the batch-index column's is exactly 0
    layer.forward(bottom, top)
    top[0].diff[...] = 1.0
    layer.backward(top, [False, True], bottom)
    assert (bottom[1].diff[:, 0] == 0).all()
    assert (np.abs(bottom[1].diff[:, 1:]) > 1e-2).mean() > 0.5


def test_coordinate_gradient_matches_the_reference_at_two_scales():
    # The float64 reference's own finite differences (the chain through spatial_scale and the
    # +1 pixel convention comes from the definition, not from the layer's float32 forward).
    data = smooth_features((1, 2, 6, 7), seed=8)
    rois = kink_free_rois(data, 3, 2, 2, 0.5, 1, 0.05, seed=9)
    for scale in (0.5, 0.25):
        assert all(kink_free(data, roi, 2, 2, scale, 1, 1e-3) for roi in rois)
        layer, bottom, top = build_layer(WARP % (2, 2, scale, 1), [data, rois])
        layer.forward(bottom, top)
        top[0].diff[...] = 1.0
        layer.backward(top, [False, True], bottom)
        for r in range(len(rois)):
            for col in range(1, 5):
                hi, lo = rois[r:r + 1].astype(np.float64), rois[r:r + 1].astype(np.float64)
                hi[0, col] += 1e-4
                lo[0, col] -= 1e-4
                numeric = (reference_forward(data, hi, 2, 2, scale, 1)[0].sum() -
                           reference_forward(data, lo, 2, 2, scale, 1)[0].sum()) / 2e-4
                assert bottom[1].diff[r, col] == pytest.approx(numeric, rel=1e-3, abs=1e-4)


# Conventions at the kinks ------------------------------------------------------------------------

def one_sample_gradient(data, x, y):
    """Top, x1 gradient and feature gradient of the single sample of a 1 x 1 box at (x, y) in
    image pixels at scale 1 (so the sample's cell-index position is exactly (y, x))."""
    rois = np.array([[0, x, y, x, y]], np.float32)
    layer, bottom, top = build_layer(WARP % (1, 1, 1.0, 1), [data, rois])
    layer.forward(bottom, top)
    top[0].diff[...] = 1.0
    layer.backward(top, [True, True], bottom)
    return top[0].data[0, 0, 0, 0], bottom[1].diff[0].copy(), bottom[0].diff[0, 0].copy()


def one_sided(plane, y, x, side, h=1e-3):
    return side * (interpolate(plane, y, x + side * h) - interpolate(plane, y, x)) / h


@pytest.mark.parametrize('x, where', [(2.0, 'interior'), (-1.0, 'left border'),
                                      (4.0, 'last cell'), (5.0, 'right border')])
def test_kink_convention_is_the_right_hand_derivative(x, where):
    # A sample exactly on an integer position: the interpolation's slope jumps there. The layer
    # takes the one-sided slope towards increasing x (floor picks the cell pair [x, x + 1]),
    # at the map's edges too: at -1 the slope of 0 -> v[0], at W - 1 the slope of v[W-1] -> 0,
    # at W the 0 beyond the map. The x1 and x2 corners of a one-sample box each move it by
    # half a unit (1 - 0.5 and 0.5).
    data = np.array([[[[0.5, 2.0, -1.0, 3.0, 1.5], [1.0, -2.0, 0.5, 2.5, -0.5],
                       [2.0, 1.0, 1.5, -1.5, 0.25]]]], np.float32)
    y = 1.25
    value, rois_diff, feature_diff = one_sample_gradient(data, x, y)
    plane = data[0, 0]
    right, left = one_sided(plane, y, x, +1), one_sided(plane, y, x, -1)
    assert abs(right - left) > 0.3, where   # a real kink
    assert value == pytest.approx(interpolate(plane, y, x))
    assert rois_diff[1] == pytest.approx(0.5 * right, abs=1e-6)
    assert rois_diff[3] == pytest.approx(0.5 * right, abs=1e-6)
    assert rois_diff[0] == 0
    # the feature gradient is the tent weights: all on column x (when on the map)
    expect = np.outer(tent(y - np.arange(3)), tent(x - np.arange(5)))
    np.testing.assert_allclose(feature_diff, expect, atol=1e-7)


def test_max_pool_tie_gives_the_first_sample_the_gradient():
    # Columns mirror each other around 3.5, the rows are equal: the four samples of the 2 x 2
    # block, at cell-index positions 2.25 and 4.75 in y and x, all equal 1.75 exactly but their
    # x slopes are -2 (left column) and +2 (right column). The first in row-major order (top
    # left) takes the whole gradient: d/dx1 = (1 - 1/4) * -2 and d/dx2 = 1/4 * -2.
    plane = np.tile((np.arange(8, dtype=np.float32) - 3.5) ** 2, (8, 1))
    data = plane[None, None]
    rois = np.array([[0, 1.5, 1.5, 5.5, 5.5]], np.float32)
    layer, bottom, top = build_layer(WARP % (1, 1, 1.0, 2), [data, rois])
    layer.forward(bottom, top)
    assert top[0].data[0, 0, 0, 0] == 1.75
    assert layer.argmax[0, 0, 0, 0] == 0
    top[0].diff[...] = 1.0
    layer.backward(top, [True, True], bottom)
    np.testing.assert_array_equal(bottom[1].diff[0], [0, -1.5, 0, -0.5, 0])
    expect = np.zeros((8, 8))
    expect[2:4, 2:4] = np.outer([0.75, 0.25], [0.75, 0.25])
    np.testing.assert_array_equal(bottom[0].diff[0, 0], expect)


# propagate_down, the batch column, a net ----------------------------------------------------------

def backward_with(propagate_down, f=2):
    data = smooth_features((2, 3, 5, 6), seed=10)
    layer, bottom, top = build_layer(WARP % (2, 3, 0.5, f), [data, ROIS])
    layer.forward(bottom, top)
    top[0].diff[...] = np.random.RandomState(11).randn(*top[0].shape)
    bottom[0].diff[...] = 7.0
    bottom[1].diff[...] = 7.0
    layer.backward(top, propagate_down, bottom)
    return bottom[0].diff.copy(), bottom[1].diff.copy()


def test_propagate_down_selects_the_gradients():
    features, coords = backward_with([True, True])
    assert (coords[:, 0] == 0).all()             # the batch index column
    assert (coords[:, 1:] != 0).any()
    features_only, untouched = backward_with([True, False])
    np.testing.assert_array_equal(features_only, features)
    assert (untouched == 7.0).all()              # no coordinate gradient, diff left alone
    untouched, coords_only = backward_with([False, True])
    np.testing.assert_array_equal(coords_only, coords)
    assert (untouched == 7.0).all()


NET = '''
layer { name: "conv" type: "Input" top: "conv"
        input_param { shape { dim: 1 dim: 2 dim: 6 dim: 7 } } }
layer { name: "one" type: "Input" top: "one" input_param { shape { dim: 1 dim: 1 } } }
layer { name: "target" type: "Input" top: "target"
        input_param { shape { dim: 1 dim: 2 dim: 2 dim: 2 } } }
layer { name: "box" type: "InnerProduct" bottom: "one" top: "rois"
        inner_product_param { num_output: 5 } }
layer { name: "warp" type: "ROIWarping" bottom: "conv" bottom: "rois" top: "warped"
        roi_warping_param { pooled_h: 2 pooled_w: 2 spatial_scale: 0.5 } %s }
layer { name: "loss" type: "SmoothL1Loss" bottom: "warped" bottom: "target" top: "loss"
        loss_weight: 1 }
'''


def warp_net(tmp_path, extra, data, box):
    path = tmp_path / 'net.prototxt'
    path.write_text(NET % extra)
    net = caffe.Net(str(path), caffe.TRAIN)
    net.params['box'][0].data[...] = 0
    net.params['box'][1].data[...] = box
    net.blobs['conv'].data[...] = data
    net.blobs['one'].data[...] = 1
    net.forward()
    # targets half a unit below the output: the loss stays on its quadratic part
    net.blobs['target'].data[...] = net.blobs['warped'].data - 0.5
    return net


def test_net_backpropagates_into_the_box_unless_propagate_down_says_no(tmp_path):
    # rois come from a layer with parameters (the box is its bias), so the net wants their
    # gradient: it must reach the bias and match the loss's finite differences.
    data = smooth_features((1, 2, 6, 7), seed=12)
    box = kink_free_rois(data, 1, 2, 2, 0.5, 1, 0.05, seed=13)[0]
    box[0] = 0
    net = warp_net(tmp_path, '', data, box)
    net.forward()
    net.backward()
    analytic = net.params['box'][1].diff.copy()
    assert analytic[0] == 0 and (analytic[1:] != 0).all()
    for col in range(1, 5):
        losses = []
        for delta in (0.05, -0.05):
            net.params['box'][1].data[col] = box[col] + delta
            losses.append(net.forward()['loss'].item())
        net.params['box'][1].data[col] = box[col]
        assert analytic[col] == pytest.approx((losses[0] - losses[1]) / 0.1, rel=2e-3, abs=1e-5)

    off = warp_net(tmp_path, 'propagate_down: true propagate_down: false', data, box)
    off.forward()
    off.backward()
    assert (off.params['box'][1].diff == 0).all()


RUN_WITH_THREADS = textwrap.dedent('''
    import sys
    import numpy as np
    from caffe.testing import build_layer
    rs = np.random.RandomState(0)
    data = rs.randn(2, 16, 9, 11).astype(np.float32)
    x1, y1 = rs.uniform(-20, 150, size=(2, 60))
    rois = np.stack([rs.randint(2, size=60), x1, y1, x1 + rs.uniform(0, 120, 60),
                     y1 + rs.uniform(0, 100, 60)], 1).astype(np.float32)
    layer, bottom, top = build_layer(sys.argv[1], [data, rois])
    layer.forward(bottom, top)
    top[0].diff[...] = rs.randn(*top[0].shape)
    layer.backward(top, [True, True], bottom)
    np.savez(sys.argv[2], top=top[0].data, features=bottom[0].diff, rois=bottom[1].diff)
''')


def test_results_do_not_depend_on_the_number_of_threads(tmp_path):
    # OpenMP deals the loops out to the threads; every sum still runs in one fixed order.
    lib = os.path.join(os.path.dirname(caffe.__file__), os.pardir)
    results = []
    for threads in ('1', '2', '3'):
        out = str(tmp_path / ('t%s.npz' % threads))
        env = dict(os.environ, OMP_NUM_THREADS=threads, PYTHONPATH=os.path.abspath(lib))
        subprocess.run([sys.executable, '-c', RUN_WITH_THREADS, WARP % (7, 7, 0.0625, 2), out],
                       env=env, check=True)
        results.append(np.load(out))
    for other in results[1:]:
        for key in ('top', 'features', 'rois'):
            np.testing.assert_array_equal(other[key], results[0][key], err_msg=key)


# Errors ------------------------------------------------------------------------------------------

def test_bad_params_and_inputs():
    data = np.zeros((1, 1, 3, 3), np.float32)
    rois = np.zeros((1, 5), np.float32)
    with pytest.raises(CaffeError, match='warp.*pooled_h'):
        build_layer(WARP % (0, 2, 1.0, 1), [data, rois])
    with pytest.raises(CaffeError, match='warp.*samples_per_bin'):
        build_layer(WARP % (2, 2, 1.0, 16), [data, rois])
    with pytest.raises(CaffeError, match='warp.*spatial_scale'):
        build_layer(WARP % (2, 2, -1.0, 1), [data, rois])
    with pytest.raises(CaffeError, match='warp.*rois'):
        build_layer(WARP % (2, 2, 1.0, 1), [data, np.zeros((1, 4), np.float32)])
    layer, bottom, top = build_layer(WARP % (2, 2, 1.0, 1),
                                     [data, np.array([[1, 0, 0, 1, 1]], np.float32)])
    with pytest.raises(CaffeError, match='warp.*batch index 1'):
        layer.forward(bottom, top)


def test_no_rois():
    data = np.ones((1, 2, 3, 3), np.float32)
    layer, bottom, top = build_layer(WARP % (2, 2, 1.0, 2),
                                     [data, np.zeros((0, 5, 1, 1), np.float32)])
    layer.forward(bottom, top)
    assert top[0].shape == (0, 2, 2, 2)
    layer.backward(top, [True, True], bottom)
    assert (bottom[0].diff == 0).all()
