# distutils: extra_compile_args = -fopenmp
# distutils: extra_link_args = -fopenmp
# RoI max pooling loops for the ROIPooling layer (lib/caffe/layers/roi_pooling.py).
#
# All coordinate arithmetic is float32, as in the Fast R-CNN fork's kernels, so bin edges land on
# the same pixels: a float product rounds differently from a double one near integers.
from libc.float cimport FLT_MAX
from libc.math cimport ceilf, floorf, roundf
from cython.parallel cimport prange
from openmp cimport omp_get_max_threads

cdef enum:
    PARALLEL_MIN_WORK = 1 << 18  # elements read below which a call runs on one thread


cdef inline int _threads(Py_ssize_t work) noexcept nogil:
    return 1 if work < PARALLEL_MIN_WORK else omp_get_max_threads()


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


cdef void _forward_roi(const float[:, :, :, ::1] data, const float[:, ::1] rois, int n,
                       float scale, float[:, :, :, ::1] top,
                       int[:, :, :, ::1] argmax) noexcept nogil:
    cdef int C = top.shape[1], PH = top.shape[2], PW = top.shape[3]
    cdef int H = data.shape[2], W = data.shape[3]
    cdef int b, c, ph, pw, h, w, hs, he, ws, we, best
    cdef int sh, sw, eh, ew
    cdef float bin_h, bin_w, v, m
    cdef const float* plane
    b = <int>rois[n, 0]
    roi_box(rois, n, scale, &sh, &sw, &eh, &ew, &bin_h, &bin_w, PH, PW)
    # Channel outside the bins: each pass then stays inside one feature plane.
    for c in range(C):
        plane = &data[b, c, 0, 0]
        for ph in range(PH):
            hs = clip(<int>floorf(<float>ph * bin_h) + sh, 0, H)
            he = clip(<int>ceilf(<float>(ph + 1) * bin_h) + sh, 0, H)
            for pw in range(PW):
                ws = clip(<int>floorf(<float>pw * bin_w) + sw, 0, W)
                we = clip(<int>ceilf(<float>(pw + 1) * bin_w) + sw, 0, W)
                if he <= hs or we <= ws:
                    top[n, c, ph, pw] = 0
                    argmax[n, c, ph, pw] = -1
                    continue
                # Strict > from -FLT_MAX: the first maximum in row-major order wins,
                # and a bin of only -inf/NaN keeps -FLT_MAX with argmax -1.
                m = -FLT_MAX
                best = -1
                for h in range(hs, he):
                    for w in range(ws, we):
                        v = plane[h * W + w]
                        if v > m:
                            m = v
                            best = h * W + w
                top[n, c, ph, pw] = m
                argmax[n, c, ph, pw] = best


def roi_pool_forward(const float[:, :, :, ::1] data, const float[:, ::1] rois, float scale,
                     float[:, :, :, ::1] top, int[:, :, :, ::1] argmax):
    """Fills top (R, C, pooled_h, pooled_w) and argmax (h * W + w in the RoI's image, -1 for a
    bin that pooled nothing). Batch indices must already be checked. RoIs are shared out to
    the OpenMP threads (each writes only its own RoI's outputs)."""
    cdef int R = top.shape[0], n
    cdef Py_ssize_t work = <Py_ssize_t>R * top.shape[1] * data.shape[2] * data.shape[3]
    if R == 0:
        return
    for n in prange(R, nogil=True, schedule='dynamic', num_threads=_threads(work)):
        _forward_roi(data, rois, n, scale, top, argmax)


cdef void _backward_channel(const float[:, :, :, ::1] top_diff, const int[:, :, :, ::1] argmax,
                            const float[:, ::1] rois, int c, float scale,
                            float[:, :, :, ::1] bottom_diff) noexcept nogil:
    cdef int R = top_diff.shape[0], PH = top_diff.shape[2], PW = top_diff.shape[3]
    cdef int W = bottom_diff.shape[3]
    cdef int n, b, ph, pw, a, h, w, lo, hi
    cdef int sh, sw, eh, ew
    cdef float bin_h, bin_w
    for n in range(R):
        b = <int>rois[n, 0]
        roi_box(rois, n, scale, &sh, &sw, &eh, &ew, &bin_h, &bin_w, PH, PW)
        for ph in range(PH):
            for pw in range(PW):
                a = argmax[n, c, ph, pw]
                if a < 0:
                    continue
                h = a // W
                w = a % W
                if w < sw or w > ew or h < sh or h > eh:
                    continue
                lo = clip(<int>floorf(<float>(h - sh) / bin_h), 0, PH)
                hi = clip(<int>ceilf(<float>(h - sh + 1) / bin_h), 0, PH)
                if ph < lo or ph >= hi:
                    continue
                lo = clip(<int>floorf(<float>(w - sw) / bin_w), 0, PW)
                hi = clip(<int>ceilf(<float>(w - sw + 1) / bin_w), 0, PW)
                if pw < lo or pw >= hi:
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
    cdef int C = top_diff.shape[1], c
    cdef Py_ssize_t work = <Py_ssize_t>top_diff.shape[0] * C * top_diff.shape[2] * \
        top_diff.shape[3] * 8
    if top_diff.shape[0] == 0:
        return
    for c in prange(C, nogil=True, schedule='dynamic', num_threads=_threads(work)):
        _backward_channel(top_diff, argmax, rois, c, scale, bottom_diff)
