"""Box geometry: overlaps, the regression parameterization (paper Eq. 2), clipping, filters and
formats.

Boxes are (x1, y1, x2, y2) in pixels with inclusive corners, so a box is x2 - x1 + 1 wide and its
center is x1 + 0.5 * width (the release's convention, used for every box in this project).
"""
import numpy as np

from utils.extensions import load_extension


def box_overlaps(boxes, query_boxes):
    """(N, K) float64 IoU of every box (N, 4+) with every query box (K, 4+); widths and heights
    are x2 - x1 + 1 and a non-intersecting or degenerate pair has IoU 0 (utils.cython_bbox,
    loaded on first use so that box code without overlaps works before `make`)."""
    return load_extension('utils.cython_bbox').bbox_overlaps(boxes, query_boxes)


def box_coverage(boxes, regions):
    """(N, K) float64: the share of each box's area (N, 4+) that lies inside each region (K, 4+),
    intersection / box area, widths x2 - x1 + 1. COCO scores a detection against a crowd region
    this way (pycocotools' iou with iscrowd set), and the COCO reader drops proposals that a
    crowd covers."""
    boxes = np.asarray(boxes, dtype=np.float64)
    regions = np.asarray(regions, dtype=np.float64)
    _check_boxes(boxes, 'boxes')
    _check_boxes(regions, 'regions')
    iw = (np.minimum(boxes[:, None, 2], regions[None, :, 2])
          - np.maximum(boxes[:, None, 0], regions[None, :, 0]) + 1)
    ih = (np.minimum(boxes[:, None, 3], regions[None, :, 3])
          - np.maximum(boxes[:, None, 1], regions[None, :, 1]) + 1)
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(area[:, None] > 0, inter / area[:, None], 0.0)


def bbox_transform(ex_rois, gt_rois):
    """Regression targets (dx, dy, dw, dh) that take each ex_roi to its gt_roi (paper Eq. 2):
    dx = (gx - ax) / wa, dy = (gy - ay) / ha, dw = log(gw / wa), dh = log(gh / ha).

    ex_rois: (N, 4+) and gt_rois: (N, 4+); only the first four columns are read.
    Returns (N, 4) in the inputs' float type (float64 for integer inputs).
    """
    ex_rois = np.asarray(ex_rois)
    gt_rois = np.asarray(gt_rois)
    _check_boxes(ex_rois, 'ex_rois')
    _check_boxes(gt_rois, 'gt_rois')
    if ex_rois.shape[0] != gt_rois.shape[0]:
        raise ValueError('bbox_transform: %d ex_rois but %d gt_rois'
                         % (ex_rois.shape[0], gt_rois.shape[0]))
    dtype = _float_type(ex_rois, gt_rois)
    ex_rois = ex_rois.astype(dtype, copy=False)
    gt_rois = gt_rois.astype(dtype, copy=False)

    ex_w, ex_h, ex_cx, ex_cy = _widths_centers(ex_rois)
    gt_w, gt_h, gt_cx, gt_cy = _widths_centers(gt_rois)

    targets = np.empty((ex_rois.shape[0], 4), dtype=dtype)
    targets[:, 0] = (gt_cx - ex_cx) / ex_w
    targets[:, 1] = (gt_cy - ex_cy) / ex_h
    targets[:, 2] = np.log(gt_w / ex_w)
    targets[:, 3] = np.log(gt_h / ex_h)
    return targets


