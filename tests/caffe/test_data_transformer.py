"""DataTransformer (transform_param) against a brute-force loop over Caffe's index formula:
crops (random in TRAIN, centred in TEST), mirror (drawn before the crop offsets, in either
phase), mean file vs mean values, mean subtracted before scaling, float32."""
import numpy as np
import pytest

import caffe
from caffe.common import CaffeError
from caffe.data_transformer import DataTransformer
from caffe.proto import caffe_pb2
from caffe.rng import CaffeRNG


def reference(image, crop, h_off, w_off, mirror, scale, mean=None, mean_values=None):
    """Caffe's DataTransformer::Transform, element by element, in float32."""
    channels, height, width = image.shape
    oh, ow = (crop, crop) if crop else (height, width)
    out = np.zeros((channels, oh, ow), np.float32)
    scale = np.float32(scale)
    for c in range(channels):
        for h in range(oh):
            for w in range(ow):
                value = np.float32(image[c, h_off + h, w_off + w])
                if mean is not None:
                    value = np.float32(value - np.float32(mean[c, h_off + h, w_off + w]))
                elif mean_values is not None:
                    m = mean_values[c] if len(mean_values) > 1 else mean_values[0]
                    value = np.float32(value - np.float32(m))
                out[c, h, ow - 1 - w if mirror else w] = np.float32(value * scale)
    return out


def transformer(text, phase=caffe.TRAIN):
    from google.protobuf import text_format
    param = text_format.Parse(text, caffe_pb2.TransformationParameter())
    return DataTransformer(param, phase, 'Data layer "test"')


def image(shape=(3, 5, 7), seed=0, dtype=np.uint8):
    rs = np.random.RandomState(seed)
    if dtype == np.uint8:
        return rs.randint(0, 256, size=shape).astype(np.uint8)
    return rs.randn(*shape).astype(np.float32)


def run(t, img):
    out = np.empty(t.infer_shape(img), np.float32)
    t.transform(img, out)
    return out


def test_test_phase_crops_the_centre_and_draws_nothing():
    t = transformer('crop_size: 3 scale: 0.5', caffe.TEST)
    t.init_rand()
    assert t.rng is None
    img = image((2, 6, 7))
    # (6 - 3) // 2 = 1 rows, (7 - 3) // 2 = 2 columns
    np.testing.assert_array_equal(run(t, img), reference(img, 3, 1, 2, False, 0.5))


def test_train_phase_draws_flip_then_row_then_column_offsets():
    caffe.set_random_seed(1234)
    t = transformer('crop_size: 3 mirror: true scale: 0.25')
    t.init_rand()
    # The transformer's seed is the runtime stream's first draw.
    expected_rng = CaffeRNG(CaffeRNG(1234).raw())
    img = image((3, 6, 8), seed=1)
    seen = set()
    for _ in range(40):
        mirror = expected_rng.raw() % 2 == 1
        h_off = expected_rng.raw() % (6 - 3 + 1)
        w_off = expected_rng.raw() % (8 - 3 + 1)
        seen.add((mirror, h_off, w_off))
        np.testing.assert_array_equal(run(t, img), reference(img, 3, h_off, w_off, mirror, 0.25))
    assert len(seen) > 10    # the draws do move the crop around


def test_mirror_applies_in_test_phase_too():
    # Caffe draws the flip whenever mirror is set (DataTransformer::Transform has no phase
    # test for it); nets set mirror only on their TRAIN data layer.
    caffe.set_random_seed(5)
    t = transformer('mirror: true', caffe.TEST)
    t.init_rand()
    expected_rng = CaffeRNG(CaffeRNG(5).raw())
    img = image((1, 2, 5))
    flips = []
    for _ in range(20):
        mirror = expected_rng.raw() % 2 == 1
        flips.append(mirror)
        np.testing.assert_array_equal(run(t, img), reference(img, 0, 0, 0, mirror, 1))
    assert any(flips) and not all(flips)


def write_mean(path, mean, legacy=True):
    blob = caffe_pb2.BlobProto()
    if legacy:
        blob.num, (blob.channels, blob.height, blob.width) = 1, mean.shape
    else:
        blob.shape.dim.extend((1,) + mean.shape)
    blob.data.extend(mean.ravel().tolist())
    path.write_bytes(blob.SerializeToString())
    return str(path)


