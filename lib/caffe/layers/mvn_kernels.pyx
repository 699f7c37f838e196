"""MVN's kernels over rows (caffe.layers.mvn): one row per normalized group of values.

The element-wise steps are Caffe's float32 operations in Caffe's order (MVNLayer::Forward_cpu /
Backward_cpu); the row sums run in double (Caffe's are float BLAS calls, whose order BLAS picks).
Rows are split across OpenMP threads (each owns its rows), so results do not depend on the
thread count; each row is read twice and written once, with no temporaries.
"""
from cython.parallel cimport prange
from libc.math cimport sqrtf

from ._parallel cimport threads_above

cdef enum:
    PARALLEL_MIN_WORK = 1 << 16  # values below which a call runs on one thread


def forward(const float[:, ::1] x, float eps, bint normalize_variance, float[:, ::1] y,
            float[::1] scale):
    """y = x - mean(x) per row, then, with normalize_variance, / (sqrt(var) + eps), var the mean
    of the float32 squares of x - mean. scale[r] receives sqrt(var) + eps (1 without
    normalize_variance). y may be x (in place)."""
    cdef Py_ssize_t rows = x.shape[0], dim = x.shape[1], r, j
    if y.shape[0] != rows or y.shape[1] != dim or scale.shape[0] != rows:
        raise ValueError('x, y and scale do not agree')
    if rows == 0 or dim == 0:
        return
    cdef double total
    cdef float mean, d, s
    cdef int threads = threads_above(rows * dim, PARALLEL_MIN_WORK)
    for r in prange(rows, nogil=True, schedule='static', num_threads=threads):
        total = 0
        for j in range(dim):
            total = total + x[r, j]
        mean = <float>(total / dim)
        if normalize_variance:
            total = 0
            for j in range(dim):
                d = x[r, j] - mean
                total = total + d * d
            s = sqrtf(<float>(total / dim)) + eps
            for j in range(dim):
                y[r, j] = (x[r, j] - mean) / s
            scale[r] = s
        else:
            for j in range(dim):
                y[r, j] = x[r, j] - mean
            scale[r] = 1


def backward(const float[:, ::1] y, const float[:, ::1] dy, const float[::1] scale,
             bint normalize_variance, float[:, ::1] dx):
    """Caffe's MVN gradient: with normalize_variance,
    dx = (dy - (y * sum(y * dy) + sum(dy)) / dim) / scale, else dx = dy - mean(dy). dx may be
    dy (in place)."""
    cdef Py_ssize_t rows = y.shape[0], dim = y.shape[1], r, j
    if dy.shape[0] != rows or dy.shape[1] != dim or dx.shape[0] != rows or \
            dx.shape[1] != dim or scale.shape[0] != rows:
        raise ValueError('y, dy, dx and scale do not agree')
    if rows == 0 or dim == 0:
        return
    cdef double sum_ydy, sum_dy
    cdef float a, b, t, minus_inv_dim = <float>(-1.0 / dim), mean
    cdef int threads = threads_above(rows * dim, PARALLEL_MIN_WORK)
    for r in prange(rows, nogil=True, schedule='static', num_threads=threads):
        sum_ydy = 0
        sum_dy = 0
        for j in range(dim):
            sum_ydy = sum_ydy + y[r, j] * dy[r, j]
            sum_dy = sum_dy + dy[r, j]
        if normalize_variance:
            a = <float>sum_ydy
            b = <float>sum_dy
            for j in range(dim):
                t = y[r, j] * a + b
                t = minus_inv_dim * t
                dx[r, j] = (dy[r, j] + t) / scale[r]
        else:
            mean = <float>(sum_dy / dim)
            for j in range(dim):
                dx[r, j] = dy[r, j] - mean
