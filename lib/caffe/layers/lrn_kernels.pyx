"""LRN loops for the LRN layer (lib/caffe/layers/lrn.py), over float32 arrays.

ACROSS_CHANNELS, over (num, channels, height, width): the window over channels slides as Caffe's
CPU code slides it (add the entering channel, subtract the leaving one), one float32 rounding per
operation in Caffe's order (no fused multiply-adds), so the numbers are those of Caffe's loops.
Each unit of work is one image's run of PIXELS pixels through all channels: it stays in cache,
and units are shared out to the OpenMP threads on demand.
"""
from cython.parallel cimport prange
from openmp cimport omp_get_max_threads

cdef enum:
    PIXELS = 512             # pixels per unit of work
    PARALLEL_MIN = 1 << 17   # elements below which the calling thread does everything


cdef inline int _threads(Py_ssize_t n) noexcept nogil:
    return 1 if n < PARALLEL_MIN else omp_get_max_threads()


cdef int _check_shape(const float[:, :, :, ::1] a, const float[:, :, :, ::1] x,
                      str what) except -1:
    cdef int i
    for i in range(4):
        if a.shape[i] != x.shape[i]:
            raise ValueError('%s: arrays of shapes %s and %s' % (
                what, [a.shape[j] for j in range(4)], [x.shape[j] for j in range(4)]))
    return 0


cdef void _scale_unit(const float* x, Py_ssize_t channels, Py_ssize_t plane, Py_ssize_t width,
                      Py_ssize_t pre_pad, float k, float alpha_over_size,
                      float* scale) noexcept nogil:
    cdef Py_ssize_t c, p
    cdef const float* xc
    cdef float* sc
    cdef float* prev
    for p in range(width):
        scale[p] = k
    for c in range(min(pre_pad + 1, channels)):
        xc = x + c * plane
        for p in range(width):
            scale[p] = scale[p] + alpha_over_size * (xc[p] * xc[p])
    for c in range(1, channels):
        sc = scale + c * plane
        prev = sc - plane
        for p in range(width):
            sc[p] = prev[p]
        if c + pre_pad < channels:
            xc = x + (c + pre_pad) * plane
            for p in range(width):
                sc[p] = sc[p] + alpha_over_size * (xc[p] * xc[p])
        if c - pre_pad - 1 >= 0:
            xc = x + (c - pre_pad - 1) * plane
            for p in range(width):
                sc[p] = sc[p] - alpha_over_size * (xc[p] * xc[p])


def across_scale(const float[:, :, :, ::1] x, int size, float alpha, float k,
                 float[:, :, :, ::1] scale):
    """scale = k + alpha/size * (sum of x^2 over the `size` channels centred on each channel,
    zero beyond the ends)."""
    cdef Py_ssize_t num = x.shape[0], channels = x.shape[1]
    cdef Py_ssize_t plane = x.shape[2] * x.shape[3]
    _check_shape(scale, x, 'across_scale')
    if num == 0 or channels == 0 or plane == 0:
        return
    cdef float alpha_over_size = alpha / <float>size
    cdef Py_ssize_t pre_pad = (size - 1) // 2
    cdef Py_ssize_t runs = (plane + PIXELS - 1) // PIXELS
    cdef Py_ssize_t u, n, p0
    cdef const float* xp = &x[0, 0, 0, 0]
    cdef float* sp = &scale[0, 0, 0, 0]
    for u in prange(num * runs, nogil=True, schedule='dynamic',
                    num_threads=_threads(num * channels * plane)):
        n = u // runs
        p0 = (u % runs) * PIXELS
        _scale_unit(xp + n * channels * plane + p0, channels, plane,
                    min(<Py_ssize_t>PIXELS, plane - p0), pre_pad, k, alpha_over_size,
                    sp + n * channels * plane + p0)


cdef inline void _ratio(const float* top_diff, const float* top_data, const float* scale,
                        Py_ssize_t width, float* out, bint add) noexcept nogil:
    # out +/-= (top_diff * top_data) / scale
    cdef Py_ssize_t p
    cdef float r
    for p in range(width):
        r = (top_diff[p] * top_data[p]) / scale[p]
        out[p] = out[p] + r if add else out[p] - r


cdef void _backward_unit(const float* top_diff, const float* top_data, const float* x,
                         const float* scale, Py_ssize_t channels, Py_ssize_t plane,
                         Py_ssize_t width, Py_ssize_t pre_pad, float ratio_coeff,
                         float* bottom_diff) noexcept nogil:
    cdef float accum[PIXELS]
    cdef Py_ssize_t c, p, off
    cdef const float* xc
    cdef float* bd
    for p in range(width):
        accum[p] = 0
    for c in range(min(pre_pad, channels)):
        off = c * plane
        _ratio(top_diff + off, top_data + off, scale + off, width, accum, True)
    for c in range(channels):
        if c + pre_pad < channels:
            off = (c + pre_pad) * plane
            _ratio(top_diff + off, top_data + off, scale + off, width, accum, True)
        xc = x + c * plane
        bd = bottom_diff + c * plane
        for p in range(width):
            bd[p] = bd[p] - ratio_coeff * (xc[p] * accum[p])
        if c - pre_pad >= 0:
            off = (c - pre_pad) * plane
            _ratio(top_diff + off, top_data + off, scale + off, width, accum, False)


