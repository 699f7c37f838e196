"""What the RPN's Python layers read from their prototxt and bottoms: the anchors of a
param_str (its YAML is read by utils.param_str) and the ground truth and image sizes of a batch.
"""
import numpy as np

from caffe import CaffeError
from core.anchors import RATIOS, SCALES, generate_anchors
from utils.param_str import read_params

# The anchor keys of an RPN layer's param_str; feat_stride is required.
ANCHOR_KEYS = {'scales': list(SCALES), 'ratios': list(RATIOS)}


def read_anchor_params(text, known=None, where='param_str'):
    """Reads feat_stride (required), scales and ratios (default: the paper's, core.anchors) and
    the other `known` keys (a dict of defaults) from a param_str. Returns (anchors (A, 4) at the
    origin, feat_stride, all params); ValueError naming `where` for a bad value."""
    params = read_params(text, dict(ANCHOR_KEYS, **(known or {})), ('feat_stride',), where)
    feat_stride = params['feat_stride']
    if not isinstance(feat_stride, int) or isinstance(feat_stride, bool) or feat_stride <= 0:
        raise ValueError('%s: feat_stride should be a positive integer, got %r'
                         % (where, feat_stride))
    for key in ('scales', 'ratios'):
        values = params[key]
        if not isinstance(values, (list, tuple)) or not values or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0
                for v in values):
            raise ValueError('%s: %s should be a non-empty list of numbers > 0, got %r'
                             % (where, key, values))
    anchors = generate_anchors(ratios=np.asarray(params['ratios'], dtype=np.float64),
                               scales=np.asarray(params['scales'], dtype=np.float64))
    return np.asarray(anchors, dtype=np.float64), feat_stride, params


def gt_boxes_from_blob(blob):
    """The gt_boxes bottom as a (G, 5) or (G, 6) float64 array (rows [x1, y1, x2, y2, class]
    and, for a batch of several images, the image's index); an image without objects may give
    an empty blob of any shape."""
    data = np.asarray(blob.data, dtype=np.float64)
    if data.size == 0:
        return np.zeros((0, 5))
    if data.ndim != 2 or data.shape[1] not in (4, 5, 6):
        raise CaffeError('gt_boxes should be (G, 5) rows [x1, y1, x2, y2, class] (or (G, 6) '
                         'with the image index last); got shape %s' % (data.shape,))
    return data


def gt_boxes_of_image(gt_boxes, n):
    """Image n's rows [x1, y1, x2, y2, class] of a gt_boxes array from gt_boxes_from_blob: the
    rows whose index column is n, or, without an index column, all rows (for image 0)."""
    if gt_boxes.shape[1] == 6:
        return gt_boxes[gt_boxes[:, 5] == n, :5]
    return gt_boxes if n == 0 else gt_boxes[:0]


def im_info_rows(blob, num_images, where):
    """im_info as (num_images, 3) rows [height, width, scale], one per image of the batch."""
    if blob.data.size != 3 * num_images:
        raise CaffeError('%s: im_info should hold [height, width, scale] for each of the %d '
                         'images; got shape %s' % (where, num_images, blob.data.shape))
    return np.asarray(blob.data).reshape(num_images, 3)


def zero_bottom_diffs(propagate_down, bottom):
    """Gives the bottoms that ask for a gradient a zero one: the detection Python layers compute
    targets or fixed proposals, through which the paper passes no gradient (Sec. 3.2)."""
    for wanted, blob in zip(propagate_down, bottom):
        if wanted:
            blob.diff[...] = 0
