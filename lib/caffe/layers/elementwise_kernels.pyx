"""Element-wise CPU kernels shared by several layers (the host counterparts of
gpu/kernels/elementwise.cu, with the same names and float32 expressions).

Each kernel makes one pass over flat float32 arrays and allocates nothing; an output may be one of
the inputs (in-place layers). Arithmetic is float32 with every product and sum rounded on its own
(lib/setup.py builds with -ffp-contract=off: no fused multiply-adds; constants are written
<float>, since Cython makes a bare 1 or 1.0 a double), so results equal the numpy expressions the layers
used before, and Caffe's. Large arrays are cut into blocks shared out to the OpenMP threads on
demand (dynamic schedule): a thread that is late to start (a busy machine) costs only the blocks
it would have taken, not a fixed half of the work.
"""
from cython.parallel cimport prange

from ._parallel cimport threads_above

cdef enum:
    BLOCK = 1 << 15          # floats per unit of work (128 KB)
    PARALLEL_MIN = 1 << 18   # elements below which the calling thread does everything


cdef inline Py_ssize_t _blocks(Py_ssize_t n) noexcept nogil:
    return (n + BLOCK - 1) // BLOCK


cdef inline Py_ssize_t _block_len(Py_ssize_t b, Py_ssize_t n) noexcept nogil:
    return BLOCK if (b + 1) * BLOCK <= n else n - b * BLOCK


cdef int _same_size(Py_ssize_t a, Py_ssize_t b, str what) except -1:
    if a != b:
        raise ValueError('%s: arrays of %d and %d elements' % (what, a, b))
    return 0


# ReLU ------------------------------------------------------------------------------------------

cdef void _relu_forward(const float* x, float* y, Py_ssize_t n, float slope) noexcept nogil:
    # Caffe: max(x, 0) + slope * min(x, 0), std::max/min's comparisons (NaN stays NaN).
    cdef Py_ssize_t i
    cdef float v, above, below
    for i in range(n):
        v = x[i]
        above = <float>0 if v < 0 else v
        below = <float>0 if v > 0 else v
        y[i] = above + slope * below


def relu_forward(const float[::1] x, float[::1] y, float slope):
    """y = max(x, 0) + slope * min(x, 0); y may be x."""
    cdef Py_ssize_t n = x.shape[0], b
    _same_size(n, y.shape[0], 'relu_forward')
    if n == 0:
        return
    cdef const float* xp = &x[0]
    cdef float* yp = &y[0]
    for b in prange(_blocks(n), nogil=True, schedule='dynamic',
                    num_threads=threads_above(n, PARALLEL_MIN)):
        _relu_forward(xp + b * BLOCK, yp + b * BLOCK, _block_len(b, n), slope)


cdef void _relu_backward(const float* x, const float* dy, float* dx, Py_ssize_t n,
                         float slope) noexcept nogil:
    # gain = (x > 0) + slope * (x <= 0), its two products formed once: the loop is then two
    # selects between constants, which the compiler turns into masks (no branch for random
    # signs to mispredict) and vectorizes. The floats are the same as the formula's.
    cdef Py_ssize_t i
    cdef float v, gain
    cdef float slope_on = slope * <float>1, slope_off = slope * <float>0
    for i in range(n):
        v = x[i]
        gain = (<float>1 if v > 0 else <float>0) + (slope_on if v <= 0 else slope_off)
        dx[i] = dy[i] * gain


def relu_backward(const float[::1] x, const float[::1] dy, float[::1] dx, float slope):
    """dx = dy * ((x > 0) + slope * (x <= 0)); dx may be dy."""
    cdef Py_ssize_t n = x.shape[0], b
    _same_size(n, dy.shape[0], 'relu_backward')
    _same_size(n, dx.shape[0], 'relu_backward')
    if n == 0:
        return
    cdef const float* xp = &x[0]
    cdef const float* dyp = &dy[0]
    cdef float* dxp = &dx[0]
    for b in prange(_blocks(n), nogil=True, schedule='dynamic',
                    num_threads=threads_above(n, PARALLEL_MIN)):
        _relu_backward(xp + b * BLOCK, dyp + b * BLOCK, dxp + b * BLOCK, _block_len(b, n), slope)


# Dropout ---------------------------------------------------------------------------------------

