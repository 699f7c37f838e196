"""Testing a Fast R-CNN / Faster R-CNN network: image -> blobs -> net -> scored, regressed boxes per
class (im_detect); then over a whole dataset, per-class thresholding and NMS, a cap on detections
per image, saving and evaluation (test_net).

Settings come as a fast_rcnn.test_settings.TestSettings, by default the one the net carries in
its prototxt (fast_rcnn.test_settings.of_net). Pictures are fast_rcnn.vis's, the detections cache
fast_rcnn.detection_cache's.
"""
import os
from dataclasses import dataclass

import cv2
import numpy as np

from core.boxes import bbox_transform_inv, clip_boxes
from core.dense_windows import dense_windows
from fast_rcnn import detection_cache, test_settings
from fast_rcnn.vis import save_detections_image, save_pr_curves
from nms.dispatch import nms
from utils import paths
from utils.blob import pyramid_blob
from utils.image_file import check_image_file
from utils.timer import Timer

# RoIs of a multi-scale pyramid are pooled at the level where their area is closest to 224^2,
# the ImageNet pre-training size (the release's choice, after SPPnet).
_CANONICAL_AREA = 224 * 224


def image_blob(im, settings):
    """The image pyramid of settings.scales as one (n_scales, 3, H, W) float32 blob, and the
    scales."""
    means = np.asarray(settings.pixel_means, dtype=np.float64).reshape(1, 1, -1)
    return pyramid_blob(im, means, settings.scales, settings.max_size)


def _project_im_rois(im_rois, scales):
    """Image-coordinate RoIs scaled onto the pyramid level each one is pooled from."""
    im_rois = np.asarray(im_rois, dtype=np.float64)
    if len(scales) > 1:
        widths = im_rois[:, 2] - im_rois[:, 0] + 1
        heights = im_rois[:, 3] - im_rois[:, 1] + 1
        scaled_areas = (widths * heights)[:, np.newaxis] * (scales[np.newaxis, :] ** 2)
        levels = np.abs(scaled_areas - _CANONICAL_AREA).argmin(axis=1)[:, np.newaxis]
    else:
        levels = np.zeros((im_rois.shape[0], 1), dtype=np.int64)
    return im_rois[:, :4] * scales[levels], levels


def rois_blob(im_rois, scales):
    """(R, 5) float32 [pyramid level, x1, y1, x2, y2] of image-coordinate RoIs."""
    rois, levels = _project_im_rois(im_rois, scales)
    return np.hstack((levels, rois)).astype(np.float32, copy=False)


def im_detect(net, im, boxes=None, settings=None):
    """Detects objects in one BGR image.

    boxes: (R, 4) proposals in image pixels for a Fast R-CNN net; None for a net with an RPN
    (settings.has_rpn), whose 'rois' output is used. settings: TestSettings (default: the net's,
    test_settings.of_net).
    Returns scores (R, K) and boxes (R, 4K): per class, the proposal moved by that class's
    regression (settings.bbox_reg) and clipped to the image, in image pixels.
    """
    settings = settings or test_settings.of_net(net)
    data, im_scales = image_blob(im, settings)
    inputs = {'data': data}
    dedup = None
    if settings.has_rpn:
        if len(im_scales) != 1:
            raise ValueError('im_detect: an RPN net tests at one scale; TEST.SCALES = %s'
                             % (settings.scales,))
        inputs['im_info'] = np.array([[data.shape[2], data.shape[3], im_scales[0]]],
                                     dtype=np.float32)
    else:
        if boxes is None:
            raise ValueError('im_detect: a net without an RPN (TEST.HAS_RPN False) needs '
                             'proposal boxes')
        rois = rois_blob(boxes, im_scales)
        if settings.dedup_boxes > 0:
            # RoIs that fall on the same feature-map cells give identical outputs; run each once.
            keys = np.round(rois * settings.dedup_boxes).astype(np.int64)
            _, index, dedup = np.unique(keys, axis=0, return_index=True, return_inverse=True)
            dedup = np.asarray(dedup).ravel()
            rois = rois[index, :]
            boxes = np.asarray(boxes)[index, :]
        inputs['rois'] = rois
    blobs_out = _forward(net, inputs, settings)

    if settings.has_rpn:
        boxes = net.blobs['rois'].data[:, 1:5] / im_scales[0]
    scores, pred_boxes = _decode(net, blobs_out, np.asarray(boxes, dtype=np.float64)[:, :4],
                                 im.shape, settings)
    if dedup is not None:
        scores = scores[dedup, :]
        pred_boxes = pred_boxes[dedup, :]
    return scores, pred_boxes


