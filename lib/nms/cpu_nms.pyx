"""Greedy non-maximum suppression on the CPU."""
import numpy as np

cimport cython

ctypedef fused real:
    float
    double


def cpu_nms(dets, double thresh):
    """Greedy NMS over dets (N, 5+): x1, y1, x2, y2, score.

    Visits boxes by descending score (ties: lower index first) and drops every later box whose
    IoU with a kept box is > thresh; areas count x2 - x1 + 1. float32 dets are computed in
    float32 against float32(thresh), as the GPU kernel does; anything else in float64.
    Returns the kept indices as a list of ints, highest score first.
    """
    dets = np.asarray(dets)
    if dets.ndim != 2 or dets.shape[1] < 5:
        raise ValueError('cpu_nms: dets must be (N, 5) x1, y1, x2, y2, score; got shape %s'
                         % (dets.shape,))
    if dets.shape[0] == 0:
        return []
    dtype = np.float32 if dets.dtype == np.float32 else np.float64
    boxes = np.ascontiguousarray(dets[:, :5], dtype=dtype)
    order = np.argsort(-boxes[:, 4], kind='stable').astype(np.intp)
    areas = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    if dtype == np.float32:
        return _greedy[float](boxes, areas, order, <float>thresh)
    return _greedy[double](boxes, areas, order, thresh)


cdef list _greedy(real[:, ::1] boxes, real[::1] areas, Py_ssize_t[::1] order, real thresh):
    cdef Py_ssize_t n = boxes.shape[0], oi, oj, i, j
    cdef real x1, y1, x2, y2, w, h, inter, overlap
    cdef unsigned char[::1] suppressed = np.zeros(n, dtype=np.uint8)
    cdef list keep = []
    for oi in range(n):
        i = order[oi]
        if suppressed[i]:
            continue
        keep.append(i)
        for oj in range(oi + 1, n):
            j = order[oj]
            if suppressed[j]:
                continue
            x1 = max(boxes[i, 0], boxes[j, 0])
            y1 = max(boxes[i, 1], boxes[j, 1])
            x2 = min(boxes[i, 2], boxes[j, 2])
            y2 = min(boxes[i, 3], boxes[j, 3])
            w = max(<real>0, x2 - x1 + 1)
            h = max(<real>0, y2 - y1 + 1)
            inter = w * h
            # A zero union (degenerate boxes) gives NaN, which never suppresses.
            overlap = inter / (areas[i] + areas[j] - inter)
            if overlap > thresh:
                suppressed[j] = 1
    return keep
