"""caffe.io as pycaffe's: BlobProto / BlobProtoVector / Datum conversions, load_image,
resize_image, oversample and Transformer, each against an independent computation."""
import os
import stat
import subprocess
import sys

import cv2
import numpy as np
import pytest

import caffe
from caffe import io
from caffe.proto import caffe_pb2


# BlobProto, BlobProtoVector, Datum -------------------------------------------------------------

def test_blobproto_to_array_is_float64_shaped_by_shape_or_legacy_dims():
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend([2, 3])
    blob.data.extend([0.1, 1, 2, 3, 4, 5])
    blob.diff.extend([9, 8, 7, 6, 5, 4])
    arr = io.blobproto_to_array(blob)
    assert arr.dtype == np.float64 and arr.shape == (2, 3)
    assert arr[0, 0] == float(np.float32(0.1))                 # the stored float, widened
    np.testing.assert_array_equal(io.blobproto_to_array(blob, return_diff=True).ravel(),
                                  [9, 8, 7, 6, 5, 4])
    legacy = caffe_pb2.BlobProto(num=1, channels=2, height=1, width=2, data=[1, 2, 3, 4])
    assert io.blobproto_to_array(legacy).shape == (1, 2, 1, 2)


def test_blobproto_without_shape_one_value_is_0d_several_is_an_error():
    one = caffe_pb2.BlobProto(data=[2.5])
    arr = io.blobproto_to_array(one)
    assert arr.shape == () and arr.ndim == 0 and float(arr) == 2.5
    with pytest.raises(ValueError):
        io.blobproto_to_array(caffe_pb2.BlobProto(data=[1, 2, 3]))


def test_array_to_blobproto_and_vectors_round_trip():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7
    d = -a
    blob = io.array_to_blobproto(a, d)
    assert list(blob.shape.dim) == [2, 3, 4]
    np.testing.assert_array_equal(io.blobproto_to_array(blob), a)
    np.testing.assert_array_equal(io.blobproto_to_array(blob, return_diff=True), d)
    arrays = [a, np.array([1.5, 2.5]), np.ones((1, 1, 2, 2))]
    serialized = io.arraylist_to_blobprotovector_str(arrays)
    vec = caffe_pb2.BlobProtoVector.FromString(serialized)
    assert len(vec.blobs) == 3
    back = io.blobprotovector_str_to_arraylist(serialized)
    for x, y in zip(arrays, back):
        assert y.dtype == np.float64
        np.testing.assert_array_equal(y, np.asarray(x, np.float32))


def test_datum_uint8_as_bytes_and_float_as_float_data():
    pixels = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    datum = io.array_to_datum(pixels, label=7)
    assert (datum.channels, datum.height, datum.width, datum.label) == (2, 3, 4, 7)
    assert datum.data == bytes(range(24)) and not datum.float_data
    back = io.datum_to_array(datum)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, pixels)
    values = np.linspace(-1, 1, 6).reshape(1, 2, 3)
    datum = io.array_to_datum(values)
    assert not datum.data and len(datum.float_data) == 6 and not datum.HasField('label')
    back = io.datum_to_array(caffe_pb2.Datum.FromString(datum.SerializeToString()))
    np.testing.assert_allclose(back, values, rtol=1e-7)
    with pytest.raises(ValueError, match='3-d'):
        io.array_to_datum(np.zeros((2, 2)))


def test_datum_field_numbers_are_caffes():
    fields = {f.name: f.number for f in caffe_pb2.Datum.DESCRIPTOR.fields}
    assert fields == {'channels': 1, 'height': 2, 'width': 3, 'data': 4, 'label': 5,
                      'float_data': 6, 'encoded': 7}


# Images -----------------------------------------------------------------------------------------

