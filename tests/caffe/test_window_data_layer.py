"""WindowData against windows cut and warped with OpenCV by hand: the draws (background
windows first, then foreground; window index then flip, from a generator seeded in Caffe's
order), plain warps, context padding clipped at the image border and square crops (their
arithmetic worked out in the comments), the mean file's offsets, cache_images, and errors naming
the window file and line."""
import cv2
import numpy as np
import pytest

import caffe
from caffe.common import CaffeError
from caffe.proto import caffe_pb2
from caffe.rng import CaffeRNG
from caffe.testing import build_layer


def write_image(path, height, width, seed):
    im = np.random.RandomState(seed).randint(0, 256, size=(height, width, 3)).astype(np.uint8)
    cv2.imwrite(str(path), im)
    return im


def window_file(path, images):
    """images: [(name, height, width, [(label, overlap, x1, y1, x2, y2)])]"""
    lines = []
    for i, (name, height, width, windows) in enumerate(images):
        lines += ['# %d' % i, name, '3', str(height), str(width), str(len(windows))]
        lines += ['%d %g %d %d %d %d' % w for w in windows]
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


def window_layer(source, root, batch, param='', transform='crop_size: 8', phase=caffe.TRAIN):
    text = ('name: "w" type: "WindowData" top: "data" top: "label" window_data_param { '
            'source: "%s" root_folder: "%s" batch_size: %d %s } transform_param { %s }'
            % (source, root, batch, param, transform))
    return build_layer(text, [], phase=phase)


def forward(layer, top):
    layer.forward([], top)
    return top[0].data.copy(), top[1].data.copy()


def chw(im):
    return im.transpose(2, 0, 1).astype(np.float32)


def window_rng(seed, transform_draws):
    """The layer's generator: the runtime stream's draw after the transformer's seed (drawn
    when the transformer crops in TRAIN or mirrors)."""
    stream = CaffeRNG(seed)
    for _ in range(transform_draws):
        stream.raw()
    return CaffeRNG(stream.raw())


def test_background_then_foreground_windows_warped(tmp_path):
    ims = [write_image(tmp_path / ('%d.png' % i), 20, 24, i) for i in range(2)]
    source = window_file(tmp_path / 'windows.txt', [
        ('0.png', 20, 24, [(2, 0.8, 2, 3, 11, 9), (5, 0.1, 0, 0, 23, 19), (4, 0.3, 1, 1, 5, 5)]),
        ('1.png', 20, 24, [(3, 0.9, 5, 5, 15, 12), (1, 0.2, 4, 2, 9, 17)]),
    ])
    caffe.set_random_seed(13)
    layer, _, top = window_layer(source, str(tmp_path) + '/', batch=5,
                                 param='fg_threshold: 0.5 bg_threshold: 0.25 fg_fraction: 0.5 '
                                       'scale: 0.5')
    assert top[0].shape == (5, 3, 8, 8)
    # Foreground: (2, 0.8) on image 0, (3, 0.9) on image 1; background (label set to 0):
    # (5, 0.1) on image 0, (1, 0.2) on image 1; (4, 0.3) is neither.
    fg = [(0, 2, 2, 3, 11, 9), (1, 3, 5, 5, 15, 12)]
    bg = [(0, 0, 0, 0, 23, 19), (1, 0, 4, 2, 9, 17)]
    rng = window_rng(13, 1)
    for _ in range(3):
        data, label = forward(layer, top)
        # int(5 * 0.5) = 2 foreground windows, after 3 background ones
        picks = [bg[rng.raw() % 2] for _ in range(3)] + [fg[rng.raw() % 2] for _ in range(2)]
        for i, (image, lab, x1, y1, x2, y2) in enumerate(picks):
            cut = cv2.resize(ims[image][y1:y2 + 1, x1:x2 + 1], (8, 8))
            np.testing.assert_array_equal(data[i], chw(cut) * np.float32(0.5))
            assert label[i] == lab


def test_context_pad_clipped_at_the_border_mirror_and_mean_file(tmp_path):
    im = write_image(tmp_path / 'a.png', 20, 20, 0)
    source = window_file(tmp_path / 'w.txt', [('a.png', 20, 20, [(1, 1.0, 0, 0, 9, 9)])])
    mean = np.random.RandomState(1).uniform(0, 255, size=(3, 14, 14)).astype(np.float32)
    blob = caffe_pb2.BlobProto(num=1, channels=3, height=14, width=14, data=mean.ravel())
    (tmp_path / 'mean.binaryproto').write_bytes(blob.SerializeToString())
    caffe.set_random_seed(2)
    layer, _, top = window_layer(
        source, str(tmp_path) + '/', batch=6, param='fg_fraction: 1 context_pad: 1 scale: 2',
        transform='crop_size: 12 mirror: true mean_file: "%s"' % (tmp_path / 'mean.binaryproto'))
    # Window 0..9 (10 px), crop 12, pad 1: context_scale 12/10; half width 5, centre 5;
    # 5 * 1.2f rounds to 6.0f, so the grown window is -1..11 (13 px), clipped to 0..11 with 1
    # px cut on the left/top. scale 12/13: the 12 px left warp to round(11.08) = 11 px, placed
    # after round(1 * 12/13) = 1 px of padding (on the right instead when flipped, where
    # nothing was cut: 0 px).
    warped = cv2.resize(im[0:12, 0:12], (11, 11))
    rng = window_rng(2, 1)
    flips = []
    data, label = forward(layer, top)
    for i in range(6):
        rng.raw()                        # the window index (one window)
        mirror = rng.raw() % 2 == 1
        flips.append(mirror)
        region = warped[:, ::-1] if mirror else warped
        pad_w = 0 if mirror else 1
        expected = np.zeros((3, 12, 12), np.float32)
        # The mean's offset is (14 - 12) / 2 = 1, moved with the padding.
        m = mean[:, 1 + 1:1 + 1 + 11, 1 + pad_w:1 + pad_w + 11]
        expected[:, 1:12, pad_w:pad_w + 11] = (chw(region) - m) * np.float32(2)
        np.testing.assert_array_equal(data[i], expected)
    assert any(flips) and not all(flips)
    np.testing.assert_array_equal(label, 1)


