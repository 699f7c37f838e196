# RoI max pooling loops for the ROIPooling layer (lib/caffe/layers/roi_pooling.py).
#
# All coordinate arithmetic is float32, as in the Fast R-CNN fork's kernels, so bin edges land on
# the same pixels: a float product rounds differently from a double one near integers.
import numpy as np

from libc.float cimport FLT_MAX
from libc.math cimport ceilf, floorf, roundf
from cython.parallel cimport parallel, prange
from openmp cimport omp_get_thread_num

from ._parallel cimport threads_above

cdef enum:
    PARALLEL_MIN_WORK = 1 << 18  # elements read below which a call runs on one thread


cdef inline int clip(int v, int lo, int hi) nogil:
    return lo if v < lo else (hi if v > hi else v)


cdef inline void roi_box(const float[:, ::1] rois, int n, float scale, int* sh, int* sw,
                         int* eh, int* ew, float* bin_h, float* bin_w, int pooled_h,
                         int pooled_w) noexcept nogil:
    # Corners are rounded half away from zero (C's round); a box whose end lies before its
    # start still pools one pixel.
    sw[0] = <int>roundf(rois[n, 1] * scale)
    sh[0] = <int>roundf(rois[n, 2] * scale)
    ew[0] = <int>roundf(rois[n, 3] * scale)
    eh[0] = <int>roundf(rois[n, 4] * scale)
    cdef int roi_h = eh[0] - sh[0] + 1
    cdef int roi_w = ew[0] - sw[0] + 1
    if roi_h < 1:
        roi_h = 1
    if roi_w < 1:
        roi_w = 1
    bin_h[0] = <float>roi_h / <float>pooled_h
    bin_w[0] = <float>roi_w / <float>pooled_w


cdef void _bins(const float[:, ::1] rois, float scale, int H, int W, int[:, ::1] hs,
                int[:, ::1] he, int[:, ::1] ws, int[:, ::1] we) noexcept nogil:
    # Each RoI's bin edges, clipped to the feature map: computed once per RoI, not per channel.
    cdef int R = hs.shape[0], PH = hs.shape[1], PW = ws.shape[1], n, ph, pw
    cdef int sh, sw, eh, ew
    cdef float bin_h, bin_w
    for n in range(R):
        roi_box(rois, n, scale, &sh, &sw, &eh, &ew, &bin_h, &bin_w, PH, PW)
        for ph in range(PH):
            hs[n, ph] = clip(<int>floorf(<float>ph * bin_h) + sh, 0, H)
            he[n, ph] = clip(<int>ceilf(<float>(ph + 1) * bin_h) + sh, 0, H)
        for pw in range(PW):
            ws[n, pw] = clip(<int>floorf(<float>pw * bin_w) + sw, 0, W)
            we[n, pw] = clip(<int>ceilf(<float>(pw + 1) * bin_w) + sw, 0, W)


cdef void _forward_roi(const float[:, :, :, ::1] data, const float[:, ::1] rois, int n,
                       const int[:, ::1] hs, const int[:, ::1] he, const int[:, ::1] ws,
                       const int[:, ::1] we, float[:, :, :, ::1] top,
                       int* argmax) noexcept nogil:
    # argmax: this RoI's (C, PH, PW) indices, row-major.
    cdef int C = top.shape[1], PH = top.shape[2], PW = top.shape[3]
    cdef int W = data.shape[3]
    cdef int b = <int>rois[n, 0], c, ph, pw, h, w, best
    cdef float v, m
    cdef const float* plane
    # Channel outside the bins: each pass then stays inside one feature plane.
    for c in range(C):
        plane = &data[b, c, 0, 0]
        for ph in range(PH):
            for pw in range(PW):
                if he[n, ph] <= hs[n, ph] or we[n, pw] <= ws[n, pw]:
                    top[n, c, ph, pw] = 0
                    argmax[(c * PH + ph) * PW + pw] = -1
                    continue
                # Strict > from -FLT_MAX: the first maximum in row-major order wins,
                # and a bin of only -inf/NaN keeps -FLT_MAX with argmax -1.
                m = -FLT_MAX
                best = -1
                for h in range(hs[n, ph], he[n, ph]):
                    for w in range(ws[n, pw], we[n, pw]):
                        v = plane[h * W + w]
                        if v > m:
                            m = v
                            best = h * W + w
                top[n, c, ph, pw] = m
                argmax[(c * PH + ph) * PW + pw] = best


