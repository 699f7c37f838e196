"""Pairwise IoU of axis-aligned boxes (built as utils.cython_bbox, the release's module name)."""
import numpy as np

cimport cython


def bbox_overlaps(boxes, query_boxes):
    """IoU between every box and every query box, widths and heights counted as x2 - x1 + 1.

    boxes: (N, 4+) and query_boxes: (K, 4+), x1, y1, x2, y2 in the first four columns (gt_boxes
    with a class column can be passed as they are). Any numeric type; computed in float64.
    Returns (N, K) float64. Pairs that do not intersect, including any pair with a degenerate
    (zero or negative width or height) box, have IoU 0.
    """
    cdef double[:, ::1] b = _as_boxes(boxes, 'boxes')
    cdef double[:, ::1] q = _as_boxes(query_boxes, 'query_boxes')
    cdef Py_ssize_t n = b.shape[0], k_count = q.shape[0], i, k
    overlaps = np.zeros((n, k_count), dtype=np.float64)
    cdef double[:, ::1] out = overlaps
    cdef double iw, ih, q_area, union
    for k in range(k_count):
        q_area = (q[k, 2] - q[k, 0] + 1) * (q[k, 3] - q[k, 1] + 1)
        for i in range(n):
            iw = min(b[i, 2], q[k, 2]) - max(b[i, 0], q[k, 0]) + 1
            if iw <= 0:
                continue
            ih = min(b[i, 3], q[k, 3]) - max(b[i, 1], q[k, 1]) + 1
            if ih <= 0:
                continue
            # Positive iw and ih imply both boxes are at least iw x ih, so union >= iw * ih > 0.
            union = (b[i, 2] - b[i, 0] + 1) * (b[i, 3] - b[i, 1] + 1) + q_area - iw * ih
            out[i, k] = iw * ih / union
    return overlaps


def _as_boxes(boxes, name):
    array = np.asarray(boxes)
    if array.ndim != 2 or array.shape[1] < 4:
        raise ValueError('bbox_overlaps: %s must be (N, 4) x1, y1, x2, y2; got shape %s'
                         % (name, array.shape))
    return np.ascontiguousarray(array[:, :4], dtype=np.float64)