def _forward(net, inputs, settings):
    for name, value in inputs.items():
        if name not in net.blobs:
            raise ValueError('im_detect: the net has no input blob %r (the test settings say '
                             'has_rpn %s; does the net take given boxes?)'
                             % (name, settings.has_rpn))
        net.blobs[name].reshape(*value.shape)
    return net.forward(**inputs)


def _decode(net, blobs_out, boxes, im_shape, settings):
    """Scores (R, K) and class-specific boxes (R, 4K) from the net's outputs for `boxes`."""
    if settings.svm:
        scores = net.blobs['cls_score'].data.copy()
    else:
        scores = np.array(blobs_out['cls_prob'], copy=True)
    # With no RoIs (an image too small for any proposal) the outputs have 0 rows, which
    # reshape(0, -1) cannot infer a width for.
    scores = scores.reshape(scores.shape[0], _row_size(scores))
    if settings.bbox_reg:
        deltas = np.asarray(blobs_out['bbox_pred'])
        deltas = deltas.reshape(deltas.shape[0], _row_size(deltas))
        pred_boxes = clip_boxes(bbox_transform_inv(boxes, deltas), im_shape)
    else:
        pred_boxes = np.tile(boxes, (1, scores.shape[1]))
    return scores, pred_boxes


def _row_size(array):
    return int(np.prod(array.shape[1:], dtype=np.int64))


def detections_for_class(scores, boxes, cls, thresh, nms_thresh, nms_function=nms):
    """(N, 5) float32 [x1, y1, x2, y2, score] of class `cls` above thresh, after NMS."""
    inds = np.where(scores[:, cls] > thresh)[0]
    dets = np.hstack((boxes[inds, cls * 4:(cls + 1) * 4],
                      scores[inds, cls][:, np.newaxis])).astype(np.float32, copy=False)
    if dets.shape[0] == 0:
        return dets.reshape(0, 5)
    keep = nms_function(dets, nms_thresh)
    return dets[keep, :]


def limit_detections(dets_per_class, max_per_image):
    """Keeps the max_per_image highest-scoring detections of an image over all classes;
    dets_per_class lists (N, 5) arrays (the background entry excluded)."""
    if max_per_image <= 0:
        return dets_per_class
    scores = np.hstack([d[:, -1] for d in dets_per_class]) if dets_per_class else []
    if len(scores) <= max_per_image:
        return dets_per_class
    image_thresh = np.sort(scores)[-max_per_image]
    return [d[d[:, -1] >= image_thresh] for d in dets_per_class]


def apply_nms(all_boxes, thresh, nms_function=nms):
    """Per-class NMS over all_boxes[cls][image] (N, 5) arrays; returns a new nested list."""
    nms_boxes = [[[] for _ in per_class] for per_class in all_boxes]
    for cls, per_class in enumerate(all_boxes):
        for i, dets in enumerate(per_class):
            if len(dets) == 0:
                continue
            dets = np.asarray(dets, dtype=np.float32)
            nms_boxes[cls][i] = dets[nms_function(dets, thresh), :]
    return nms_boxes


@dataclass
class TestResult:
    """What a test run produced: the detections (all_boxes[cls][image] (N, 5) arrays), their
    file, the evaluation summary (imdb.evaluate), the precision/recall PNG (or None), the mean
    im_detect time per image (None when the detections were reused)."""
    all_boxes: list
    detections_file: str
    evaluation: dict
    pr_curves_png: str
    seconds_per_image: float


