"""Images at the edges: tiny or thin images give zero detections instead of ending a test run,
and a huge image is drawn from a downscaled copy, in memory bounded by the picture."""
import json
import os

import cv2
import numpy as np
import pytest

from tool_runs import CFGS, TEST_DEF, run_tool, save_toy_test_weights

SMALL = ['TEST.SCALES', '[120]', 'TEST.MAX_SIZE', '200']
# (height, width): short side <= 12, or 1-3 pixels thin (some long enough that scaling to
# MAX_SIZE rounds a side below one pixel).
TINY = [(12, 12), (5, 5), (1, 1), (3, 300), (300, 3), (1, 1000), (1, 5000), (2, 20000)]


@pytest.fixture(scope='module')
def toy_model(tmp_path_factory):
    return save_toy_test_weights(tmp_path_factory.mktemp('limits_model') / 'toy.caffemodel')


def test_tiny_images_give_no_proposals_and_no_detections_in_im_detect(toy_model):
    import caffe
    from fast_rcnn.test import detections_for_class, im_detect
    from fast_rcnn.test_settings import TestSettings
    net = caffe.Net(TEST_DEF, str(toy_model), caffe.TEST)
    settings = TestSettings(has_rpn=True, scales=(120,), max_size=200)
    for h, w in TINY:
        scores, boxes = im_detect(net, np.full((h, w, 3), 100, np.uint8), settings=settings)
        assert scores.shape[1] == 4 and boxes.shape[1] == 16, (h, w)
        assert scores.shape[0] == boxes.shape[0]
        if min(h, w) <= 12 and max(h, w) <= 1000:
            # The proposal layer's min_size (16 pixels of the image) removes every proposal.
            assert scores.shape[0] == 0, (h, w)
        dets = detections_for_class(scores, boxes, 1, 0.05, 0.3)
        assert dets.shape[1] == 5


def test_a_side_that_would_scale_below_a_pixel_keeps_one():
    from utils.blob import prep_im_for_blob
    im, scale = prep_im_for_blob(np.full((2, 20000, 3), 50, np.uint8), np.zeros((1, 1, 3)),
                                 600, 1000)
    assert scale == 1000 / 20000 and im.shape == (1, 1000, 3)
    # Ordinary images are scaled by the factor, as the release does.
    im, scale = prep_im_for_blob(np.full((300, 500, 3), 50, np.uint8), np.zeros((1, 1, 3)),
                                 600, 1000)
    assert im.shape == (600, 1000, 3) and scale == 2.0


def _tiny_images(folder, sizes):
    paths = []
    for h, w in sizes:
        path = os.path.join(str(folder), 'tiny_%dx%d.png' % (w, h))
        cv2.imwrite(path, np.random.RandomState(h * w).randint(0, 255, (h, w, 3)).astype(np.uint8))
        paths.append(path)
    return paths


# With TEST.RPN_MIN_SIZE 16 (the paper's; toy.yml has 8) every proposal of these is too small.
NO_PROPOSALS = [(h, w) for h, w in TINY if max(h, w) <= 1000]
MIN_SIZE_16 = ['TEST.RPN_MIN_SIZE', '16']


def test_demo_on_tiny_images(tmp_path, toy_model):
    images = _tiny_images(tmp_path, NO_PROPOSALS)
    result = tmp_path / 'demo.json'
    code, out, err = run_tool('demo.py', [
        '--gpu', 'cpu', '--model', str(toy_model), '--images'] + images + [
        '--out', str(tmp_path / 'out'), '--result', str(result), '--thresh', '0'] + CFGS
        + ['--set'] + SMALL + MIN_SIZE_16)
    assert code == 0, err
    pictures = json.loads(result.read_text())['pictures']
    assert [p['image'] for p in pictures] == images
    for picture in pictures:
        assert os.path.isfile(picture['png']) and picture['detections'] == 0
    for image in images:
        assert '%s: 0 object proposals, 0 detections' % image in out


def test_test_net_on_a_dataset_of_tiny_images(tmp_path, toy_model):
    from datasets.toy import generate_toy_dataset
    data = tmp_path / 'data'
    generate_toy_dataset(str(data / 'toy'), num_train=1, num_test=len(TINY))
    toy = data / 'toy'
    ids = (toy / 'ImageSets' / 'Main' / 'test.txt').read_text().split()
    for index, (h, w) in zip(ids, TINY):
        os.remove(str(toy / 'JPEGImages' / (index + '.jpg')))
        cv2.imwrite(str(toy / 'JPEGImages' / (index + '.png')),
                    np.full((h, w, 3), 120, np.uint8))
        (toy / 'Annotations' / (index + '.xml')).write_text(
            '<annotation><size><width>%d</width><height>%d</height><depth>3</depth></size>'
            '<object><name>square</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>%d</xmax>'
            '<ymax>%d</ymax></bndbox></object></annotation>' % (w, h, w, h))
    code, out, err = run_tool('test_net.py', [
        '--gpu', 'cpu', '--def', TEST_DEF, '--net', str(toy_model),
        '--imdb', 'toy_test'] + CFGS + ['--set', 'DATA_DIR', str(data),
                                       'ROOT_DIR', str(tmp_path / 'root')] + SMALL + MIN_SIZE_16)
    assert code == 0, err
    assert 'im_detect: %d/%d' % (len(TINY), len(TINY)) in out and 'Mean AP = ' in out
    # The images without a proposal have no detection; the mAP is computed over all.
    assert 'AP for square = 0.0000' in out


def test_a_huge_image_is_drawn_in_memory_bounded_by_the_picture(tmp_path):
    import tracemalloc
    from fast_rcnn.vis import MAX_DRAWN_SIDE, save_detections_image
    dets = [np.array([[10, 10, 400, 300, 0.9]], np.float32)]
    # Warm up matplotlib (its imports and caches are not the picture's cost).
    save_detections_image(np.zeros((64, 64, 3), np.uint8), ['a'], dets, str(tmp_path / 'w.png'))
    peaks = []
    for side in (2 * MAX_DRAWN_SIDE, 3 * MAX_DRAWN_SIDE):
        im = np.random.RandomState(side).randint(0, 255, (side, side, 3)).astype(np.uint8)
        tracemalloc.start()
        try:
            save_detections_image(im, ['a'], dets, str(tmp_path / ('%d.png' % side)))
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        drawn = cv2.imread(str(tmp_path / ('%d.png' % side)))
        assert drawn is not None and max(drawn.shape[:2]) <= MAX_DRAWN_SIDE
        del im
    # 2.25 times the pixels, the same cost: it depends on the picture, not the photo. Drawn
    # at full size, matplotlib's float copies would cost several times the larger image.
    assert peaks[1] < 1.1 * peaks[0], peaks
    assert peaks[1] < 3 * (3 * MAX_DRAWN_SIDE) ** 2 * 3, peaks
