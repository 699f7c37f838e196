"""caffe.Classifier and caffe.Detector on a small softmax net, against predictions computed by
hand: crops cut by explicit indices, preprocessing written out per pixel, softmax in float64."""
import cv2
import numpy as np
import pytest

import caffe

NET = '''
name: "tiny"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "score"
        inner_product_param { num_output: 2 } }
layer { name: "prob" type: "Softmax" bottom: "score" top: "prob" }
'''
RS = np.random.RandomState(11)
W = RS.randn(2, 48).astype(np.float32) * 0.3
B = np.array([0.2, -0.1], dtype=np.float32)
MEAN = np.array([0.1, 0.2, 0.3])
RAW_SCALE = 2.0
SWAP = (2, 1, 0)


@pytest.fixture
def model(tmp_path):
    prototxt = str(tmp_path / 'tiny.prototxt')
    open(prototxt, 'w').write(NET)
    net = caffe.Net(prototxt, caffe.TEST)
    net.params['ip'][0].data[...] = W
    net.params['ip'][1].data[...] = B
    weights = str(tmp_path / 'tiny.caffemodel')
    net.save(weights)
    return prototxt, weights


def predict_by_hand(crop):
    """softmax(W x + b) for one (4, 4, 3) crop, x = raw_scale * crop[..., swap] - mean."""
    x = np.zeros((3, 4, 4))
    for c in range(3):
        x[c] = RAW_SCALE * crop[:, :, SWAP[c]] - MEAN[c]
    logits = W.astype(np.float64) @ x.ravel() + B
    e = np.exp(logits - logits.max())
    return e / e.sum()


def test_classifier_ten_crop_average(model):
    clf = caffe.Classifier(*model, image_dims=(6, 6), mean=MEAN, raw_scale=RAW_SCALE,
                           channel_swap=SWAP)
    images = [RS.rand(6, 6, 3).astype(np.float32) for _ in range(3)]
    predictions = clf.predict(images)
    assert predictions.shape == (3, 2)
    for image, p in zip(images, predictions):
        crops = [image[y:y + 4, x:x + 4] for y, x in ((0, 0), (0, 2), (2, 0), (2, 2), (1, 1))]
        crops += [c[:, ::-1] for c in crops]
        expected = np.mean([predict_by_hand(c) for c in crops], axis=0)
        np.testing.assert_allclose(p, expected, rtol=1e-5, atol=1e-6)


def test_classifier_center_crop(model):
    clf = caffe.Classifier(*model, image_dims=(6, 6), mean=MEAN, raw_scale=RAW_SCALE,
                           channel_swap=SWAP)
    image = RS.rand(6, 6, 3).astype(np.float32)
    p = clf.predict([image], oversample=False)
    np.testing.assert_allclose(p[0], predict_by_hand(image[1:5, 1:5]), rtol=1e-5, atol=1e-6)
    assert clf.transformer.transpose['data'] == (2, 0, 1)


def _write_image(path, rgb_uint8):
    cv2.imwrite(path, rgb_uint8[:, :, ::-1])


def test_detector_windows(model, tmp_path):
    det = caffe.Detector(*model, mean=MEAN, raw_scale=RAW_SCALE, channel_swap=SWAP)
    pixels = RS.randint(0, 256, size=(6, 7, 3)).astype(np.uint8)
    path = str(tmp_path / 'im.png')
    _write_image(path, pixels)
    windows = [(0, 0, 4, 4), (2, 3, 6, 7)]
    detections = det.detect_windows([(path, windows)])
    assert [d['window'] for d in detections] == windows
    assert all(d['filename'] == path for d in detections)
    image = pixels / 255.0
    for d, (y1, x1, y2, x2) in zip(detections, windows):
        np.testing.assert_allclose(d['prediction'], predict_by_hand(image[y1:y2, x1:x2]),
                                   rtol=1e-5, atol=1e-6)


def test_detector_context_pad_fills_outside_with_the_mean(model):
    det = caffe.Detector(*model, mean=MEAN, raw_scale=RAW_SCALE, channel_swap=SWAP,
                         context_pad=1)
    assert tuple(det.crop_dims) == (4, 4, 3)
    image = RS.rand(6, 6, 3).astype(np.float32)
    # Window rows/cols 0..1 (size 2): with 1 pixel of context in a 4-pixel input the box grows
    # by 4 / (4 - 2) = 2 to rows/cols -1..3; the row and column outside the image are the mean
    # (in image space: channels swapped back, divided by raw_scale), the rest the image's 0..2.
    crop = det.crop(image, (0, 0, 1, 1))
    mean_in_image_space = np.array([MEAN[2], MEAN[1], MEAN[0]]) / RAW_SCALE
    expected = np.empty((4, 4, 3))
    expected[...] = mean_in_image_space
    expected[1:, 1:] = image[0:3, 0:3]
    np.testing.assert_allclose(crop, expected, rtol=1e-6, atol=1e-7)
