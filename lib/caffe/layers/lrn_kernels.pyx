"""LRN loops for the LRN layer (lib/caffe/layers/lrn.py), over float32 arrays.

ACROSS_CHANNELS, over (num, channels, height, width): the window over channels slides as Caffe's
CPU code slides it (add the entering channel, subtract the leaving one), one float32 rounding per
operation in Caffe's order (no fused multiply-adds), so the numbers are those of Caffe's loops.
Each unit of work is one image's run of PIXELS pixels through all channels: it stays in cache,
and units are shared out to the OpenMP threads on demand. The power scale^-beta is taken in the
same pass, while the unit is in cache.

WITHIN_CHANNEL, over planes (num*channels, height, width): Caffe's chain of layers (x^2, AVE
pooling, power, product) forward, and its backward, one plane at a time (pooling_kernels'
plane loops), planes shared out on demand.

Powers are numpy's own float32 power loop (np.power's), called from the threads: the layer used
np.power before and its numbers stay the same. (On machines with AVX-512, numpy's float32 power
is SVML's, which differs from the C library's powf in the last bit for about one value in ten.)
"""
from cython.parallel cimport parallel, prange
from openmp cimport omp_get_thread_num

cimport numpy as cnp
import numpy as np

from ._parallel cimport threads_above
from .pooling_kernels cimport Window, _ave_plane, _ave_plane_backward, _window

cnp.import_array()
cnp.import_ufunc()

cdef enum:
    PIXELS = 512             # pixels per unit of work
    PARALLEL_MIN = 1 << 17   # elements below which the calling thread does everything
    BLOCK = 1 << 12          # elements per element-wise step of a WITHIN_CHANNEL plane


cdef int _check_shape(const Py_ssize_t* a, const Py_ssize_t* x, int ndim,
                      str what) except -1:
    # a and x: the shapes of two memoryviews of ndim dimensions.
    cdef int i
    for i in range(ndim):
        if a[i] != x[i]:
            raise ValueError('%s: arrays of shapes %s and %s' % (
                what, [a[j] for j in range(ndim)], [x[j] for j in range(ndim)]))
    return 0


# numpy's float32 power loop ---------------------------------------------------------------------
# A ufunc's loops are listed in its `types`/`functions` tables (numpy's C API); numpy's type
# resolution takes the first loop whose types fit, so for float32 arrays np.power runs the first
# 'ff->f' entry. tests/caffe/test_lrn_layer.py compares the results with np.power bit for bit.
ctypedef void (*_binary_loop)(char**, cnp.npy_intp*, cnp.npy_intp*, void*) noexcept nogil

cdef _binary_loop _pow_loop = NULL
cdef void* _pow_loop_data = NULL


cdef int _find_pow_loop() except -1:
    # The loop's index comes from the public list of signatures (np.power.types, in the loops'
    # order), not from the struct's char* types: numpy 2.5's numpy.pxd no longer declares that
    # field, and Cython then reads the Python list in its place. functions and data are declared
    # by every numpy 2 .pxd.
    global _pow_loop, _pow_loop_data
    cdef cnp.ufunc power = np.power
    signatures = list(np.power.types)
    if 'ff->f' not in signatures or len(signatures) != power.ntypes:
        raise ImportError('numpy %s: np.power has no float32 loop among its %d loops %s'
                          % (np.__version__, power.ntypes, signatures))
    cdef int i = signatures.index('ff->f')
    _pow_loop = <_binary_loop><void*>power.functions[i]
    _pow_loop_data = power.data[i]
    return 0


_find_pow_loop()


cdef inline void _pow(const float* x, float exponent, float* out, Py_ssize_t n) noexcept nogil:
    # out = x ** exponent, as np.power(x, np.float32(exponent), out=out); out may be x.
    cdef char* args[3]
    cdef cnp.npy_intp dims[1]
    cdef cnp.npy_intp steps[3]
    args[0] = <char*>x
    args[1] = <char*>&exponent
    args[2] = <char*>out
    dims[0] = n
    steps[0] = sizeof(float)
    steps[1] = 0
    steps[2] = sizeof(float)
    _pow_loop(args, dims, steps, _pow_loop_data)