def test_load_image_rgb_gray_alpha_and_16_bit(tmp_path):
    rgb = np.array([[[255, 0, 0], [0, 128, 0]], [[0, 0, 64], [10, 20, 30]]], dtype=np.uint8)
    path = str(tmp_path / 'c.png')
    cv2.imwrite(path, rgb[:, :, ::-1])                        # OpenCV writes BGR
    img = io.load_image(path)
    assert img.dtype == np.float32 and img.shape == (2, 2, 3)
    np.testing.assert_allclose(img, rgb / 255.0, rtol=1e-6)
    gray = io.load_image(path, color=False)
    assert gray.shape == (2, 2, 1)
    expected = (0.2125 * rgb[:, :, 0] + 0.7154 * rgb[:, :, 1] + 0.0721 * rgb[:, :, 2]) / 255
    np.testing.assert_allclose(gray[:, :, 0], expected, rtol=1e-6)

    rgba = np.dstack([rgb, np.array([[255, 0], [128, 255]], np.uint8)])
    path = str(tmp_path / 'a.png')
    cv2.imwrite(path, rgba[:, :, [2, 1, 0, 3]])
    np.testing.assert_allclose(io.load_image(path), rgb / 255.0, rtol=1e-6)   # alpha dropped
    alpha = rgba[:, :, 3:] / 255.0
    on_white = rgb / 255.0 * alpha + (1 - alpha)
    expected = on_white @ np.array([0.2125, 0.7154, 0.0721])
    np.testing.assert_allclose(io.load_image(path, color=False)[:, :, 0], expected, rtol=1e-6)

    mono = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    path = str(tmp_path / 'g16.png')
    cv2.imwrite(path, mono)
    img = io.load_image(path)
    assert img.shape == (2, 2, 3)
    for c in range(3):
        np.testing.assert_allclose(img[:, :, c], mono / 65535.0, rtol=1e-6)
    with pytest.raises(RuntimeError, match='Could not open file'):
        io.load_image(str(tmp_path / 'missing.png'))
    (tmp_path / 'junk.png').write_bytes(b'not an image')
    with pytest.raises(caffe.CaffeError, match='junk.png'):
        io.load_image(str(tmp_path / 'junk.png'))


def _bilinear_corner_aligned(im, out_h, out_w):
    """Brute force: output pixel (i, j) samples input (i (H-1)/(h-1), j (W-1)/(w-1))."""
    H, W, K = im.shape
    out = np.zeros((out_h, out_w, K))
    for i in range(out_h):
        y = i * (H - 1) / (out_h - 1)
        y0 = int(np.floor(y))
        y1, ty = min(y0 + 1, H - 1), y - y0
        for j in range(out_w):
            x = j * (W - 1) / (out_w - 1)
            x0 = int(np.floor(x))
            x1, tx = min(x0 + 1, W - 1), x - x0
            top = (1 - tx) * im[y0, x0] + tx * im[y0, x1]
            bottom = (1 - tx) * im[y1, x0] + tx * im[y1, x1]
            out[i, j] = (1 - ty) * top + ty * bottom
    return out


@pytest.mark.parametrize('channels', [1, 2, 3])
def test_resize_image_is_bilinear_with_corners_on_corners(channels):
    im = np.random.RandomState(channels).rand(5, 4, channels)
    out = io.resize_image(im, (7, 3))
    assert out.shape == (7, 3, channels) and out.dtype == np.float32
    np.testing.assert_allclose(out, _bilinear_corner_aligned(im, 7, 3), atol=1e-6)


def test_resize_constant_image_stays_constant():
    out = io.resize_image(np.full((3, 3, 3), 0.25), (8, 5))
    assert out.shape == (8, 5, 3) and np.all(out == np.float32(0.25))


def test_oversample_corners_center_and_mirrors():
    rs = np.random.RandomState(4)
    images = [rs.rand(6, 7, 2), rs.rand(6, 7, 2)]
    crops = io.oversample(images, (3, 4))
    assert crops.shape == (20, 3, 4, 2) and crops.dtype == np.float32
    # starts: top-left, top-right, bottom-left, bottom-right, center floor(6/2-1.5), floor(3.5-2)
    starts = [(0, 0), (0, 3), (3, 0), (3, 3), (1, 1)]
    for n, im in enumerate(images):
        for k, (y, x) in enumerate(starts):
            expected = np.float32(im[y:y + 3, x:x + 4])
            np.testing.assert_array_equal(crops[10 * n + k], expected)
            np.testing.assert_array_equal(crops[10 * n + 5 + k], expected[:, ::-1])