def test_square_crop_mode(tmp_path):
    im = write_image(tmp_path / 'a.png', 40, 40, 3)
    source = window_file(tmp_path / 'w.txt', [('a.png', 40, 40, [(7, 0.9, 2, 2, 5, 9)])])
    layer, _, top = window_layer(source, str(tmp_path) + '/', batch=1,
                                 param='fg_fraction: 1 crop_mode: "square"',
                                 transform='crop_size: 10')
    # 4 x 8 window: made square about its centre (4, 6) with half side 4 -> x 0..8, y 2..10,
    # 9 px, nothing clipped, warped to round(9 * 10/9) = 10 px.
    data, label = forward(layer, top)
    np.testing.assert_array_equal(data[0], chw(cv2.resize(im[2:11, 0:9], (10, 10))))
    assert label[0] == 7


def test_cache_images_gives_the_same_windows(tmp_path):
    write_image(tmp_path / 'a.png', 16, 16, 4)
    source = window_file(tmp_path / 'w.txt', [('a.png', 16, 16, [(1, 0.9, 1, 1, 9, 12),
                                                                  (0, 0.0, 3, 3, 15, 15)])])
    batches = []
    for cache in ('false', 'true'):
        caffe.set_random_seed(5)
        layer, _, top = window_layer(source, str(tmp_path) + '/', batch=4,
                                     param='cache_images: %s context_pad: 2' % cache,
                                     transform='crop_size: 8 mirror: true')
        batches.append(forward(layer, top))
    np.testing.assert_array_equal(batches[0][0], batches[1][0])
    np.testing.assert_array_equal(batches[0][1], batches[1][1])


def test_errors_name_the_file_and_line(tmp_path):
    write_image(tmp_path / 'a.png', 10, 10, 0)
    root = str(tmp_path) + '/'

    def setup_error(text, match, param='', transform='crop_size: 4'):
        path = tmp_path / 'bad.txt'
        path.write_text(text)
        with pytest.raises(CaffeError, match=match):
            window_layer(str(path), root, 2, param, transform)

    good = '# 0\na.png\n3 10 10\n2\n1 0.9 0 0 5 5\n0 0.1 1 1 8 8\n'
    with pytest.raises(CaffeError, match='Could not open file .*nowhere.txt'):
        window_layer(str(tmp_path / 'nowhere.txt'), root, 1)
    setup_error('', 'window file .*bad.txt is empty')
    setup_error('% 0\na.png\n', r'bad.txt:1: expected "#" starting image 0')
    setup_error('# 1\na.png\n3 10 10\n0\n', r'bad.txt:1: image index 1 where 0 comes next')
    setup_error('# 0\na.png\n1 10 10\n0\n', r'bad.txt:2: image 0 has 1 channels')
    setup_error('# 0\na.png\n3 10 10\n1\n0 0.9 0 0 5 5\n',
                r'bad.txt:5: a foreground window .* with label 0')
    setup_error('# 0\na.png\n3 10 10\n2\n1 0.9 0 0 5\n',
                r'bad.txt:5: the file ends where a window corner should be')
    setup_error('# 0\na.png\n3 10 10\n1\n1 high 0 0 5 5\n',
                r"bad.txt:5: expected a window overlap, got 'high'")
    setup_error(good.replace('1 1 8 8', '1 8 8 1'), r'bad.txt:6: window \(1, 8, 8, 1\) is empty')
    # (found by fuzzing: with context_pad, such a window divided by a zero width)
    setup_error(good, 'crop_size must be positive', transform='')
    setup_error(good, 'crop_mode must be "warp" or "square"', param='crop_mode: "fit"')
    setup_error(good, r'fg_fraction must be in \[0, 1\]', param='fg_fraction: 1.5')
    setup_error('# 0\na.png\n3 10 10\n1\n0 0.1 1 1 8 8\n', 'lists no foreground windows',
                param='fg_fraction: 0.5')
    setup_error(good.replace('a.png', 'gone.png'), r'gone.png .*line 2 of .*bad.txt',
                param='cache_images: true')
    (tmp_path / 'outside.txt').write_text(good.replace('0 0 5 5', '4 4 30 30'))
    layer, _, top = window_layer(str(tmp_path / 'outside.txt'), root, 2, 'fg_fraction: 1',
                                 'crop_size: 4')
    with pytest.raises(CaffeError, match=r'window \(4, 4, 30, 30\) is not inside its 10 x 10 '
                                         r'image .*a.png .*line 5 of .*outside.txt'):
        forward(layer, top)
    (tmp_path / 'missing.txt').write_text(good.replace('a.png', 'gone.png'))
    layer, _, top = window_layer(str(tmp_path / 'missing.txt'), root, 2)
    with pytest.raises(CaffeError, match=r'Could not open file .*gone.png .*line 2 of '):
        forward(layer, top)