def test_net(net, imdb, max_per_image=None, thresh=None, vis=False, settings=None,
             model_files=None, output_dir=None):
    """Detects objects in every image of imdb, saves all_boxes to
    <output dir>/detections.npz, evaluates them (imdb.evaluate) and draws the per-class
    precision/recall curves to <output dir>/pr_curves.png. Returns all_boxes
    (all_boxes[cls][image] (N, 5) [x1, y1, x2, y2, score]; class 0 holds empty lists).
    run_test returns everything a caller may want (TestResult).

    settings: TestSettings (default: the net's, test_settings.of_net); max_per_image and thresh,
    when given, replace its max_per_image and score_thresh. output_dir defaults to
    output/default/<imdb>/<net> (utils.paths.output_dir). The other arguments are run_test's.
    """
    settings = settings or test_settings.of_net(net)
    if max_per_image is not None:
        settings = settings.replace(max_per_image=max_per_image)
    if thresh is not None:
        settings = settings.replace(score_thresh=thresh)
    output_dir = output_dir or paths.output_dir(imdb, net)
    return run_test(net, imdb, output_dir, settings, vis, model_files).all_boxes


def run_test(net, imdb, output_dir, settings=None, vis=False, model_files=None):
    """Detects objects in every image of imdb (test_net) and returns a TestResult.

    settings: TestSettings (default: the net's). model_files: the (prototxt, caffemodel) the net
    was built from; with them, detections.npz is reused (not recomputed) when it was made from
    the same files (by content, so with the same settings of its layers), image set and test
    settings. vis writes one PNG per image to <output dir>/vis/.
    """
    settings = settings or test_settings.of_net(net)
    det_file = os.path.join(output_dir, detection_cache.DETECTIONS_FILE)
    key = None
    if model_files is not None:
        key = detection_cache.detections_key(model_files[0], model_files[1], imdb, settings)
    all_boxes = None if vis else detection_cache.load_if_current(det_file, key)
    seconds = None
    if all_boxes is not None:
        print('Reusing the detections in %s (same weights, net, image set and test '
              'settings; delete it to detect again)' % det_file, flush=True)
    else:
        all_boxes, seconds = _detect_all(net, imdb, vis, output_dir, settings)
        detection_cache.save(det_file, all_boxes, key)
        print('Wrote detections to %s' % det_file, flush=True)
    print('Evaluating detections', flush=True)
    evaluation = imdb.evaluate(all_boxes, output_dir)
    png = None
    curves = (evaluation or {}).pop('pr_curves', None)
    if curves:
        png = save_pr_curves(curves, os.path.join(output_dir, 'pr_curves.png'),
                             title='%s on %s' % (getattr(net, 'name', ''), imdb.name))
        print('Wrote precision/recall curves to %s' % png, flush=True)
    return TestResult(all_boxes, det_file, evaluation, png, seconds)


def _detect_all(net, imdb, vis, output_dir, settings):
    num_images = imdb.num_images
    all_boxes = [[[] for _ in range(num_images)] for _ in range(imdb.num_classes)]
    timers = {'im_detect': Timer(), 'misc': Timer()}
    nms_function = settings.nms_function()
    # 'dense': the one-stage system's sliding windows (Table 10), made per image, not stored.
    dense = not settings.has_rpn and settings.proposal_method == 'dense'
    roidb = None if settings.has_rpn or dense else imdb.roidb

    for i in range(num_images):
        proposals = None
        if roidb is not None:
            proposals = roidb[i]['boxes'][roidb[i]['gt_classes'] == 0]
        path = imdb.image_path_at(i)
        check_image_file(path)  # cv2 decodes a truncated JPEG without an error
        im = cv2.imread(path)
        if im is None:
            raise FileNotFoundError('cannot read image %s (image %d of %s)'
                                    % (path, i, imdb.name))
        if dense:
            proposals = dense_windows(im.shape[0], im.shape[1], settings.scales,
                                      settings.max_size)
        timers['im_detect'].tic()
        scores, boxes = im_detect(net, im, proposals, settings)
        timers['im_detect'].toc()

        timers['misc'].tic()
        dets = [detections_for_class(scores, boxes, j, settings.score_thresh, settings.nms,
                                     nms_function)
                for j in range(1, imdb.num_classes)]
        dets = limit_detections(dets, settings.max_per_image)
        for j, d in enumerate(dets, start=1):
            all_boxes[j][i] = d
        if vis:
            name = os.path.splitext(os.path.basename(path))[0]
            save_detections_image(im, imdb.classes[1:], dets,
                                  os.path.join(output_dir, 'vis', '%s.png' % name))
        timers['misc'].toc()
        print('im_detect: {:d}/{:d}  {:.3f}s {:.3f}s'.format(
            i + 1, num_images, timers['im_detect'].average_time, timers['misc'].average_time),
            flush=True)
    return all_boxes, timers['im_detect'].average_time