def power(const float[::1] x, float exponent, float[::1] out):
    """out = x ** exponent through the kernels' power (numpy's float32 loop); out may be x."""
    if out.shape[0] != x.shape[0]:
        raise ValueError('power: arrays of %d and %d elements' % (x.shape[0], out.shape[0]))
    if x.shape[0]:
        _pow(&x[0], exponent, &out[0], x.shape[0])


# ACROSS_CHANNELS --------------------------------------------------------------------------------
cdef void _across_forward_unit(const float* x, Py_ssize_t channels, Py_ssize_t plane,
                               Py_ssize_t width, Py_ssize_t pre_pad, float k,
                               float alpha_over_size, float neg_beta, float* scale,
                               Py_ssize_t scale_step, float* top) noexcept nogil:
    # Channel c's scale is final once its window has slid there; its top follows at once:
    # top = scale^-beta * x (the layer's former np.power, then *= x). scale_step: the distance
    # between channels in scale (plane where it is kept, the unit's width in scratch).
    cdef Py_ssize_t c, p
    cdef const float* xc
    cdef float* sc
    cdef float* prev
    cdef float* tc
    for p in range(width):
        scale[p] = k
    for c in range(min(pre_pad + 1, channels)):
        xc = x + c * plane
        for p in range(width):
            scale[p] = scale[p] + alpha_over_size * (xc[p] * xc[p])
    for c in range(channels):
        sc = scale + c * scale_step
        if c > 0:
            prev = sc - scale_step
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
        tc = top + c * plane
        xc = x + c * plane
        _pow(sc, neg_beta, tc, width)
        for p in range(width):
            tc[p] = tc[p] * xc[p]


def across_forward(const float[:, :, :, ::1] x, int size, float alpha, float beta, float k,
                   float[:, :, :, ::1] scale, float[:, :, :, ::1] top):
    """scale = k + alpha/size * (sum of x^2 over the `size` channels centred on each channel,
    zero beyond the ends); top = scale^-beta * x. scale None: not kept (a net that runs no
    backward through the layer), each thread slides its unit's scale in scratch of its own."""
    cdef Py_ssize_t num = x.shape[0], channels = x.shape[1]
    cdef Py_ssize_t plane = x.shape[2] * x.shape[3]
    cdef bint kept = scale is not None
    if kept:
        _check_shape(scale.shape, x.shape, 4, 'across_forward')
    _check_shape(top.shape, x.shape, 4, 'across_forward')
    if num == 0 or channels == 0 or plane == 0:
        return
    cdef float alpha_over_size = alpha / <float>size
    cdef Py_ssize_t pre_pad = (size - 1) // 2
    cdef Py_ssize_t runs = (plane + PIXELS - 1) // PIXELS
    cdef Py_ssize_t u, n, p0, off
    cdef int threads = threads_above(num * channels * plane, PARALLEL_MIN)
    cdef float[:, ::1] scratch = None if kept else \
        np.empty((threads, channels * PIXELS), np.float32)
    cdef const float* xp = &x[0, 0, 0, 0]
    cdef float* sp = &scale[0, 0, 0, 0] if kept else &scratch[0, 0]
    cdef float* tp = &top[0, 0, 0, 0]
    cdef float* mine
    with nogil, parallel(num_threads=threads):
        for u in prange(num * runs, schedule='dynamic'):
            n = u // runs
            p0 = (u % runs) * PIXELS
            off = n * channels * plane + p0
            if kept:
                mine = sp + off
            else:
                mine = sp + omp_get_thread_num() * channels * PIXELS
            _across_forward_unit(xp + off, channels, plane, min(<Py_ssize_t>PIXELS, plane - p0),
                                 pre_pad, k, alpha_over_size, -beta, mine,
                                 plane if kept else PIXELS, tp + off)


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
                         Py_ssize_t width, Py_ssize_t pre_pad, float neg_beta,
                         float ratio_coeff, float* bottom_diff) noexcept nogil:
    cdef float accum[PIXELS]
    cdef Py_ssize_t c, p, off
    cdef const float* xc
    cdef const float* tdc
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
        tdc = top_diff + c * plane
        bd = bottom_diff + c * plane
        _pow(scale + c * plane, neg_beta, bd, width)
        for p in range(width):
            bd[p] = bd[p] * tdc[p]
            bd[p] = bd[p] - ratio_coeff * (xc[p] * accum[p])
        if c - pre_pad >= 0:
            off = (c - pre_pad) * plane
            _ratio(top_diff + off, top_data + off, scale + off, width, accum, False)


