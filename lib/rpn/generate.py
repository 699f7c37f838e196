"""Proposals from a trained RPN for single images and whole datasets (the alternating training's
proposal steps, paper Sec. 3.2, and tools/rpn_generate.py).

The RPN test net takes blobs data and im_info and produces rois (R, 5) and scores (R, 1), as the
release's rpn_test.pt does; the proposal limits are cfg.TEST.RPN_*.
"""
import time

import cv2
import numpy as np

from fast_rcnn.bbox_transform import clip_boxes

from fast_rcnn.config import cfg
from utils.blob import im_list_to_blob, prep_im_for_blob


def _get_image_blob(im):
    """The image at cfg.TEST.SCALES[0] as a (1, 3, H, W) blob, and im_info [[H, W, scale]]."""
    if len(cfg.TEST.SCALES) != 1:
        raise ValueError('RPN proposals are made at one scale; cfg.TEST.SCALES is %s'
                         % (tuple(cfg.TEST.SCALES),))
    scaled, scale = prep_im_for_blob(im, cfg.PIXEL_MEANS, cfg.TEST.SCALES[0], cfg.TEST.MAX_SIZE)
    blob = im_list_to_blob([scaled])
    im_info = np.array([[blob.shape[2], blob.shape[3], scale]], dtype=np.float32)
    return blob, im_info


def im_proposals(net, im):
    """Runs the RPN test net on one BGR image. Returns (boxes (R, 4) in the image's pixels,
    scores (R, 1)), best first."""
    data, im_info = _get_image_blob(im)
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


def imdb_proposals(net, imdb):
    """Proposals for every image of imdb (not flipped): a list of (R, 4) box arrays, one per
    image, in image order. Prints progress."""
    num_images = imdb.num_images
    imdb_boxes = []
    start = last_print = time.perf_counter()
    for i in range(num_images):
        path = imdb.image_path_at(i)
        im = cv2.imread(path)
        if im is None:
            raise OSError('cannot read image %s (missing, unreadable or not an image)' % path)
        tic = time.perf_counter()
        boxes, _ = im_proposals(net, im)
        now = time.perf_counter()
        imdb_boxes.append(boxes)
        done = i + 1
        if done in (1, num_images) or done % 100 == 0 or now - last_print >= 10:
            last_print = now
            eta = (now - start) / done * (num_images - done)
            print('im_proposals: %d/%d %.3fs (ETA %ds)' % (done, num_images, now - tic, eta),
                  flush=True)
    return imdb_boxes