def roi_pool_forward(const float[:, :, :, ::1] data, const float[:, ::1] rois, float scale,
                     float[:, :, :, ::1] top, int[:, :, :, ::1] argmax=None):
    """Fills top (R, C, pooled_h, pooled_w) and argmax (h * W + w in the RoI's image, -1 for a
    bin that pooled nothing). Batch indices must already be checked. RoIs are shared out to
    the OpenMP threads (each writes only its own RoI's outputs). argmax None: the indices are not
    kept (a net that runs no backward through the layer); each thread writes one RoI's worth
    into scratch of its own."""
    cdef int R = top.shape[0], C = top.shape[1], PH = top.shape[2], PW = top.shape[3], n
    cdef Py_ssize_t work = <Py_ssize_t>R * top.shape[1] * data.shape[2] * data.shape[3]
    cdef bint kept = argmax is not None
    if kept and (argmax.shape[0] != R or argmax.shape[1] != C or argmax.shape[2] != PH or
                 argmax.shape[3] != PW):
        raise ValueError('argmax must have the shape of top')
    if R == 0:
        return
    cdef int threads = threads_above(work, PARALLEL_MIN_WORK)
    cdef int[:, :, :, ::1] indices = argmax if kept else \
        np.empty((threads, C, PH, PW), np.int32)
    cdef int[:, ::1] hs = np.empty((R, PH), np.int32), he = np.empty((R, PH), np.int32)
    cdef int[:, ::1] ws = np.empty((R, PW), np.int32), we = np.empty((R, PW), np.int32)
    cdef int* idx = &indices[0, 0, 0, 0]
    cdef Py_ssize_t per_roi = <Py_ssize_t>C * PH * PW
    _bins(rois, scale, data.shape[2], data.shape[3], hs, he, ws, we)
    with nogil, parallel(num_threads=threads):
        for n in prange(R, schedule='dynamic'):
            _forward_roi(data, rois, n, hs, he, ws, we, top,
                         idx + (n if kept else omp_get_thread_num()) * per_roi)


cdef void _back_bins(const float[:, ::1] rois, float scale, int PH, int PW, int[:, ::1] lo_h,
                     int[:, ::1] hi_h, int[:, ::1] lo_w, int[:, ::1] hi_w) noexcept nogil:
    # For each RoI and each feature row (column): the bins the fork's backward lets that row
    # (column) feed, [lo, hi); empty outside the RoI's unclipped rounded box.
    cdef int R = lo_h.shape[0], H = lo_h.shape[1], W = lo_w.shape[1], n, h, w
    cdef int sh, sw, eh, ew
    cdef float bin_h, bin_w
    for n in range(R):
        roi_box(rois, n, scale, &sh, &sw, &eh, &ew, &bin_h, &bin_w, PH, PW)
        for h in range(H):
            if h < sh or h > eh:
                lo_h[n, h] = 1
                hi_h[n, h] = 0
            else:
                lo_h[n, h] = clip(<int>floorf(<float>(h - sh) / bin_h), 0, PH)
                hi_h[n, h] = clip(<int>ceilf(<float>(h - sh + 1) / bin_h), 0, PH)
        for w in range(W):
            if w < sw or w > ew:
                lo_w[n, w] = 1
                hi_w[n, w] = 0
            else:
                lo_w[n, w] = clip(<int>floorf(<float>(w - sw) / bin_w), 0, PW)
                hi_w[n, w] = clip(<int>ceilf(<float>(w - sw + 1) / bin_w), 0, PW)


cdef void _backward_channel(const float[:, :, :, ::1] top_diff, const int[:, :, :, ::1] argmax,
                            const float[:, ::1] rois, int c, const int[:, ::1] lo_h,
                            const int[:, ::1] hi_h, const int[:, ::1] lo_w,
                            const int[:, ::1] hi_w, float[:, :, :, ::1] bottom_diff) noexcept nogil:
    cdef int R = top_diff.shape[0], PH = top_diff.shape[2], PW = top_diff.shape[3]
    cdef int W = bottom_diff.shape[3]
    cdef int n, b, ph, pw, a, h, w
    for n in range(R):
        b = <int>rois[n, 0]
        for ph in range(PH):
            for pw in range(PW):
                a = argmax[n, c, ph, pw]
                if a < 0:
                    continue
                h = a // W
                w = a % W
                if ph < lo_h[n, h] or ph >= hi_h[n, h] or pw < lo_w[n, w] or pw >= hi_w[n, w]:
                    continue
                bottom_diff[b, c, h, w] += top_diff[n, c, ph, pw]


def roi_pool_backward(const float[:, :, :, ::1] top_diff, const int[:, :, :, ::1] argmax,
                      const float[:, ::1] rois, float scale, float[:, :, :, ::1] bottom_diff):
    """Adds each bin's top diff to the pixel it took its max from; bottom_diff must be zeroed.

    The fork's backward kernel gathers per pixel: it counts a bin only if the pixel lies inside
    the RoI's unclipped rounded box and the bin is among those the pixel's offset maps back to.
    Both tests are repeated here, so a malformed RoI (end before start) passes no gradient and
    float rounding at bin edges drops exactly what the fork drops; the additions reach each
    pixel in the fork's order (RoI, then bin row, then bin column). Channels are shared out to
    the OpenMP threads: each owns its channel's feature planes."""
    cdef int R = top_diff.shape[0], C = top_diff.shape[1], c
    cdef Py_ssize_t work = <Py_ssize_t>R * C * top_diff.shape[2] * top_diff.shape[3] * 8
    if R == 0:
        return
    cdef int H = bottom_diff.shape[2], W = bottom_diff.shape[3]
    cdef int[:, ::1] lo_h = np.empty((R, H), np.int32), hi_h = np.empty((R, H), np.int32)
    cdef int[:, ::1] lo_w = np.empty((R, W), np.int32), hi_w = np.empty((R, W), np.int32)
    _back_bins(rois, scale, top_diff.shape[2], top_diff.shape[3], lo_h, hi_h, lo_w, hi_w)
    for c in prange(C, nogil=True, schedule='dynamic',
                    num_threads=threads_above(work, PARALLEL_MIN_WORK)):
        _backward_channel(top_diff, argmax, rois, c, lo_h, hi_h, lo_w, hi_w, bottom_diff)
