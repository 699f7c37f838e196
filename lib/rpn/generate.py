"""Proposals from a trained RPN for single images and whole datasets (the alternating training's
proposal steps, paper Sec. 3.2, and tools/rpn_generate.py).

The RPN test net takes blobs data and im_info and produces rois (R, 5) and scores (R, 1), as the
release's rpn_test.pt does; its proposal layer's limits are in its param_str, and the image
scaling (one test scale) in its test settings (fast_rcnn.test_settings), unless given.
"""
import time

import cv2
import numpy as np

from core.boxes import clip_boxes
from fast_rcnn import test_settings
from utils.blob import pyramid_blob


def _one_scale(settings):
    if len(settings.scales) != 1:
        raise ValueError('RPN proposals are made at one scale; the test scales are %s'
                         % (tuple(settings.scales),))
    return settings.scales[0]


def im_proposals(net, im, settings=None):
    """Runs the RPN test net on one BGR image. Returns (boxes (R, 4) in the image's pixels,
    scores (R, 1)), best first. settings: a TestSettings with one scale (default: the net's,
    test_settings.of_net)."""
    settings = settings or test_settings.of_net(net)
    pixel_means = np.asarray(settings.pixel_means, dtype=np.float64).reshape(1, 1, -1)
    data, scales = pyramid_blob(im, pixel_means, (_one_scale(settings),), settings.max_size)
    im_info = np.array([[data.shape[2], data.shape[3], scales[0]]], dtype=np.float32)
    for name in ('data', 'im_info', 'rois', 'scores'):
        if name not in net.blobs:
            raise KeyError('im_proposals: the RPN test net has no blob %r (it needs inputs data, '
                           'im_info and outputs rois, scores)' % name)
    net.forward(data=data, im_info=im_info)
    boxes = net.blobs['rois'].data[:, 1:].astype(np.float32) / im_info[0, 2]
    # Clipped on the scaled image, a box divided by the scale can end a fraction of a pixel
    # outside the original one, which flipping could not mirror.
    clip_boxes(boxes, im.shape)
    scores = net.blobs['scores'].data.reshape(-1, 1).copy()
    return boxes, scores


def imdb_proposals(net, imdb, settings=None):
    """Proposals for every image of imdb (not flipped): a list of (R, 4) box arrays, one per
    image, in image order (settings: im_proposals'). Prints progress."""
    settings = settings or test_settings.of_net(net)
    _one_scale(settings)
    num_images = imdb.num_images
    imdb_boxes = []
    start = last_print = time.perf_counter()
    for i in range(num_images):
        path = imdb.image_path_at(i)
        im = cv2.imread(path)
        if im is None:
            raise OSError('cannot read image %s (missing, unreadable or not an image)' % path)
        tic = time.perf_counter()
        boxes, _ = im_proposals(net, im, settings)
        now = time.perf_counter()
        imdb_boxes.append(boxes)
        done = i + 1
        if done in (1, num_images) or done % 100 == 0 or now - last_print >= 10:
            last_print = now
            eta = (now - start) / done * (num_images - done)
            print('im_proposals: %d/%d %.3fs (ETA %ds)' % (done, num_images, now - tic, eta),
                  flush=True)
    return imdb_boxes