def across_backward(const float[:, :, :, ::1] top_diff, const float[:, :, :, ::1] top_data,
                    const float[:, :, :, ::1] x, const float[:, :, :, ::1] scale, int size,
                    float beta, float ratio_coeff, float[:, :, :, ::1] bottom_diff):
    """bottom_diff = scale^-beta * top_diff - ratio_coeff * x * (sum over the window around
    each channel of top_diff * top_data / scale). bottom_diff must not be top_diff."""
    cdef Py_ssize_t num = x.shape[0], channels = x.shape[1]
    cdef Py_ssize_t plane = x.shape[2] * x.shape[3]
    _check_shape(top_diff.shape, x.shape, 4, 'across_backward')
    _check_shape(top_data.shape, x.shape, 4, 'across_backward')
    _check_shape(scale.shape, x.shape, 4, 'across_backward')
    _check_shape(bottom_diff.shape, x.shape, 4, 'across_backward')
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
                    num_threads=threads_above(num * channels * plane, PARALLEL_MIN)):
        n = u // runs
        p0 = (u % runs) * PIXELS
        off = n * channels * plane + p0
        _backward_unit(tdp + off, tp + off, xp + off, sp + off, channels, plane,
                       min(<Py_ssize_t>PIXELS, plane - p0), pre_pad, -beta, ratio_coeff,
                       bp + off)


# WITHIN_CHANNEL ---------------------------------------------------------------------------------
# Caffe's network: square = x^2 (power layer), pooled = AVE pooling of square over size x size
# (stride 1, pad (size-1)/2), power = (pooled * alpha + 1)^-beta (power layer), top = x * power
# (product); the split of x adds the product's and the square's gradients. Each step rounds on
# its own, as lrn.cu's kernels do (constants cast to float: Cython writes a bare 1 or 2 as a
# double).
cdef Window _within_window(Py_ssize_t height, Py_ssize_t width, int size) except *:
    cdef int pad = (size - 1) // 2
    return _window(height, width, height, width, size, size, pad, pad, 1, 1)


cdef void _within_forward_plane(const float* x, const Window* g, float alpha, float neg_beta,
                                float* pooled, float* power, float* top) noexcept nogil:
    # power holds x^2 until the pooling has read it.
    cdef Py_ssize_t i, b, n, size = g.height * g.width
    for i in range(size):
        power[i] = x[i] * x[i]
    _ave_plane(power, g, pooled)
    b = 0
    while b < size:
        n = min(<Py_ssize_t>BLOCK, size - b)
        for i in range(b, b + n):
            power[i] = pooled[i] * alpha + <float>1
        _pow(power + b, neg_beta, power + b, n)
        for i in range(b, b + n):
            top[i] = x[i] * power[i]
        b = b + n


def within_forward(const float[:, :, ::1] x, int size, float alpha, float beta,
                   float[:, :, ::1] power, float[:, :, ::1] top):
    """Over planes (num*channels, height, width): pooled = AVE pooling of x^2, power =
    (pooled * alpha + 1)^-beta, top = x * power. Keeps power for backward (which forms the
    pooled values again); power None: kept nowhere (a net that runs no backward through the
    layer). Each thread works in scratch planes of its own."""
    cdef bint kept = power is not None
    if kept:
        _check_shape(power.shape, x.shape, 3, 'within_forward')
    _check_shape(top.shape, x.shape, 3, 'within_forward')
    cdef Py_ssize_t p, planes = x.shape[0], plane = x.shape[1] * x.shape[2]
    if planes == 0 or plane == 0:
        return
    cdef int threads = threads_above(planes * plane, PARALLEL_MIN)
    cdef float[:, :, ::1] scratch = np.empty((threads, 2, plane), np.float32)
    cdef Window g = _within_window(x.shape[1], x.shape[2], size)
    cdef const float* xp = &x[0, 0, 0]
    cdef float* sp = &scratch[0, 0, 0]
    cdef float* wp = &power[0, 0, 0] if kept else NULL
    cdef float* tp = &top[0, 0, 0]
    cdef float* mine = NULL
    with nogil, parallel(num_threads=threads):
        mine = sp + omp_get_thread_num() * 2 * plane
        for p in prange(planes, schedule='dynamic'):
            _within_forward_plane(xp + p * plane, &g, alpha, -beta, mine,
                                  wp + p * plane if kept else mine + plane, tp + p * plane)


