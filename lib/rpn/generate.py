"""Proposals from a trained RPN for single images and whole datasets (the alternating training's
proposal steps, paper Sec. 3.2, and tools/rpn_generate.py).

The RPN test net takes blobs data and im_info and produces rois (R, 5) and scores (R, 1), as the
release's rpn_test.pt does; its proposal layer applies cfg.TEST.RPN_* (read when the net is
built). This module is a driver: im_proposals and imdb_proposals read the image scaling from cfg
(TEST.SCALES, TEST.MAX_SIZE, PIXEL_MEANS) at their top unless given it.
"""
import time

import cv2
import numpy as np

from core.boxes import clip_boxes
from fast_rcnn.config import cfg
from utils.blob import pyramid_blob


def image_scaling(config=cfg):
    """(target size, max size, pixel means) of RPN testing: one scale (TEST.SCALES)."""
    if len(config.TEST.SCALES) != 1:
        raise ValueError('RPN proposals are made at one scale; cfg.TEST.SCALES is %s'
                         % (tuple(config.TEST.SCALES),))
    return config.TEST.SCALES[0], config.TEST.MAX_SIZE, np.asarray(config.PIXEL_MEANS)


def im_proposals(net, im, scaling=None):
    """Runs the RPN test net on one BGR image. Returns (boxes (R, 4) in the image's pixels,
    scores (R, 1)), best first. scaling: image_scaling()'s triple (default: from cfg)."""
    target_size, max_size, pixel_means = scaling or image_scaling()
    data, scales = pyramid_blob(im, pixel_means, (target_size,), max_size)
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


def imdb_proposals(net, imdb, scaling=None):
    """Proposals for every image of imdb (not flipped): a list of (R, 4) box arrays, one per
    image, in image order. Prints progress."""
    scaling = scaling or image_scaling()
    num_images = imdb.num_images
    imdb_boxes = []
    start = last_print = time.perf_counter()
    for i in range(num_images):
        path = imdb.image_path_at(i)
        im = cv2.imread(path)
        if im is None:
            raise OSError('cannot read image %s (missing, unreadable or not an image)' % path)
        tic = time.perf_counter()
        boxes, _ = im_proposals(net, im, scaling)
        now = time.perf_counter()
        imdb_boxes.append(boxes)
        done = i + 1
        if done in (1, num_images) or done % 100 == 0 or now - last_print >= 10:
            last_print = now
            eta = (now - start) / done * (num_images - done)
            print('im_proposals: %d/%d %.3fs (ETA %ds)' % (done, num_images, now - tic, eta),
                  flush=True)
    return imdb_boxes
