"""Greedy non-maximum suppression in numpy: the readable reference for cpu_nms and gpu_nms."""
import numpy as np


def py_cpu_nms(dets, thresh):
    """Same contract as nms.cpu_nms.cpu_nms: dets (N, 5+) x1, y1, x2, y2, score; visits boxes by
    descending score (ties: lower index first), drops boxes with IoU > thresh against a kept one
    (areas count x2 - x1 + 1); float32 dets compare in float32. Returns kept indices, a list."""
    dets = np.asarray(dets)
    if dets.ndim != 2 or dets.shape[1] < 5:
        raise ValueError('py_cpu_nms: dets must be (N, 5) x1, y1, x2, y2, score; got shape %s'
                         % (dets.shape,))
    dtype = np.float32 if dets.dtype == np.float32 else np.float64
    dets = dets.astype(dtype, copy=False)
    thresh = dtype(thresh)
    x1, y1, x2, y2, scores = (dets[:, c] for c in range(5))
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind='stable')

    keep = []
    with np.errstate(invalid='ignore', divide='ignore'):
        while order.size > 0:
            i = order[0]
            keep.append(int(i))
            rest = order[1:]
            w = np.maximum(0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
            h = np.maximum(0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
            inter = w * h
            overlap = inter / (areas[i] + areas[rest] - inter)
            # NaN (zero union) compares False, so such boxes survive, as in cpu_nms.
            order = rest[~(overlap > thresh)]
    return keep