def test_mean_file_is_subtracted_before_the_scale_and_cropped_with_the_image(tmp_path):
    img = image((3, 6, 7), seed=2)
    mean = np.random.RandomState(3).uniform(0, 255, size=img.shape).astype(np.float32)
    path = write_mean(tmp_path / 'mean.binaryproto', mean)
    t = transformer('crop_size: 4 scale: 0.0078125 mean_file: "%s"' % path, caffe.TEST)
    out = run(t, img)
    np.testing.assert_array_equal(out, reference(img, 4, 1, 1, False, 0.0078125, mean=mean))
    # Not x * scale - mean: the order shows.
    wrong = img[:, 1:5, 1:5].astype(np.float32) * np.float32(0.0078125) - mean[:, 1:5, 1:5]
    assert np.abs(out - wrong).max() > 1


def test_mean_file_flips_with_the_image(tmp_path):
    caffe.set_random_seed(8)
    img = image((3, 4, 5), seed=4)
    mean = np.random.RandomState(5).uniform(0, 255, size=img.shape).astype(np.float32)
    path = write_mean(tmp_path / 'mean.binaryproto', mean, legacy=False)
    t = transformer('mirror: true mean_file: "%s"' % path)
    t.init_rand()
    expected_rng = CaffeRNG(CaffeRNG(8).raw())
    for _ in range(6):
        mirror = expected_rng.raw() % 2 == 1
        np.testing.assert_array_equal(run(t, img), reference(img, 0, 0, 0, mirror, 1, mean=mean))


@pytest.mark.parametrize('values', [[104.0], [104.0, 117.0, 123.0]])
def test_mean_values_one_or_per_channel(values):
    img = image((3, 4, 4), seed=6)
    text = ' '.join('mean_value: %g' % v for v in values) + ' scale: 2'
    out = run(transformer(text, caffe.TEST), img)
    np.testing.assert_array_equal(out, reference(img, 0, 0, 0, False, 2, mean_values=values))


def test_float_images_and_no_mean():
    img = image((2, 3, 4), dtype=np.float32)
    out = run(transformer('scale: 3', caffe.TEST), img)
    np.testing.assert_array_equal(out, reference(img, 0, 0, 0, False, 3))
    assert out.dtype == np.float32


def test_errors(tmp_path):
    with pytest.raises(CaffeError, match='mean_file and mean_value'):
        transformer('mean_file: "x" mean_value: 1')
    with pytest.raises(CaffeError, match='force_color and force_gray'):
        transformer('force_color: true force_gray: true')
    with pytest.raises(CaffeError, match='nothere.binaryproto'):
        transformer('mean_file: "%s"' % (tmp_path / 'nothere.binaryproto'))
    (tmp_path / 'junk.binaryproto').write_bytes(b'\xff\xff\xff')
    with pytest.raises(CaffeError, match='junk.binaryproto'):
        transformer('mean_file: "%s"' % (tmp_path / 'junk.binaryproto'))
    t = transformer('crop_size: 9', caffe.TEST)
    with pytest.raises(CaffeError, match='crop_size 9 is larger than an image of 5 x 7'):
        run(t, image())
    t = transformer('mean_value: 1 mean_value: 2', caffe.TEST)
    with pytest.raises(CaffeError, match='either 1 mean_value or as many as channels: 3'):
        run(t, image())
    path = write_mean(tmp_path / 'small.binaryproto', np.zeros((3, 4, 4), np.float32))
    with pytest.raises(CaffeError, match='small.binaryproto holds a 3 x 4 x 4 mean; the images '
                                         'are 3 x 5 x 7'):
        run(transformer('mean_file: "%s"' % path, caffe.TEST), image())
    # A 3-axis blob's legacy channels, height and width are its axes 1, 2 and 1 (Caffe's
    # LegacyShape), so a mean stored as (C, H, W) does not fit, in Caffe as here.
    blob = caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=[3, 5, 7]), data=[0] * 105)
    (tmp_path / 'chw.binaryproto').write_bytes(blob.SerializeToString())
    with pytest.raises(CaffeError, match='5 x 7 x 1 mean; the images are 3 x 5 x 7'):
        run(transformer('mean_file: "%s"' % (tmp_path / 'chw.binaryproto'), caffe.TEST),
            image())