def bbox_transform_inv(boxes, deltas):
    """Applies regression deltas to boxes: the predicted boxes, one per class.

    boxes: (N, 4+), only the first four columns read; deltas: (N, 4K), (dx, dy, dw, dh) per class.
    Returns (N, 4K) in deltas' float type. As in the release, x2 = cx + 0.5 * w (and y2 alike)
    without subtracting 1, so applying bbox_transform's targets gives back x1, y1 exactly and
    x2, y2 one pixel larger; the released models were evaluated with this decoding.
    """
    boxes = np.asarray(boxes)
    deltas = np.asarray(deltas)
    _check_boxes(boxes, 'boxes')
    if deltas.ndim != 2 or deltas.shape[1] % 4 != 0:
        raise ValueError('bbox_transform_inv: deltas must be (N, 4K), got shape %s'
                         % (deltas.shape,))
    if boxes.shape[0] != deltas.shape[0]:
        raise ValueError('bbox_transform_inv: %d boxes but %d rows of deltas'
                         % (boxes.shape[0], deltas.shape[0]))
    dtype = _float_type(deltas)
    deltas = deltas.astype(dtype, copy=False)
    if boxes.shape[0] == 0:
        return np.zeros((0, deltas.shape[1]), dtype=dtype)
    boxes = boxes.astype(dtype, copy=False)

    w, h, cx, cy = (v[:, np.newaxis] for v in _widths_centers(boxes))
    pred_cx = deltas[:, 0::4] * w + cx
    pred_cy = deltas[:, 1::4] * h + cy
    pred_w = np.exp(deltas[:, 2::4]) * w
    pred_h = np.exp(deltas[:, 3::4]) * h

    pred = np.empty_like(deltas)
    pred[:, 0::4] = pred_cx - 0.5 * pred_w
    pred[:, 1::4] = pred_cy - 0.5 * pred_h
    pred[:, 2::4] = pred_cx + 0.5 * pred_w
    pred[:, 3::4] = pred_cy + 0.5 * pred_h
    return pred


def clip_boxes(boxes, im_shape):
    """Clips (N, 4K) boxes in place to the image, x in [0, W - 1] and y in [0, H - 1], and returns
    them. im_shape is (H, W, ...), e.g. an image's shape or im_info[:2]."""
    height, width = im_shape[0], im_shape[1]
    for first, limit in ((0, width), (1, height), (2, width), (3, height)):
        np.clip(boxes[:, first::4], 0, limit - 1, out=boxes[:, first::4])
    return boxes


def _widths_centers(boxes):
    widths = boxes[:, 2] - boxes[:, 0] + 1.0
    heights = boxes[:, 3] - boxes[:, 1] + 1.0
    return widths, heights, boxes[:, 0] + 0.5 * widths, boxes[:, 1] + 0.5 * heights


def _float_type(*arrays):
    dtype = np.result_type(*arrays)
    return dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)


def _check_boxes(boxes, name):
    if boxes.ndim != 2 or boxes.shape[1] < 4:
        raise ValueError('%s must be an (N, 4) array of x1, y1, x2, y2; got shape %s'
                         % (name, boxes.shape))


def filter_small_boxes(boxes, min_size):
    """Indices of the boxes whose width and height are both at least min_size pixels."""
    boxes = np.asarray(boxes)
    widths = boxes[:, 2] - boxes[:, 0] + 1
    heights = boxes[:, 3] - boxes[:, 1] + 1
    return np.where((widths >= min_size) & (heights >= min_size))[0]


def unique_boxes(boxes, scale=1.0):
    """Indices of the first occurrence of each distinct box (after scaling and rounding), in
    input order."""
    boxes = np.asarray(boxes)
    if boxes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    keys = np.round(boxes[:, :4] * scale).astype(np.int64)
    _, index = np.unique(keys, axis=0, return_index=True)
    return np.sort(index)


def xywh_to_xyxy(boxes):
    """[x, y, w, h] -> [x1, y1, x2, y2] with inclusive corners."""
    boxes = np.asarray(boxes)
    return np.hstack((boxes[:, 0:2], boxes[:, 0:2] + boxes[:, 2:4] - 1))


def xyxy_to_xywh(boxes):
    """[x1, y1, x2, y2] -> [x, y, w, h] with inclusive corners."""
    boxes = np.asarray(boxes)
    return np.hstack((boxes[:, 0:2], boxes[:, 2:4] - boxes[:, 0:2] + 1))