def across_backward(const float[:, :, :, ::1] top_diff, const float[:, :, :, ::1] top_data,
                    const float[:, :, :, ::1] x, const float[:, :, :, ::1] scale, int size,
                    float ratio_coeff, float[:, :, :, ::1] bottom_diff):
    """bottom_diff (holding top_diff * scale^-beta) -= ratio_coeff * x * (sum over the window
    around each channel of top_diff * top_data / scale)."""
    cdef Py_ssize_t num = x.shape[0], channels = x.shape[1]
    cdef Py_ssize_t plane = x.shape[2] * x.shape[3]
    _check_shape(top_diff, x, 'across_backward')
    _check_shape(top_data, x, 'across_backward')
    _check_shape(scale, x, 'across_backward')
    _check_shape(bottom_diff, x, 'across_backward')
    if num == 0 or channels == 0 or plane == 0:
        return
    cdef Py_ssize_t pre_pad = (size - 1) // 2
    cdef Py_ssize_t runs = (plane + PIXELS - 1) // PIXELS
    cdef Py_ssize_t u, n, p0, off
    cdef const float* tdp = &top_diff[0, 0, 0, 0]
    cdef const float* tp = &top_data[0, 0, 0, 0]
    cdef const float* xp = &x[0, 0, 0, 0]
    cdef const float* sp = &scale[0, 0, 0, 0]
    cdef float* bp = &bottom_diff[0, 0, 0, 0]
    for u in prange(num * runs, nogil=True, schedule='dynamic',
                    num_threads=_threads(num * channels * plane)):
        n = u // runs
        p0 = (u % runs) * PIXELS
        off = n * channels * plane + p0
        _backward_unit(tdp + off, tp + off, xp + off, sp + off, channels, plane,
                       min(<Py_ssize_t>PIXELS, plane - p0), pre_pad, ratio_coeff, bp + off)


# WITHIN_CHANNEL backward: the element-wise steps of Caffe's chain (power layer, product, square),
# fused; the same float32 expressions as lrn.cu's kernels, each operation rounded on its own
# (constants are cast to float: Cython writes a bare 1 or 2 there as a double).
cdef enum:
    BLOCK = 1 << 15          # elements per unit of work


cdef void _grad_pooled_block(const float* x, const float* dy, const float* pooled,
                             const float* power, float alpha, float diff_scale, int mode,
                             bint times_grad, float* out, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef float g, scale_alpha = diff_scale * alpha
    for i in range(n):
        if mode == 0:
            g = diff_scale
        elif mode == 1:
            g = scale_alpha * pooled[i] + diff_scale
        else:
            g = (power[i] / (pooled[i] * alpha + <float>1)) * diff_scale
        if times_grad:
            g = g * (x[i] * dy[i])
        out[i] = g


def within_grad_pooled(const float[::1] x, const float[::1] dy, const float[::1] pooled,
                       const float[::1] power, float alpha, float diff_scale, int mode,
                       bint times_grad, float[::1] out):
    """The gradient reaching the pooled values: the power layer's derivative (mode 0: the
    constant diff_scale; 1: exponent 2, (diff_scale * alpha) * pooled + diff_scale; 2:
    (power / (pooled * alpha + 1)) * diff_scale), times x * dy when times_grad."""
    cdef Py_ssize_t n = x.shape[0], b
    if dy.shape[0] != n or pooled.shape[0] != n or power.shape[0] != n or out.shape[0] != n:
        raise ValueError('within_grad_pooled: arrays of different sizes')
    if n == 0:
        return
    cdef const float* xp = &x[0]
    cdef const float* dyp = &dy[0]
    cdef const float* pp = &pooled[0]
    cdef const float* wp = &power[0]
    cdef float* op = &out[0]
    for b in prange((n + BLOCK - 1) // BLOCK, nogil=True, schedule='dynamic',
                    num_threads=_threads(n)):
        _grad_pooled_block(xp + b * BLOCK, dyp + b * BLOCK, pp + b * BLOCK, wp + b * BLOCK,
                           alpha, diff_scale, mode, times_grad, op + b * BLOCK,
                           min(<Py_ssize_t>BLOCK, n - b * BLOCK))


cdef void _within_backward_block(const float* x, const float* dy, const float* power,
                                 const float* grad_square, float* dx,
                                 Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        dx[i] = power[i] * dy[i] + grad_square[i] * (<float>2 * x[i])


def within_backward(const float[::1] x, const float[::1] dy, const float[::1] power,
                    const float[::1] grad_square, float[::1] dx):
    """dx = power * dy + grad_square * (2 * x): the product layer's share of the gradient plus
    the square layer's. dx may be grad_square."""
    cdef Py_ssize_t n = x.shape[0], b
    if dy.shape[0] != n or power.shape[0] != n or grad_square.shape[0] != n or dx.shape[0] != n:
        raise ValueError('within_backward: arrays of different sizes')
    if n == 0:
        return
    cdef const float* xp = &x[0]
    cdef const float* dyp = &dy[0]
    cdef const float* wp = &power[0]
    cdef const float* gp = &grad_square[0]
    cdef float* dxp = &dx[0]
    for b in prange((n + BLOCK - 1) // BLOCK, nogil=True, schedule='dynamic',
                    num_threads=_threads(n)):
        _within_backward_block(xp + b * BLOCK, dyp + b * BLOCK, wp + b * BLOCK, gp + b * BLOCK,
                               dxp + b * BLOCK, min(<Py_ssize_t>BLOCK, n - b * BLOCK))