cdef void _dropout(const float* x, const unsigned int* keep, float scale, float* y,
                   Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        y[i] = (x[i] * <float>keep[i]) * scale


def dropout(const float[::1] x, const unsigned int[::1] keep, float scale, float[::1] y):
    """y = (x * keep) * scale (keep is 0 or 1 per element); y may be x."""
    cdef Py_ssize_t n = x.shape[0], b
    _same_size(n, keep.shape[0], 'dropout')
    _same_size(n, y.shape[0], 'dropout')
    if n == 0:
        return
    cdef const float* xp = &x[0]
    cdef const unsigned int* kp = &keep[0]
    cdef float* yp = &y[0]
    for b in prange(_blocks(n), nogil=True, schedule='dynamic',
                    num_threads=threads_above(n, PARALLEL_MIN)):
        _dropout(xp + b * BLOCK, kp + b * BLOCK, scale, yp + b * BLOCK, _block_len(b, n))


# Sums and products -----------------------------------------------------------------------------

cdef void _add_scaled(float alpha, const float* x, float* y, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        y[i] = y[i] + alpha * x[i]


def add_scaled(float alpha, const float[::1] x, float[::1] y):
    """y = y + alpha * x (the product rounded before the sum)."""
    cdef Py_ssize_t n = x.shape[0], b
    _same_size(n, y.shape[0], 'add_scaled')
    if n == 0:
        return
    cdef const float* xp = &x[0]
    cdef float* yp = &y[0]
    for b in prange(_blocks(n), nogil=True, schedule='dynamic',
                    num_threads=threads_above(n, PARALLEL_MIN)):
        _add_scaled(alpha, xp + b * BLOCK, yp + b * BLOCK, _block_len(b, n))


cdef void _prod_backward(const float* top, const float* x, const float* dy, float* dx,
                         Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        dx[i] = (top[i] / x[i]) * dy[i]


def eltwise_prod_backward(const float[::1] top, const float[::1] x, const float[::1] dy,
                          float[::1] dx):
    """dx = (top / x) * dy."""
    cdef Py_ssize_t n = x.shape[0], b
    _same_size(n, top.shape[0], 'eltwise_prod_backward')
    _same_size(n, dy.shape[0], 'eltwise_prod_backward')
    _same_size(n, dx.shape[0], 'eltwise_prod_backward')
    if n == 0:
        return
    cdef const float* tp = &top[0]
    cdef const float* xp = &x[0]
    cdef const float* dyp = &dy[0]
    cdef float* dxp = &dx[0]
    for b in prange(_blocks(n), nogil=True, schedule='dynamic',
                    num_threads=threads_above(n, PARALLEL_MIN)):
        _prod_backward(tp + b * BLOCK, xp + b * BLOCK, dyp + b * BLOCK, dxp + b * BLOCK,
                       _block_len(b, n))


# Eltwise MAX -----------------------------------------------------------------------------------

cdef void _max_first(const float* a, const float* b, float* y, int* idx,
                     Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if a[i] > b[i]:
            y[i] = a[i]
            idx[i] = 0
        else:
            y[i] = b[i]
            idx[i] = 1


def eltwise_max_first(const float[::1] a, const float[::1] b, float[::1] y, int[::1] idx):
    """y = max(a, b), idx = 0 where a wins (strictly greater), else 1 (Caffe's tie rule)."""
    cdef Py_ssize_t n = a.shape[0], k
    _same_size(n, b.shape[0], 'eltwise_max_first')
    _same_size(n, y.shape[0], 'eltwise_max_first')
    _same_size(n, idx.shape[0], 'eltwise_max_first')
    if n == 0:
        return
    cdef const float* ap = &a[0]
    cdef const float* bp = &b[0]
    cdef float* yp = &y[0]
    cdef int* ip = &idx[0]
    for k in prange(_blocks(n), nogil=True, schedule='dynamic',
                    num_threads=threads_above(n, PARALLEL_MIN)):
        _max_first(ap + k * BLOCK, bp + k * BLOCK, yp + k * BLOCK, ip + k * BLOCK,
                   _block_len(k, n))


cdef void _max_next(const float* x, int which, float* y, int* idx, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if x[i] > y[i]:
            y[i] = x[i]
            idx[i] = which


def eltwise_max_next(const float[::1] x, int which, float[::1] y, int[::1] idx):
    """Where x is strictly greater than y: y = x and idx = which."""
    cdef Py_ssize_t n = x.shape[0], k
    _same_size(n, y.shape[0], 'eltwise_max_next')
    _same_size(n, idx.shape[0], 'eltwise_max_next')
    if n == 0:
        return
    cdef const float* xp = &x[0]
    cdef float* yp = &y[0]
    cdef int* ip = &idx[0]
    for k in prange(_blocks(n), nogil=True, schedule='dynamic',
                    num_threads=threads_above(n, PARALLEL_MIN)):
        _max_next(xp + k * BLOCK, which, yp + k * BLOCK, ip + k * BLOCK, _block_len(k, n))


cdef void _max_backward(const float* dy, const int* idx, int which, float* dx,
                        Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        dx[i] = dy[i] if idx[i] == which else <float>0


def eltwise_max_backward(const float[::1] dy, const int[::1] idx, int which, float[::1] dx):
    """dx = dy where bottom `which` won the max, else 0."""
    cdef Py_ssize_t n = dy.shape[0], k
    _same_size(n, idx.shape[0], 'eltwise_max_backward')
    _same_size(n, dx.shape[0], 'eltwise_max_backward')
    if n == 0:
        return
    cdef const float* dyp = &dy[0]
    cdef const int* ip = &idx[0]
    cdef float* dxp = &dx[0]
    for k in prange(_blocks(n), nogil=True, schedule='dynamic',
                    num_threads=threads_above(n, PARALLEL_MIN)):
        _max_backward(dyp + k * BLOCK, ip + k * BLOCK, which, dxp + k * BLOCK, _block_len(k, n))
