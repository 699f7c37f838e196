"""BatchNorm's CPU kernels on a blob seen as (num, channels, spatial).

Each element is read and written once per pass, with no blob-sized temporaries, and every
element-wise step rounds to float32 in the order Caffe's BatchNormLayer computes it (subtract the
mean, then divide by sqrt(var + eps)). Per-channel sums accumulate in double, so they are the
exactly rounded sums that Caffe's float32 BLAS sums approximate. Outputs may alias inputs (the
layer works in place). Channels are split across OpenMP threads when the work is large enough.
"""
from cython.parallel cimport prange

from ._parallel cimport threads_for


def _check(name, a, Py_ssize_t num, Py_ssize_t channels, Py_ssize_t spatial):
    if tuple(a.shape[:3]) != (num, channels, spatial):
        raise ValueError('%s has shape %s; expected (%d, %d, %d)'
                         % (name, tuple(a.shape[:3]), num, channels, spatial))


def channel_mean_var(const float[:, :, ::1] x, float[::1] mean, float[::1] var):
    """mean[c] and the biased variance var[c] of x over its num and spatial axes; the variance
    is the mean of float32 (x - mean[c])^2, as Caffe forms it."""
    cdef Py_ssize_t num = x.shape[0], channels = x.shape[1], spatial = x.shape[2]
    cdef Py_ssize_t c, n, s
    cdef double total, m = <double>num * spatial
    cdef float mu, d
    cdef const float* row
    if mean.shape[0] != channels or var.shape[0] != channels:
        raise ValueError('mean and var need %d entries' % channels)
    if m == 0:
        raise ValueError('batch statistics of an empty blob')
    for c in prange(channels, nogil=True, schedule='static',
                    num_threads=threads_for(num * channels * spatial)):
        total = 0
        for n in range(num):
            row = &x[n, c, 0]
            for s in range(spatial):
                total = total + row[s]
        mu = <float>(total / m)
        total = 0
        for n in range(num):
            row = &x[n, c, 0]
            for s in range(spatial):
                d = row[s] - mu
                total = total + d * d
        mean[c] = mu
        var[c] = <float>(total / m)


def normalize(const float[:, :, ::1] x, const float[::1] mean, const float[::1] std,
              float[:, :, ::1] y, float[:, :, ::1] kept=None):
    """y = (x - mean[c]) / std[c]; kept (optional) receives a copy of y."""
    cdef Py_ssize_t num = x.shape[0], channels = x.shape[1], spatial = x.shape[2]
    cdef Py_ssize_t p, s, c
    cdef float mu, sd, v
    cdef const float* src
    cdef float* dst
    cdef float* keep
    cdef bint keeping = kept is not None
    _check('y', y, num, channels, spatial)
    if keeping:
        _check('kept', kept, num, channels, spatial)
    if mean.shape[0] != channels or std.shape[0] != channels:
        raise ValueError('mean and std need %d entries' % channels)
    if num * channels * spatial == 0:
        return
    for p in prange(num * channels, nogil=True, schedule='static',
                    num_threads=threads_for(num * channels * spatial)):
        c = p % channels
        mu = mean[c]
        sd = std[c]
        src = &x[0, 0, 0] + p * spatial
        dst = &y[0, 0, 0] + p * spatial
        for s in range(spatial):
            v = src[s] - mu
            dst[s] = v / sd
        if keeping:
            keep = &kept[0, 0, 0] + p * spatial
            for s in range(spatial):
                keep[s] = dst[s]


def backward_batch_stats(const float[:, :, ::1] dy, const float[:, :, ::1] y,
                         const float[::1] std, float neg_inv_m, float[:, :, ::1] dx):
    """The gradient through batch statistics, y = (x - mean(x)) / sqrt(var(x) + eps):
    dx = (dy - mean(dy) - mean(dy * y) * y) / std, in Caffe's float32 steps:
    t = y * sum(dy*y); t += sum(dy); t *= -1/m; t += dy; dx = t / std (sums over num and
    spatial). dx may be dy (in place)."""
    cdef Py_ssize_t num = dy.shape[0], channels = dy.shape[1], spatial = dy.shape[2]
    cdef Py_ssize_t c, n, s
    cdef double sum_dy_y, sum_dy
    cdef float a, b, sd, t
    cdef const float* g
    cdef const float* yr
    cdef float* out
    _check('y', y, num, channels, spatial)
    _check('dx', dx, num, channels, spatial)
    if std.shape[0] != channels:
        raise ValueError('std needs %d entries' % channels)
    for c in prange(channels, nogil=True, schedule='static',
                    num_threads=threads_for(num * channels * spatial)):
        sum_dy_y = 0
        sum_dy = 0
        for n in range(num):
            g = &dy[n, c, 0]
            yr = &y[n, c, 0]
            for s in range(spatial):
                sum_dy_y = sum_dy_y + g[s] * yr[s]
                sum_dy = sum_dy + g[s]
        a = <float>sum_dy_y
        b = <float>sum_dy
        sd = std[c]
        for n in range(num):
            g = &dy[n, c, 0]
            yr = &y[n, c, 0]
            out = &dx[n, c, 0]
            for s in range(spatial):
                t = yr[s] * a
                t = t + b
                t = t * neg_inv_m
                t = t + g[s]
                out[s] = t / sd
