"""MAX and AVE pooling kernels over a stack of planes (num*channels, height, width).

Window rules are Caffe's: a window starts at out*stride - pad; MAX looks only at the part inside
the image; AVE divides by the window clipped to in + pad (padding counted) and sums inside the
image. Sums run in the order Caffe's loops run (window rows, then columns; outputs row-major) so
the float32 results are Caffe's. Planes are split across OpenMP threads when the work is large
enough to pay for waking them, and handed out on demand (a thread that starts late on a busy
machine delays nothing).
"""
from cython.parallel cimport parallel, prange
from openmp cimport omp_get_thread_num
from libc.float cimport FLT_MAX
from libc.string cimport memset

cimport numpy as cnp
import numpy as np

from ._parallel cimport threads_above

cdef enum:
    PARALLEL_MIN_WORK = 1 << 16  # window taps below which a call runs on the calling thread
    SHARES = 512                 # AVE backward: outputs whose shares are formed together


cdef inline Py_ssize_t _imin(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a < b else b


cdef inline Py_ssize_t _imax(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a > b else b


# Window, _window, _ave_plane and _ave_plane_backward are declared in pooling_kernels.pxd.


cdef Window _window(Py_ssize_t height, Py_ssize_t width, Py_ssize_t out_h, Py_ssize_t out_w,
                    int kernel_h, int kernel_w, int pad_h, int pad_w, int stride_h,
                    int stride_w) except *:
    if min(kernel_h, kernel_w, stride_h, stride_w) < 1 or min(pad_h, pad_w) < 0:
        raise ValueError('kernel and stride must be positive and pad non-negative')
    cdef Window g
    g.height, g.width, g.out_h, g.out_w = height, width, out_h, out_w
    g.kernel_h, g.kernel_w, g.pad_h, g.pad_w = kernel_h, kernel_w, pad_h, pad_w
    g.stride_h, g.stride_w = stride_h, stride_w
    return g


cdef union _Bits:
    float f
    cnp.int32_t i


cdef inline void _max_one(const float* x, const Window* g, Py_ssize_t hs, Py_ssize_t he,
                          Py_ssize_t ow, float* y, cnp.int32_t* argmax) noexcept nogil:
    cdef Py_ssize_t h, w, best = -1
    cdef Py_ssize_t ws = ow * g.stride_w - g.pad_w
    cdef Py_ssize_t we = _imin(ws + g.kernel_w, g.width)
    cdef float v = -FLT_MAX
    for h in range(hs, he):
        for w in range(_imax(ws, 0), we):
            if x[h * g.width + w] > v:
                v = x[h * g.width + w]
                best = h * g.width + w
    y[0] = v
    argmax[0] = <cnp.int32_t>best


cdef void _max_plane(const float* x, const Window* g, float* y, cnp.int32_t* argmax) noexcept nogil:
    # Each output scans its window row by row, left to right, keeping the first maximum (a
    # strict >), as Caffe's loop does. Outputs whose window is inside the image horizontally go
    # a whole output row at a time, one pass per window tap: the outputs' comparisons are then
    # independent of each other (no chain of dependent compare-and-selects per output, and no
    # branch: which tap wins is random in real feature maps), with the same result per output.
    cdef Py_ssize_t oh, ow, h, j, hs, he, lo, hi, off, col
    cdef _Bits tb, vb
    cdef cnp.int32_t mask, a
    cdef float* row
    cdef cnp.int32_t* arg
    cdef const float* src
    _interior(g, &lo, &hi)
    for oh in range(g.out_h):
        hs = oh * g.stride_h - g.pad_h
        he = _imin(hs + g.kernel_h, g.height)
        hs = _imax(hs, 0)
        row = y + oh * g.out_w
        arg = argmax + oh * g.out_w
        for ow in range(lo):
            _max_one(x, g, hs, he, ow, row + ow, arg + ow)
        for ow in range(hi, g.out_w):
            _max_one(x, g, hs, he, ow, row + ow, arg + ow)
        for ow in range(lo, hi):
            row[ow] = -FLT_MAX
            arg[ow] = -1
        for h in range(hs, he):
            src = x + h * g.width
            if g.kernel_w == 3:
                # The row's three taps in one pass, left to right (ZF's and VGG's 3x3 pools).
                for ow in range(lo, hi):
                    col = ow * g.stride_w - g.pad_w
                    vb.f = row[ow]
                    a = arg[ow]
                    for j in range(3):
                        tb.f = src[col + j]
                        mask = -<cnp.int32_t>(tb.f > vb.f)
                        vb.i = (tb.i & mask) | (vb.i & ~mask)
                        a = (<cnp.int32_t>(h * g.width + col + j) & mask) | (a & ~mask)
                    row[ow] = vb.f
                    arg[ow] = a
                continue
            for j in range(g.kernel_w):
                off = j - g.pad_w
                for ow in range(lo, hi):
                    col = ow * g.stride_w + off
                    tb.f = src[col]
                    vb.f = row[ow]
                    mask = -<cnp.int32_t>(tb.f > vb.f)
                    vb.i = (tb.i & mask) | (vb.i & ~mask)
                    row[ow] = vb.f
                    arg[ow] = (<cnp.int32_t>(h * g.width + col) & mask) | (arg[ow] & ~mask)


cdef void _max_plane_backward(const float* dy, const cnp.int32_t* argmax, const Window* g,
                              float* dx) noexcept nogil:
    cdef Py_ssize_t i, idx
    memset(dx, 0, g.height * g.width * sizeof(float))
    for i in range(g.out_h * g.out_w):
        idx = argmax[i]
        if idx >= 0:
            dx[idx] += dy[i]


cdef inline void _interior(const Window* g, Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    # Output columns whose window lies inside the image horizontally: [lo, hi).
    lo[0] = (g.pad_w + g.stride_w - 1) // g.stride_w
    hi[0] = (g.width + g.pad_w - g.kernel_w) // g.stride_w + 1 if g.width + g.pad_w >= g.kernel_w \
        else 0
    if hi[0] > g.out_w:
        hi[0] = g.out_w
    if hi[0] < lo[0]:
        hi[0] = lo[0]


cdef inline float _ave_one(const float* x, const Window* g, Py_ssize_t hs, Py_ssize_t he,
                           Py_ssize_t ow) noexcept nogil:
    cdef Py_ssize_t h, w
    cdef Py_ssize_t ws = ow * g.stride_w - g.pad_w
    cdef Py_ssize_t we = _imin(ws + g.kernel_w, g.width + g.pad_w)
    cdef float s = 0
    for h in range(_imax(hs, 0), _imin(he, g.height)):
        for w in range(_imax(ws, 0), _imin(we, g.width)):
            s = s + x[h * g.width + w]
    return s / <float>((he - hs) * (we - ws))


cdef void _ave_plane(const float* x, const Window* g, float* y) noexcept nogil:
    # Each output sums its window row by row, left to right, from 0 (Caffe's order). Outputs
    # whose window is inside the image horizontally are summed a whole output row at a time:
    # one pass per window tap over the row (the same additions, in the same order, per output;
    # the compiler vectorizes it), then one division.
    cdef Py_ssize_t oh, ow, h, j, hs, he, lo, hi, off
    cdef float* row
    cdef const float* src
    cdef float size
    _interior(g, &lo, &hi)
    for oh in range(g.out_h):
        hs = oh * g.stride_h - g.pad_h
        he = _imin(hs + g.kernel_h, g.height + g.pad_h)
        row = y + oh * g.out_w
        for ow in range(lo):
            row[ow] = _ave_one(x, g, hs, he, ow)
        for ow in range(hi, g.out_w):
            row[ow] = _ave_one(x, g, hs, he, ow)
        if hi == lo:
            continue
        for ow in range(lo, hi):
            row[ow] = 0
        for h in range(_imax(hs, 0), _imin(he, g.height)):
            src = x + h * g.width
            if g.stride_w == 1 and g.kernel_w == 3:
                # The row's three taps in one pass, still added left to right.
                src = src - g.pad_w
                for ow in range(lo, hi):
                    row[ow] = ((row[ow] + src[ow]) + src[ow + 1]) + src[ow + 2]
                continue
            for j in range(g.kernel_w):
                off = j - g.pad_w
                if g.stride_w == 1:
                    for ow in range(lo, hi):
                        row[ow] = row[ow] + src[ow + off]
                else:
                    for ow in range(lo, hi):
                        row[ow] = row[ow] + src[ow * g.stride_w + off]
        size = <float>((he - hs) * g.kernel_w)
        for ow in range(lo, hi):
            row[ow] = row[ow] / size


cdef inline void _ave_spread_one(float share, const Window* g, Py_ssize_t hs, Py_ssize_t he,
                                 Py_ssize_t ws, float* dx) noexcept nogil:
    cdef Py_ssize_t h, w
    cdef Py_ssize_t we = _imin(ws + g.kernel_w, g.width + g.pad_w)
    for h in range(_imax(hs, 0), _imin(he, g.height)):
        for w in range(_imax(ws, 0), _imin(we, g.width)):
            dx[h * g.width + w] = dx[h * g.width + w] + share


cdef inline void _spread3(const float* share, Py_ssize_t m, float* cells) noexcept nogil:
    # Width-3, stride-1 windows of m consecutive outputs over one image row (cells[0] is the
    # first output's leftmost pixel), in one pass over the pixels: pixel t hears from outputs
    # t-2, t-1, t (those that exist), in that order, as the tap-by-tap passes add them.
    cdef Py_ssize_t t
    cdef float v
    for t in range(min(m + 2, 2)):
        v = cells[t]
        if t >= 2 and t - 2 < m:
            v = v + share[t - 2]
        if t >= 1 and t - 1 < m:
            v = v + share[t - 1]
        if t < m:
            v = v + share[t]
        cells[t] = v
    for t in range(2, m):
        cells[t] = ((cells[t] + share[t - 2]) + share[t - 1]) + share[t]
    for t in range(max(m, 2), m + 2):
        v = cells[t]
        if t - 2 < m:
            v = v + share[t - 2]
        if t - 1 < m:
            v = v + share[t - 1]
        cells[t] = v


cdef void _ave_plane_backward(const float* dy, const Window* g, float* dx) noexcept nogil:
    # Each pixel receives its outputs' shares in Caffe's order (output rows, then output
    # columns, ascending). Within an output row, the outputs left of the interior come first,
    # then the interior ones a window tap at a time (right taps first: a pixel then hears from
    # the interior outputs in ascending order; the compiler vectorizes the pass), then those on
    # the right.
    cdef Py_ssize_t oh, ow, h, j, hs, he, lo, hi, off, c0, c1
    cdef const float* row
    cdef float* dst
    cdef float* cell
    cdef float size
    cdef float share[SHARES]
    memset(dx, 0, g.height * g.width * sizeof(float))
    _interior(g, &lo, &hi)
    for oh in range(g.out_h):
        hs = oh * g.stride_h - g.pad_h
        he = _imin(hs + g.kernel_h, g.height + g.pad_h)
        row = dy + oh * g.out_w
        for ow in range(lo):
            _ave_spread_one(row[ow] / <float>((he - hs) * (_imin(
                ow * g.stride_w - g.pad_w + g.kernel_w, g.width + g.pad_w) -
                (ow * g.stride_w - g.pad_w))), g, hs, he, ow * g.stride_w - g.pad_w, dx)
        size = <float>((he - hs) * g.kernel_w)
        # Caffe divides at every tap; the quotient is the same float each time, so it is
        # formed once per output (SHARES outputs at a time, in ascending order).
        c0 = lo
        while c0 < hi:
            c1 = _imin(c0 + SHARES, hi)
            for ow in range(c0, c1):
                share[ow - c0] = row[ow] / size
            for h in range(_imax(hs, 0), _imin(he, g.height)):
                dst = dx + h * g.width
                if g.stride_w == 1 and g.kernel_w == 3:
                    _spread3(share, c1 - c0, dst + c0 - g.pad_w)
                    continue
                for j in range(g.kernel_w - 1, -1, -1):
                    off = j - g.pad_w
                    if g.stride_w == 1:
                        cell = dst + c0 + off
                        for ow in range(c1 - c0):
                            cell[ow] = cell[ow] + share[ow]
                    else:
                        for ow in range(c0, c1):
                            dst[ow * g.stride_w + off] = dst[ow * g.stride_w + off] + \
                                share[ow - c0]
            c0 = c1
        for ow in range(hi, g.out_w):
            _ave_spread_one(row[ow] / <float>((he - hs) * (_imin(
                ow * g.stride_w - g.pad_w + g.kernel_w, g.width + g.pad_w) -
                (ow * g.stride_w - g.pad_w))), g, hs, he, ow * g.stride_w - g.pad_w, dx)


def _check_planes(a, b):
    if a.shape[0] != b.shape[0]:
        raise ValueError('bottom has %d planes, top %d' % (a.shape[0], b.shape[0]))


cdef int _check_argmax(const cnp.int32_t[:, :, ::1] argmax, Py_ssize_t planes, Py_ssize_t out_h,
                       Py_ssize_t out_w) except -1:
    if argmax.shape[0] != planes or argmax.shape[1] != out_h or argmax.shape[2] != out_w:
        raise ValueError('argmax must have the shape of top')
    return 0


def max_pool_forward(const float[:, :, ::1] bottom, int kernel_h, int kernel_w, int pad_h,
                     int pad_w, int stride_h, int stride_w, float[:, :, ::1] top,
                     cnp.int32_t[:, :, ::1] argmax=None):
    """top = max over each window; argmax = its index h*width + w in the plane (the first in
    scan order on ties; -1 for a window that lies wholly outside the image). argmax None: the
    indices are not kept (a net that never runs this layer's backward), each thread writes them
    into one scratch plane of its own."""
    _check_planes(bottom, top)
    cdef bint kept = argmax is not None
    if kept:
        _check_argmax(argmax, top.shape[0], top.shape[1], top.shape[2])
    cdef Window g = _window(bottom.shape[1], bottom.shape[2], top.shape[1], top.shape[2],
                            kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w)
    cdef Py_ssize_t p, planes = bottom.shape[0]
    cdef Py_ssize_t in_size = g.height * g.width, out_size = g.out_h * g.out_w
    if planes == 0 or out_size == 0:
        return
    cdef int threads = threads_above(planes * out_size * kernel_h * kernel_w, PARALLEL_MIN_WORK)
    cdef cnp.int32_t[:, :, ::1] scratch = argmax if kept else \
        np.empty((threads, g.out_h, g.out_w), np.int32)
    cdef const float* x = &bottom[0, 0, 0] if in_size else NULL
    cdef float* y = &top[0, 0, 0]
    cdef cnp.int32_t* idx = &scratch[0, 0, 0]
    cdef cnp.int32_t* mine
    with nogil, parallel(num_threads=threads):
        for p in prange(planes, schedule='dynamic'):
            mine = idx + (p if kept else omp_get_thread_num()) * out_size
            _max_plane(x + p * in_size, &g, y + p * out_size, mine)


def max_pool_backward(const float[:, :, ::1] top_diff, const cnp.int32_t[:, :, ::1] argmax,
                      float[:, :, ::1] bottom_diff):
    """Overwrites bottom_diff with the top diffs routed to (and summed at) their argmax."""
    _check_planes(bottom_diff, top_diff)
    _check_argmax(argmax, top_diff.shape[0], top_diff.shape[1], top_diff.shape[2])
    cdef Window g = _window(bottom_diff.shape[1], bottom_diff.shape[2], top_diff.shape[1],
                            top_diff.shape[2], 1, 1, 0, 0, 1, 1)
    cdef Py_ssize_t p, planes = bottom_diff.shape[0]
    cdef Py_ssize_t in_size = g.height * g.width, out_size = g.out_h * g.out_w
    if planes == 0 or in_size == 0:
        return
    cdef const float* dy = &top_diff[0, 0, 0] if out_size else NULL
    cdef const cnp.int32_t* idx = &argmax[0, 0, 0] if out_size else NULL
    cdef float* dx = &bottom_diff[0, 0, 0]
    cdef int threads = threads_above(planes * (in_size + out_size), PARALLEL_MIN_WORK)
    for p in prange(planes, nogil=True, schedule='dynamic', num_threads=threads):
        _max_plane_backward(dy + p * out_size, idx + p * out_size, &g, dx + p * in_size)


def ave_pool_forward(const float[:, :, ::1] bottom, int kernel_h, int kernel_w, int pad_h,
                     int pad_w, int stride_h, int stride_w, float[:, :, ::1] top):
    """top = sum over the window inside the image / window size clipped to in + pad."""
    _check_planes(bottom, top)
    cdef Window g = _window(bottom.shape[1], bottom.shape[2], top.shape[1], top.shape[2],
                            kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w)
    cdef Py_ssize_t p, planes = bottom.shape[0]
    cdef Py_ssize_t in_size = g.height * g.width, out_size = g.out_h * g.out_w
    if planes == 0 or out_size == 0:
        return
    cdef const float* x = &bottom[0, 0, 0] if in_size else NULL
    cdef float* y = &top[0, 0, 0]
    cdef int threads = threads_above(planes * out_size * kernel_h * kernel_w, PARALLEL_MIN_WORK)
    for p in prange(planes, nogil=True, schedule='dynamic', num_threads=threads):
        _ave_plane(x + p * in_size, &g, y + p * out_size)


def ave_pool_backward(const float[:, :, ::1] top_diff, int kernel_h, int kernel_w, int pad_h,
                      int pad_w, int stride_h, int stride_w, float[:, :, ::1] bottom_diff):
    """Overwrites bottom_diff with each top diff / its pool size spread over its window."""
    _check_planes(bottom_diff, top_diff)
    cdef Window g = _window(bottom_diff.shape[1], bottom_diff.shape[2], top_diff.shape[1],
                            top_diff.shape[2], kernel_h, kernel_w, pad_h, pad_w, stride_h,
                            stride_w)
    cdef Py_ssize_t p, planes = bottom_diff.shape[0]
    cdef Py_ssize_t in_size = g.height * g.width, out_size = g.out_h * g.out_w
    if planes == 0 or in_size == 0:
        return
    cdef const float* dy = &top_diff[0, 0, 0] if out_size else NULL
    cdef float* dx = &bottom_diff[0, 0, 0]
    cdef int threads = threads_above(planes * (in_size + out_size * kernel_h * kernel_w),
                                     PARALLEL_MIN_WORK)
    for p in prange(planes, nogil=True, schedule='dynamic', num_threads=threads):
        _ave_plane_backward(dy + p * out_size, &g, dx + p * in_size)


# STOCHASTIC pooling (Zeiler & Fergus, "Stochastic Pooling for Regularization of Deep
# Convolutional Neural Networks"), as Caffe's GPU kernels compute it (Caffe has no CPU version):
# windows start at out * stride, without padding, clipped to the image; sums run in float32 in
# scan order (window rows, then columns).

cdef struct _Span:
    Py_ssize_t hs, he, ws, we


cdef inline _Span _sto_window(const Window* g, Py_ssize_t o) noexcept nogil:
    # Output o's window rows [hs, he) and columns [ws, we).
    cdef _Span s
    s.hs = (o // g.out_w) * g.stride_h
    s.he = _imin(s.hs + g.kernel_h, g.height)
    s.ws = (o % g.out_w) * g.stride_w
    s.we = _imin(s.ws + g.kernel_w, g.width)
    return s


cdef void _sto_train_plane(const float* x, const Window* g, const float* u, float* y,
                           cnp.int32_t* index) noexcept nogil:
    cdef Py_ssize_t h, w, o, pick
    cdef float total, threshold
    cdef _Span s
    for o in range(g.out_h * g.out_w):
        s = _sto_window(g, o)
        total = 0
        for h in range(s.hs, s.he):
            for w in range(s.ws, s.we):
                total = total + x[h * g.width + w]
        # Caffe's StoPoolForwardTrain: the first position whose running sum reaches u * sum.
        # Where none does (only a negative sum allows it) Caffe leaves the output unwritten;
        # here the window's last position is taken, where the running sum is the whole sum.
        threshold = u[o] * total
        pick = (s.he - 1) * g.width + s.we - 1
        total = 0
        for h in range(s.hs, s.he):
            for w in range(s.ws, s.we):
                total = total + x[h * g.width + w]
                if total >= threshold:
                    pick = h * g.width + w
                    break
            else:
                continue
            break
        y[o] = x[pick]
        index[o] = <cnp.int32_t>pick


cdef void _sto_test_plane(const float* x, const Window* g, float* y,
                          float* window_sum) noexcept nogil:
    cdef Py_ssize_t h, w, o
    cdef float total, squares, v
    cdef _Span s
    for o in range(g.out_h * g.out_w):
        s = _sto_window(g, o)
        total = 0
        squares = 0
        for h in range(s.hs, s.he):
            for w in range(s.ws, s.we):
                v = x[h * g.width + w]
                total = total + v
                squares = squares + v * v
        # Caffe's StoPoolForwardTest: the activations weighted by themselves, sum(x^2) / sum(x),
        # and 0 where the sum is not positive.
        y[o] = squares / total if total > 0 else 0
        window_sum[o] = total


cdef void _sto_test_plane_backward(const float* dy, const float* x, const float* y,
                                   const float* window_sum, const Window* g,
                                   float* dx) noexcept nogil:
    cdef Py_ssize_t h, w, o
    cdef float total, d, t
    cdef _Span s
    memset(dx, 0, g.height * g.width * sizeof(float))
    for o in range(g.out_h * g.out_w):
        total = window_sum[o]
        if not total > 0:
            continue
        s = _sto_window(g, o)
        d = dy[o]
        for h in range(s.hs, s.he):
            for w in range(s.ws, s.we):
                t = 2 * x[h * g.width + w] - y[o]
                dx[h * g.width + w] += d * (t / total)


def stochastic_pool_forward_train(const float[:, :, ::1] bottom, int kernel_h, int kernel_w,
                                  int stride_h, int stride_w, const float[:, :, ::1] uniform,
                                  float[:, :, ::1] top, cnp.int32_t[:, :, ::1] index):
    """top = one value of each window, drawn with probability proportional to its value (by
    the uniform draws in [0, 1), one per output); index = its position h*width + w."""
    _check_planes(bottom, top)
    _check_argmax(index, top.shape[0], top.shape[1], top.shape[2])
    _check_argmax_like(uniform, top)
    cdef Window g = _window(bottom.shape[1], bottom.shape[2], top.shape[1], top.shape[2],
                            kernel_h, kernel_w, 0, 0, stride_h, stride_w)
    cdef Py_ssize_t p, planes = bottom.shape[0]
    cdef Py_ssize_t in_size = g.height * g.width, out_size = g.out_h * g.out_w
    if planes == 0 or out_size == 0:
        return
    cdef const float* x = &bottom[0, 0, 0]
    cdef const float* u = &uniform[0, 0, 0]
    cdef float* y = &top[0, 0, 0]
    cdef cnp.int32_t* idx = &index[0, 0, 0]
    cdef int threads = threads_above(planes * out_size * kernel_h * kernel_w, PARALLEL_MIN_WORK)
    for p in prange(planes, nogil=True, schedule='dynamic', num_threads=threads):
        _sto_train_plane(x + p * in_size, &g, u + p * out_size, y + p * out_size,
                         idx + p * out_size)


def stochastic_pool_forward_test(const float[:, :, ::1] bottom, int kernel_h, int kernel_w,
                                 int stride_h, int stride_w, float[:, :, ::1] top,
                                 float[:, :, ::1] window_sum):
    """top = sum(x^2) / sum(x) over each window (0 where sum(x) <= 0); window_sum = sum(x)."""
    _check_planes(bottom, top)
    _check_argmax_like(window_sum, top)
    cdef Window g = _window(bottom.shape[1], bottom.shape[2], top.shape[1], top.shape[2],
                            kernel_h, kernel_w, 0, 0, stride_h, stride_w)
    cdef Py_ssize_t p, planes = bottom.shape[0]
    cdef Py_ssize_t in_size = g.height * g.width, out_size = g.out_h * g.out_w
    if planes == 0 or out_size == 0:
        return
    cdef const float* x = &bottom[0, 0, 0]
    cdef float* y = &top[0, 0, 0]
    cdef float* s = &window_sum[0, 0, 0]
    cdef int threads = threads_above(planes * out_size * kernel_h * kernel_w, PARALLEL_MIN_WORK)
    for p in prange(planes, nogil=True, schedule='dynamic', num_threads=threads):
        _sto_test_plane(x + p * in_size, &g, y + p * out_size, s + p * out_size)


def stochastic_pool_backward_test(const float[:, :, ::1] top_diff,
                                  const float[:, :, ::1] bottom, const float[:, :, ::1] top,
                                  const float[:, :, ::1] window_sum, int kernel_h, int kernel_w,
                                  int stride_h, int stride_w, float[:, :, ::1] bottom_diff):
    """Overwrites bottom_diff with the gradient of the test-time weighted average:
    dy * (2x - y) / sum(x) into each window with a positive sum, added in output order."""
    _check_planes(bottom_diff, top_diff)
    _check_planes(bottom, top)
    _check_argmax_like(window_sum, top_diff)
    _check_argmax_like(top, top_diff)
    cdef Window g = _window(bottom_diff.shape[1], bottom_diff.shape[2], top_diff.shape[1],
                            top_diff.shape[2], kernel_h, kernel_w, 0, 0, stride_h, stride_w)
    cdef Py_ssize_t p, planes = bottom_diff.shape[0]
    cdef Py_ssize_t in_size = g.height * g.width, out_size = g.out_h * g.out_w
    if planes == 0 or in_size == 0:
        return
    if out_size == 0:
        bottom_diff[...] = 0
        return
    cdef const float* dy = &top_diff[0, 0, 0]
    cdef const float* x = &bottom[0, 0, 0]
    cdef const float* y = &top[0, 0, 0]
    cdef const float* s = &window_sum[0, 0, 0]
    cdef float* dx = &bottom_diff[0, 0, 0]
    cdef int threads = threads_above(planes * out_size * kernel_h * kernel_w, PARALLEL_MIN_WORK)
    for p in prange(planes, nogil=True, schedule='dynamic', num_threads=threads):
        _sto_test_plane_backward(dy + p * out_size, x + p * in_size, y + p * out_size,
                                 s + p * out_size, &g, dx + p * in_size)


def _check_argmax_like(a, top):
    if tuple(a.shape[:3]) != tuple(top.shape[:3]):
        raise ValueError('per-output arrays must have the shape of top')
