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
    # The boxes are copied in score order into one array per coordinate, so that the inner loop
    # runs over contiguous memory without branches (the compiler vectorizes it): every later box
    # is tested against each kept one, and marking an already suppressed box again changes
    # nothing, so the kept set is the classic loop's.
    cdef Py_ssize_t n = boxes.shape[0], oi, oj, i
    cdef real[:, ::1] s = np.empty((5, n), dtype=np.float32 if real is float else np.float64)
    cdef unsigned char[::1] suppressed = np.zeros(n, dtype=np.uint8)
    cdef list keep = []
    for oi in range(n):
        i = order[oi]
        s[0, oi] = boxes[i, 0]
        s[1, oi] = boxes[i, 1]
        s[2, oi] = boxes[i, 2]
        s[3, oi] = boxes[i, 3]
        s[4, oi] = areas[i]
    for oi in range(n):
        if suppressed[oi]:
            continue
        keep.append(order[oi])
        with nogil:
            _suppress(&s[0, 0], &s[1, 0], &s[2, 0], &s[3, 0], &s[4, 0], oi, n, thresh,
                      &suppressed[0])
    return keep


cdef void _suppress(const real* x1s, const real* y1s, const real* x2s, const real* y2s,
                    const real* areas, Py_ssize_t i, Py_ssize_t n, real thresh,
                    unsigned char* suppressed) noexcept nogil:
    cdef Py_ssize_t j
    cdef real x1, y1, x2, y2, w, h, inter, overlap
    cdef real ix1 = x1s[i], iy1 = y1s[i], ix2 = x2s[i], iy2 = y2s[i], area = areas[i]
    for j in range(i + 1, n):
        # max(a, b) and min(a, b) as Cython builds them: a unless b is greater (smaller).
        x1 = x1s[j] if x1s[j] > ix1 else ix1
        y1 = y1s[j] if y1s[j] > iy1 else iy1
        x2 = x2s[j] if x2s[j] < ix2 else ix2
        y2 = y2s[j] if y2s[j] < iy2 else iy2
        w = x2 - x1 + 1
        h = y2 - y1 + 1
        w = w if w > 0 else 0
        h = h if h > 0 else 0
        inter = w * h
        # A zero union (degenerate boxes) gives NaN, which never suppresses.
        overlap = inter / (area + areas[j] - inter)
        suppressed[j] |= overlap > thresh