def test_transformer_preprocess_by_formula_and_deprocess_inverts():
    t = caffe.io.Transformer({'data': (1, 3, 4, 5)})
    t.set_transpose('data', (2, 0, 1))
    t.set_channel_swap('data', (2, 1, 0))
    t.set_raw_scale('data', 255.0)
    mean = np.array([104.0, 117.0, 123.0])
    t.set_mean('data', mean)
    t.set_input_scale('data', 0.5)
    img = np.random.RandomState(5).rand(4, 5, 3).astype(np.float32)
    before = img.copy()
    out = t.preprocess('data', img)
    assert out.shape == (3, 4, 5) and out.dtype == np.float32
    np.testing.assert_array_equal(img, before)                 # the caller's image untouched
    expected = np.zeros((3, 4, 5))
    for c in range(3):
        for y in range(4):
            for x in range(5):
                expected[c, y, x] = (255.0 * img[y, x, 2 - c] - mean[c]) * 0.5
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(t.deprocess('data', out), img, atol=1e-5)


def test_transformer_resizes_to_the_input_and_checks_its_settings():
    t = caffe.io.Transformer({'data': (2, 3, 6, 4)})
    t.set_transpose('data', (2, 0, 1))
    img = np.random.RandomState(6).rand(3, 2, 3)
    out = t.preprocess('data', img)
    assert out.shape == (3, 6, 4)
    np.testing.assert_allclose(out, _bilinear_corner_aligned(img, 6, 4).transpose(2, 0, 1),
                               atol=1e-6)
    with pytest.raises(ValueError, match='not one of the net inputs'):
        t.preprocess('label', img)
    with pytest.raises(ValueError, match='transpose'):
        t.set_transpose('data', (1, 0))
    with pytest.raises(ValueError, match='channel swap'):
        t.set_channel_swap('data', (1, 0))
    with pytest.raises(ValueError, match='channels'):
        t.set_mean('data', np.zeros(4))
    with pytest.raises(ValueError, match='does not match'):
        t.set_mean('data', np.zeros((3, 5, 4)))
    with pytest.raises(ValueError, match='does not match'):
        t.set_mean('data', np.ones((6, 4)))           # (H, W) means (1, H, W), as in pycaffe
    gray = caffe.io.Transformer({'data': (1, 1, 2, 3)})
    gray.set_transpose('data', (2, 0, 1))
    gray.set_mean('data', np.arange(6.0).reshape(2, 3))
    img = np.full((2, 3, 1), 10.0)
    np.testing.assert_array_equal(gray.preprocess('data', img)[0],
                                  10 - np.arange(6.0).reshape(2, 3))


@pytest.mark.parametrize('mask', [0o022, 0o027, 0o077], ids=oct)
def test_atomic_write_gives_the_mode_open_gives(tmp_path, mask):
    # mkstemp's 0600 must not survive the rename: a file a plain open() makes is the reference.
    saved = os.umask(mask)
    try:
        assert io.umask() == mask
        io.atomic_write(str(tmp_path / 'atomic.bin'), b'x')
        with open(str(tmp_path / 'plain.bin'), 'wb') as f:
            f.write(b'x')
    finally:
        os.umask(saved)
    mode = stat.S_IMODE(os.stat(str(tmp_path / 'atomic.bin')).st_mode)
    assert mode == stat.S_IMODE(os.stat(str(tmp_path / 'plain.bin')).st_mode)
    assert mode == 0o666 & ~mask


def test_import_caffe_loads_pil_image_as_pycaffe_did():
    # pycaffe's caffe.io imported scikit-image's io, whose 'pil' plugin imports PIL.Image;
    # py-faster-rcnn's datasets/imdb.py does `import PIL` and calls PIL.Image.open.
    lib = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), 'lib')
    code = 'import PIL, caffe; print(PIL.Image.open.__module__)'
    proc = subprocess.run([sys.executable, '-c', code], env=dict(os.environ, PYTHONPATH=lib),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == 'PIL.Image', proc.stderr