cdef void _within_backward_plane(const float* x, const float* dy, const float* power,
                                 const Window* g, float alpha, float diff_scale, int mode,
                                 bint times_grad, float* pooled, float* grad_pooled,
                                 float* grad_square, float* dx) noexcept nogil:
    # The pooled values of the forward, formed again (the same float32 steps: the same bits)
    # where the power layer's derivative reads them. The gradient reaching them: that
    # derivative (mode 0: the constant diff_scale; 1: exponent 2, (diff_scale * alpha) *
    # pooled + diff_scale; 2: (power / (pooled * alpha + 1)) * diff_scale), times the product's
    # x * dy when times_grad; the pooling spreads it to the squares; dx = power * dy +
    # grad_square * (2 * x).
    cdef Py_ssize_t i, size = g.height * g.width
    cdef float d, scale_alpha = diff_scale * alpha
    if mode != 0:
        for i in range(size):
            grad_pooled[i] = x[i] * x[i]
        _ave_plane(grad_pooled, g, pooled)
    for i in range(size):
        if mode == 0:
            d = diff_scale
        elif mode == 1:
            d = scale_alpha * pooled[i] + diff_scale
        else:
            d = (power[i] / (pooled[i] * alpha + <float>1)) * diff_scale
        if times_grad:
            d = d * (x[i] * dy[i])
        grad_pooled[i] = d
    _ave_plane_backward(grad_pooled, g, grad_square)
    for i in range(size):
        dx[i] = power[i] * dy[i] + grad_square[i] * (<float>2 * x[i])


def within_backward(const float[:, :, ::1] x, const float[:, :, ::1] dy,
                    const float[:, :, ::1] power, int size, float alpha, float diff_scale,
                    int mode, bint times_grad, float[:, :, ::1] dx):
    """dx over planes (num*channels, height, width), from the forward's power; diff_scale =
    -beta * alpha and mode (the power layer's case, see _within_backward_plane) as lrn.py works
    them out. dx may be dy or x."""
    _check_shape(dy.shape, x.shape, 3, 'within_backward')
    _check_shape(power.shape, x.shape, 3, 'within_backward')
    _check_shape(dx.shape, x.shape, 3, 'within_backward')
    cdef Py_ssize_t p, planes = x.shape[0], plane = x.shape[1] * x.shape[2]
    if planes == 0 or plane == 0:
        return
    cdef int threads = threads_above(planes * plane, PARALLEL_MIN)
    cdef float[:, :, ::1] scratch = np.empty((threads, 3, plane), np.float32)
    cdef Window g = _within_window(x.shape[1], x.shape[2], size)
    cdef const float* xp = &x[0, 0, 0]
    cdef const float* dyp = &dy[0, 0, 0]
    cdef const float* wp = &power[0, 0, 0]
    cdef float* sp = &scratch[0, 0, 0]
    cdef float* dxp = &dx[0, 0, 0]
    cdef float* mine = NULL
    with nogil, parallel(num_threads=threads):
        mine = sp + omp_get_thread_num() * 3 * plane
        for p in prange(planes, schedule='dynamic'):
            _within_backward_plane(xp + p * plane, dyp + p * plane, wp + p * plane, &g, alpha,
                                   diff_scale, mode, times_grad, mine, mine + plane,
                                   mine + 2 * plane, dxp + p * plane)
