import numpy as np
import pytest

from utils.blob import _subtract_means, im_list_to_blob, prep_im_for_blob

# The release's BGR pixel means, in its (1, 1, 3) float64 shape.
PIXEL_MEANS = np.array([[[102.9801, 115.9465, 122.7717]]])


@pytest.mark.parametrize('shape, scale, out_hw', [
    ((375, 500), 600 / 375, (600, 800)),  # short side to 600
    ((300, 1000), 1.0, (300, 1000)),  # 600/300 would make the long side 2000: cap it at 1000
    ((500, 834), 1000 / 834, (600, 1000)),  # 834 * 1.2 = 1000.8 rounds to 1001 > 1000: capped
    ((500, 833), 1.2, (600, 1000)),  # 833 * 1.2 = 999.6 rounds to 1000: not capped
    ((800, 400), 1.25, (1000, 500)),  # portrait: the long side is the height
])
def test_scale_rule(shape, scale, out_hw):
    im = np.full(shape + (3,), 128, dtype=np.uint8)
    out, got = prep_im_for_blob(im, PIXEL_MEANS, 600, 1000)
    assert got == pytest.approx(scale, rel=1e-12)
    assert out.shape == out_hw + (3,) and out.dtype == np.float32


def test_mean_subtraction_in_the_means_precision():
    # At scale 1 nothing is interpolated, so values are exact: the release subtracts float64
    # means from the float32 image and rounds the result once to float32.
    im = np.random.RandomState(0).randint(0, 256, (600, 700, 3)).astype(np.uint8)
    out, scale = prep_im_for_blob(im, PIXEL_MEANS, 600, 1000)
    assert scale == 1.0
    expected = (im.astype(np.float64) - PIXEL_MEANS).astype(np.float32)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize('means', [
    np.array([[[102.9801, 115.9465, 122.7717]]]),             # float64, the cfg's shape
    np.array([102.9801, 115.9465, 122.7717], np.float32),     # float32: float32 arithmetic
    np.array([[[0.3]]]),                                      # one mean for every channel
])
@pytest.mark.parametrize('view', ['whole', 'flipped', 'strided', 'one_channel', 'uint16'])
def test_mean_subtraction_table_matches_the_arithmetic(means, view):
    # 8-bit images go through a per-channel table; the values must be those of im - means in
    # numpy's promotion, for mirrored (negative-stride) views and other layouts too.
    im = np.random.RandomState(1).randint(0, 256, (9, 14, 3)).astype(np.uint8)
    im = {'whole': im, 'flipped': im[:, ::-1, :], 'strided': im[::2, 1:, :],
          'one_channel': im[:, :, :1], 'uint16': im.astype(np.uint16) * 200}[view]
    if view == 'one_channel':
        means = means.reshape(-1)[:1]
    expected = (im.astype(np.float32) - means).astype(np.float32)
    out = _subtract_means(im, means)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)


def test_resized_constant_image_and_input_untouched():
    im = np.full((50, 40, 3), 100.0, dtype=np.float32)
    out, scale = prep_im_for_blob(im, PIXEL_MEANS, 600, 1000)
    assert scale == 15.0 and out.shape == (750, 600, 3)
    np.testing.assert_allclose(out, np.broadcast_to(100.0 - PIXEL_MEANS, out.shape), atol=1e-4)
    assert (im == 100.0).all()


def test_im_list_to_blob_pads_at_bottom_right():
    rng = np.random.RandomState(1)
    ims = [rng.randn(5, 7, 3).astype(np.float32), rng.randn(6, 4, 3).astype(np.float32)]
    blob = im_list_to_blob(ims)
    assert blob.shape == (2, 3, 6, 7) and blob.dtype == np.float32
    assert blob.flags.c_contiguous
    for n, im in enumerate(ims):
        h, w = im.shape[:2]
        for c in range(3):
            np.testing.assert_array_equal(blob[n, c, :h, :w], im[:, :, c])
        padding = np.ones(blob.shape[1:], bool)
        padding[:, :h, :w] = False
        assert (blob[n][padding] == 0).all()


def test_im_list_to_blob_errors():
    with pytest.raises(ValueError):
        im_list_to_blob([])
    with pytest.raises(ValueError, match='image 1'):
        im_list_to_blob([np.zeros((4, 4, 3)), np.zeros((4, 4))])
