"""CPU kernels of the neuron layers (AbsVal, BNLL, Clip, ELU, Exp, Log, Power, PReLU, Sigmoid,
Swish, TanH, Threshold): the host counterparts of gpu/kernels/neuron.cu, with the same names.

Each kernel makes one pass over flat float32 arrays and allocates nothing; an output may be one of
the inputs (the layers Caffe runs in place). Every expression rounds as Caffe's CPU code does:
Caffe calls exp/log/tanh/pow unqualified on floats, which with libstdc++'s <math.h> (GCC 6 and
later) are the float overloads, so expf/logf/tanhf/powf here; where Caffe mixes in a double
literal (BNLL's `log(1. + ...)`, the sigmoid's `0.5 * tanh(0.5 * x) + 0.5`, the `1.` of the
Sigmoid and Swish gradients) the step runs in double and rounds once, as there. std::min/max
are written as their comparisons ((b < a) ? b : a and (a < b) ? b : a), so NaN goes where it
goes in Caffe. Products and sums round one at a time (lib/setup.py: -ffp-contract=off; constants
are written <float>, since Cython makes a bare 1 or 1.0 a double).

Large arrays are cut into blocks shared out to the OpenMP threads on demand; every element is
computed alone, so results do not depend on the thread count. The one reduction here (PReLU's
slope gradient) writes one double partial sum per fixed run of elements (prelu_slope_partials),
which the layer adds up the same way on the CPU and GPU paths.
"""
from cython.parallel cimport prange
from libc.math cimport exp, expf, fabsf, log, logf, powf, tanh, tanhf

from ._parallel cimport block_len, blocks, threads_above

cdef enum:
    BLOCK = 1 << 15         # floats per unit of work (128 KB)
    CHEAP_MIN = 1 << 18     # elements below which one thread runs a few-operations kernel
    COSTLY_MIN = 1 << 15    # ... and a kernel with a transcendental function per element


ctypedef struct Coeffs:
    float a, b, c, d
    bint flag


ctypedef void (*Forward)(const float* x, float* y, float* aux, Py_ssize_t n,
                         const Coeffs* k) noexcept nogil
ctypedef void (*Backward)(const float* x, const float* y, const float* aux, const float* dy,
                          float* dx, Py_ssize_t n, const Coeffs* k) noexcept nogil


cdef int _same_size(Py_ssize_t n, const float[::1] a, str what) except -1:
    if a is not None and a.shape[0] != n:
        raise ValueError('%s: arrays of %d and %d elements' % (what, n, a.shape[0]))
    return 0


cdef inline const float* _at(const float[::1] a) noexcept:
    return &a[0] if a is not None and a.shape[0] else NULL


cdef inline const float* _skip(const float* p, Py_ssize_t offset) noexcept nogil:
    # An optional array's pointer `offset` elements on (NULL stays NULL).
    return p + offset if p != NULL else NULL


cdef int _forward(Forward f, const float[::1] x, float[::1] y, float[::1] aux, Coeffs k,
                  Py_ssize_t min_work, str what) except -1:
    cdef Py_ssize_t n = x.shape[0], b
    _same_size(n, y, what)
    _same_size(n, aux, what)
    if n == 0:
        return 0
    cdef const float* xp = &x[0]
    cdef float* yp = &y[0]
    cdef float* ap = <float*>_at(aux)
    for b in prange(blocks(n, BLOCK), nogil=True, schedule='dynamic',
                    num_threads=threads_above(n, min_work)):
        f(xp + b * BLOCK, yp + b * BLOCK, <float*>_skip(ap, b * BLOCK),
          block_len(b, n, BLOCK), &k)
    return 0


cdef int _backward(Backward f, const float[::1] x, const float[::1] y, const float[::1] aux,
                   const float[::1] dy, float[::1] dx, Coeffs k, Py_ssize_t min_work,
                   str what) except -1:
    cdef Py_ssize_t n = dy.shape[0], b
    _same_size(n, x, what)
    _same_size(n, y, what)
    _same_size(n, aux, what)
    _same_size(n, dx, what)
    if n == 0:
        return 0
    cdef const float* xp = _at(x)
    cdef const float* yp = _at(y)
    cdef const float* ap = _at(aux)
    cdef const float* dyp = &dy[0]
    cdef float* dxp = &dx[0]
    for b in prange(blocks(n, BLOCK), nogil=True, schedule='dynamic',
                    num_threads=threads_above(n, min_work)):
        f(_skip(xp, b * BLOCK), _skip(yp, b * BLOCK), _skip(ap, b * BLOCK), dyp + b * BLOCK,
          dxp + b * BLOCK, block_len(b, n, BLOCK), &k)
    return 0


cdef inline Coeffs _coeffs(float a=0, float b=0, float c=0, float d=0, bint flag=False):
    cdef Coeffs k
    k.a, k.b, k.c, k.d, k.flag = a, b, c, d, flag
    return k


# AbsVal ----------------------------------------------------------------------------------------

cdef void _absval_forward(const float* x, float* y, float* aux, Py_ssize_t n,
                          const Coeffs* k) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        y[i] = fabsf(x[i])


cdef void _absval_backward(const float* x, const float* y, const float* aux, const float* dy,
                           float* dx, Py_ssize_t n, const Coeffs* k) noexcept nogil:
    # caffe_cpu_sign: (0 < x) - (x < 0), so the gradient at 0 is 0.
    cdef Py_ssize_t i
    cdef float v, sign
    for i in range(n):
        v = x[i]
        sign = (<float>1 if v > 0 else <float>0) - (<float>1 if v < 0 else <float>0)
        dx[i] = sign * dy[i]


def absval_forward(const float[::1] x, float[::1] y):
    """y = |x|."""
    _forward(_absval_forward, x, y, None, _coeffs(), CHEAP_MIN, 'absval_forward')


def absval_backward(const float[::1] x, const float[::1] dy, float[::1] dx):
    """dx = sign(x) * dy (sign(0) = 0)."""
    _backward(_absval_backward, x, None, None, dy, dx, _coeffs(), CHEAP_MIN, 'absval_backward')


# BNLL ------------------------------------------------------------------------------------------

cdef void _bnll_forward(const float* x, float* y, float* aux, Py_ssize_t n,
                        const Coeffs* k) noexcept nogil:
    # log(1 + e^x) in the form that cannot overflow: x + log(1 + e^-x) for x > 0.
    cdef Py_ssize_t i
    cdef float v
    for i in range(n):
        v = x[i]
        if v > 0:
            y[i] = <float>(<double>v + log(1.0 + <double>expf(-v)))
        else:
            y[i] = <float>log(1.0 + <double>expf(v))


cdef void _bnll_backward(const float* x, const float* y, const float* aux, const float* dy,
                         float* dx, Py_ssize_t n, const Coeffs* k) noexcept nogil:
    # Caffe's kBNLL_THRESHOLD: e^min(x, 50) (a float), so the gradient of a large x is
    # e^50 / (e^50 + 1) = 1 instead of inf / inf.
    cdef Py_ssize_t i
    cdef float v, e
    for i in range(n):
        v = x[i]
        e = expf(<float>50 if <float>50 < v else v)
        dx[i] = <float>(<double>(dy[i] * e) / (<double>e + 1.0))


def bnll_forward(const float[::1] x, float[::1] y):
    """y = log(1 + exp(x))."""
    _forward(_bnll_forward, x, y, None, _coeffs(), COSTLY_MIN, 'bnll_forward')


def bnll_backward(const float[::1] x, const float[::1] dy, float[::1] dx):
    """dx = dy * e / (e + 1), e = exp(min(x, 50))."""
    _backward(_bnll_backward, x, None, None, dy, dx, _coeffs(), COSTLY_MIN, 'bnll_backward')


# Clip ------------------------------------------------------------------------------------------

cdef void _clip_forward(const float* x, float* y, float* aux, Py_ssize_t n,
                        const Coeffs* k) noexcept nogil:
    # std::max(lo, std::min(x, hi)): a NaN input gives lo, as on Caffe's CPU path.
    cdef Py_ssize_t i
    cdef float lo = k.a, hi = k.b, t
    for i in range(n):
        t = hi if hi < x[i] else x[i]
        y[i] = t if lo < t else lo


cdef void _clip_backward(const float* x, const float* y, const float* aux, const float* dy,
                         float* dx, Py_ssize_t n, const Coeffs* k) noexcept nogil:
    cdef Py_ssize_t i
    cdef float lo = k.a, hi = k.b, v
    for i in range(n):
        v = x[i]
        dx[i] = dy[i] * (<float>1 if (v >= lo and v <= hi) else <float>0)


def clip_forward(const float[::1] x, float[::1] y, float lo, float hi):
    """y = max(lo, min(x, hi))."""
    _forward(_clip_forward, x, y, None, _coeffs(lo, hi), CHEAP_MIN, 'clip_forward')


def clip_backward(const float[::1] x, const float[::1] dy, float[::1] dx, float lo, float hi):
    """dx = dy where lo <= x <= hi (both ends included), else 0."""
    _backward(_clip_backward, x, None, None, dy, dx, _coeffs(lo, hi), CHEAP_MIN, 'clip_backward')


# ELU -------------------------------------------------------------------------------------------

cdef void _elu_forward(const float* x, float* y, float* aux, Py_ssize_t n,
                       const Coeffs* k) noexcept nogil:
    cdef Py_ssize_t i
    cdef float alpha = k.a, v, above, below
    for i in range(n):
        v = x[i]
        above = <float>0 if v < 0 else v
        below = <float>0 if 0 < v else v
        y[i] = above + alpha * (expf(below) - <float>1)


cdef void _elu_backward(const float* x, const float* y, const float* aux, const float* dy,
                        float* dx, Py_ssize_t n, const Coeffs* k) noexcept nogil:
    # Caffe's form reads the output: d/dx alpha (e^x - 1) = y + alpha for x <= 0.
    cdef Py_ssize_t i
    cdef float alpha = k.a, v
    for i in range(n):
        v = x[i]
        dx[i] = dy[i] * ((<float>1 if v > 0 else <float>0)
                         + (alpha + y[i]) * (<float>1 if v <= 0 else <float>0))


def elu_forward(const float[::1] x, float[::1] y, float alpha):
    """y = max(x, 0) + alpha * (exp(min(x, 0)) - 1)."""
    _forward(_elu_forward, x, y, None, _coeffs(alpha), COSTLY_MIN, 'elu_forward')


def elu_backward(const float[::1] x, const float[::1] y, const float[::1] dy, float[::1] dx,
                 float alpha):
    """dx = dy * ((x > 0) + (alpha + y) * (x <= 0))."""
    _backward(_elu_backward, x, y, None, dy, dx, _coeffs(alpha), CHEAP_MIN, 'elu_backward')


# Exp -------------------------------------------------------------------------------------------

cdef void _exp_forward(const float* x, float* y, float* aux, Py_ssize_t n,
                       const Coeffs* k) noexcept nogil:
    # Caffe skips the products whose factor is 1; multiplying by 1 changes no float.
    cdef Py_ssize_t i
    cdef float inner = k.a, outer = k.b
    for i in range(n):
        y[i] = outer * expf(inner * x[i])


cdef void _exp_backward(const float* x, const float* y, const float* aux, const float* dy,
                        float* dx, Py_ssize_t n, const Coeffs* k) noexcept nogil:
    cdef Py_ssize_t i
    cdef float inner = k.a
    for i in range(n):
        dx[i] = (y[i] * dy[i]) * inner


def exp_forward(const float[::1] x, float[::1] y, float inner_scale, float outer_scale):
    """y = outer_scale * exp(inner_scale * x)."""
    _forward(_exp_forward, x, y, None, _coeffs(inner_scale, outer_scale), COSTLY_MIN,
             'exp_forward')


def exp_backward(const float[::1] y, const float[::1] dy, float[::1] dx, float inner_scale):
    """dx = (y * dy) * inner_scale."""
    _backward(_exp_backward, None, y, None, dy, dx, _coeffs(inner_scale), CHEAP_MIN,
              'exp_backward')


# Log -------------------------------------------------------------------------------------------

cdef inline float _affine(float v, const Coeffs* k) noexcept nogil:
    # scale * x, then + shift only where Caffe adds it (shift != 0): x + 0 would turn -0 into
    # +0, and 1 / -0 is -inf.
    cdef float t = k.a * v
    if k.flag:
        t = t + k.b
    return t


cdef void _log_forward(const float* x, float* y, float* aux, Py_ssize_t n,
                       const Coeffs* k) noexcept nogil:
    cdef Py_ssize_t i
    cdef float base_scale = k.c
    for i in range(n):
        y[i] = base_scale * logf(_affine(x[i], k))


cdef void _log_backward(const float* x, const float* y, const float* aux, const float* dy,
                        float* dx, Py_ssize_t n, const Coeffs* k) noexcept nogil:
    # caffe_powx(t, -1), times scale / log(base), times the top diff.
    cdef Py_ssize_t i
    cdef float num_scale = k.c
    for i in range(n):
        dx[i] = dy[i] * (powf(_affine(x[i], k), <float>-1) * num_scale)


def log_forward(const float[::1] x, float[::1] y, float scale, float shift, float base_scale):
    """y = base_scale * log(scale * x + shift)."""
    _forward(_log_forward, x, y, None, _coeffs(scale, shift, base_scale, 0, shift != 0),
             COSTLY_MIN, 'log_forward')


def log_backward(const float[::1] x, const float[::1] dy, float[::1] dx, float scale,
                 float shift, float backward_num_scale):
    """dx = dy * ((scale * x + shift)^-1 * backward_num_scale)."""
    _backward(_log_backward, x, None, None, dy, dx,
              _coeffs(scale, shift, backward_num_scale, 0, shift != 0), COSTLY_MIN,
              'log_backward')


# Power -----------------------------------------------------------------------------------------

cdef void _power_forward(const float* x, float* y, float* aux, Py_ssize_t n,
                         const Coeffs* k) noexcept nogil:
    # k.d is 1 when Caffe applies caffe_powx (power != 1).
    cdef Py_ssize_t i
    cdef float power = k.c, t
    cdef bint apply_power = k.d != 0
    for i in range(n):
        t = _affine(x[i], k)
        y[i] = powf(t, power) if apply_power else t


cdef void _fill(const float* x, float* y, float* aux, Py_ssize_t n,
                const Coeffs* k) noexcept nogil:
    cdef Py_ssize_t i
    cdef float value = k.a
    for i in range(n):
        y[i] = value


cdef void _power_backward_constant(const float* x, const float* y, const float* aux,
                                   const float* dy, float* dx, Py_ssize_t n,
                                   const Coeffs* k) noexcept nogil:
    # diff_scale == 0 or power == 1: caffe_set(diff_scale), then times the top diff unless
    # diff_scale is 0 (so a 0 gradient stays 0 whatever the top diff holds).
    cdef Py_ssize_t i
    cdef float diff_scale = k.a
    for i in range(n):
        dx[i] = dy[i] * diff_scale if diff_scale != 0 else diff_scale


cdef void _power_backward_square(const float* x, const float* y, const float* aux,
                                 const float* dy, float* dx, Py_ssize_t n,
                                 const Coeffs* k) noexcept nogil:
    # power == 2: (diff_scale * scale) * x (+ diff_scale * shift where shift != 0).
    cdef Py_ssize_t i
    cdef float slope = k.a, offset = k.b, d
    cdef bint shifted = k.flag
    for i in range(n):
        d = slope * x[i]
        if shifted:
            d = d + offset
        dx[i] = dy[i] * d


cdef void _power_backward_unshifted(const float* x, const float* y, const float* aux,
                                    const float* dy, float* dx, Py_ssize_t n,
                                    const Coeffs* k) noexcept nogil:
    # shift == 0: power * y / x (Caffe's shortcut, which is NaN or inf at x = 0).
    cdef Py_ssize_t i
    cdef float power = k.c
    for i in range(n):
        dx[i] = dy[i] * ((y[i] / x[i]) * power)


cdef void _power_backward_general(const float* x, const float* y, const float* aux,
                                  const float* dy, float* dx, Py_ssize_t n,
                                  const Coeffs* k) noexcept nogil:
    # diff_scale * y / (scale * x + shift).
    cdef Py_ssize_t i
    cdef float diff_scale = k.d
    for i in range(n):
        dx[i] = dy[i] * ((y[i] / _affine(x[i], k)) * diff_scale)


def power_forward(const float[::1] x, float[::1] y, float scale, float shift, float power):
    """y = (scale * x + shift)^power (no pow where power == 1)."""
    _forward(_power_forward, x, y, None, _coeffs(scale, shift, power, power != 1, shift != 0),
             COSTLY_MIN, 'power_forward')


def fill(float[::1] y, float value):
    """y = value everywhere (Power when scale or power is 0)."""
    _forward(_fill, y, y, None, _coeffs(value), CHEAP_MIN, 'fill')


def power_backward(const float[::1] x, const float[::1] y, const float[::1] dy, float[::1] dx,
                   float scale, float shift, float power):
    """Caffe's PowerLayer::Backward_cpu, with its four cases."""
    cdef float diff_scale = power * scale
    if diff_scale == 0 or power == 1:
        _backward(_power_backward_constant, None, None, None, dy, dx, _coeffs(diff_scale),
                  CHEAP_MIN, 'power_backward')
    elif power == 2:
        _backward(_power_backward_square, x, None, None, dy, dx,
                  _coeffs(diff_scale * scale, diff_scale * shift, 0, 0, shift != 0),
                  CHEAP_MIN, 'power_backward')
    elif shift == 0:
        _backward(_power_backward_unshifted, x, y, None, dy, dx, _coeffs(0, 0, power),
                  CHEAP_MIN, 'power_backward')
    else:
        _backward(_power_backward_general, x, y, None, dy, dx,
                  _coeffs(scale, shift, 0, diff_scale, True), CHEAP_MIN, 'power_backward')


# Sigmoid, Swish, TanH --------------------------------------------------------------------------

cdef inline float _sigmoid(float v) noexcept nogil:
    # Caffe's sigmoid(): 0.5 * tanh(0.5 * x) + 0.5, in double (the literals), returned as float.
    return <float>(0.5 * tanh(0.5 * <double>v) + 0.5)


cdef void _sigmoid_forward(const float* x, float* y, float* aux, Py_ssize_t n,
                           const Coeffs* k) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        y[i] = _sigmoid(x[i])


cdef void _sigmoid_backward(const float* x, const float* y, const float* aux, const float* dy,
                            float* dx, Py_ssize_t n, const Coeffs* k) noexcept nogil:
    # top_diff * s * (1. - s): the first product in float, the second in double.
    cdef Py_ssize_t i
    cdef float s
    for i in range(n):
        s = y[i]
        dx[i] = <float>(<double>(dy[i] * s) * (1.0 - <double>s))


def sigmoid_forward(const float[::1] x, float[::1] y):
    """y = 1 / (1 + exp(-x)), as 0.5 * tanh(0.5 * x) + 0.5."""
    _forward(_sigmoid_forward, x, y, None, _coeffs(), COSTLY_MIN, 'sigmoid_forward')


def sigmoid_backward(const float[::1] y, const float[::1] dy, float[::1] dx):
    """dx = dy * y * (1 - y)."""
    _backward(_sigmoid_backward, None, y, None, dy, dx, _coeffs(), CHEAP_MIN,
              'sigmoid_backward')


cdef void _swish_forward(const float* x, float* y, float* s, Py_ssize_t n,
                         const Coeffs* k) noexcept nogil:
    # Caffe's Swish runs a Sigmoid layer on beta * x (kept for backward), then y = x * s.
    cdef Py_ssize_t i
    cdef float beta = k.a, v, g
    for i in range(n):
        v = x[i]
        g = _sigmoid(beta * v)
        s[i] = g
        y[i] = v * g


cdef void _swish_backward(const float* x, const float* y, const float* s, const float* dy,
                          float* dx, Py_ssize_t n, const Coeffs* k) noexcept nogil:
    # top_diff * (beta * y + s * (1. - beta * y)): beta * y in float, the rest in double.
    cdef Py_ssize_t i
    cdef float beta = k.a, by
    for i in range(n):
        by = beta * y[i]
        dx[i] = <float>(<double>dy[i] * (<double>by + <double>s[i] * (1.0 - <double>by)))


def swish_forward(const float[::1] x, float[::1] y, float[::1] s, float beta):
    """s = sigmoid(beta * x), y = x * s."""
    if s is None:
        raise ValueError('swish_forward needs the array s')
    _forward(_swish_forward, x, y, s, _coeffs(beta), COSTLY_MIN, 'swish_forward')


def swish_backward(const float[::1] y, const float[::1] s, const float[::1] dy, float[::1] dx,
                   float beta):
    """dx = dy * (beta * y + s * (1 - beta * y))."""
    if s is None:
        raise ValueError('swish_backward needs the array s')
    _backward(_swish_backward, None, y, s, dy, dx, _coeffs(beta), CHEAP_MIN, 'swish_backward')


cdef void _tanh_forward(const float* x, float* y, float* aux, Py_ssize_t n,
                        const Coeffs* k) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        y[i] = tanhf(x[i])


cdef void _tanh_backward(const float* x, const float* y, const float* aux, const float* dy,
                         float* dx, Py_ssize_t n, const Coeffs* k) noexcept nogil:
    cdef Py_ssize_t i
    cdef float t
    for i in range(n):
        t = y[i]
        dx[i] = dy[i] * (<float>1 - t * t)


def tanh_forward(const float[::1] x, float[::1] y):
    """y = tanh(x)."""
    _forward(_tanh_forward, x, y, None, _coeffs(), COSTLY_MIN, 'tanh_forward')


def tanh_backward(const float[::1] y, const float[::1] dy, float[::1] dx):
    """dx = dy * (1 - y^2)."""
    _backward(_tanh_backward, None, y, None, dy, dx, _coeffs(), CHEAP_MIN, 'tanh_backward')


# Threshold -------------------------------------------------------------------------------------

cdef void _threshold_forward(const float* x, float* y, float* aux, Py_ssize_t n,
                             const Coeffs* k) noexcept nogil:
    cdef Py_ssize_t i
    cdef float threshold = k.a
    for i in range(n):
        y[i] = <float>1 if x[i] > threshold else <float>0


def threshold_forward(const float[::1] x, float[::1] y, float threshold):
    """y = 1 where x > threshold, else 0."""
    _forward(_threshold_forward, x, y, None, _coeffs(threshold), CHEAP_MIN, 'threshold_forward')


# PReLU -----------------------------------------------------------------------------------------
# The blob is rows of `dim` elements (dim = the product of the axes after the channels); row r
# has channel r % channels, or slope[0] everywhere when the slope is shared. Each block of
# elements is walked row segment by row segment, so the inner loops are plain ReLU loops.

cdef void _prelu_forward(const float* x, float* y, float* kept, const float* slope,
                         Py_ssize_t start, Py_ssize_t n, Py_ssize_t channels, Py_ssize_t dim,
                         bint shared) noexcept nogil:
    cdef Py_ssize_t i = start, end = start + n, stop, j, row
    cdef float s, v, above, below
    while i < end:
        row = i // dim
        stop = (row + 1) * dim
        if stop > end:
            stop = end
        s = slope[0] if shared else slope[row % channels]
        for j in range(i, stop):
            v = x[j]
            if kept != NULL:
                kept[j] = v
            above = <float>0 if v < 0 else v
            below = <float>0 if 0 < v else v
            y[j] = above + s * below
        i = stop


cdef void _prelu_backward(const float* x, const float* dy, float* dx, const float* slope,
                          Py_ssize_t start, Py_ssize_t n, Py_ssize_t channels, Py_ssize_t dim,
                          bint shared) noexcept nogil:
    cdef Py_ssize_t i = start, end = start + n, stop, j, row
    cdef float s, v
    while i < end:
        row = i // dim
        stop = (row + 1) * dim
        if stop > end:
            stop = end
        s = slope[0] if shared else slope[row % channels]
        for j in range(i, stop):
            v = x[j]
            dx[j] = dy[j] * ((<float>1 if v > 0 else <float>0)
                             + s * (<float>1 if v <= 0 else <float>0))
        i = stop


cdef int _prelu_check(Py_ssize_t n, Py_ssize_t slopes, Py_ssize_t channels, Py_ssize_t dim,
                      bint shared, str what) except -1:
    if channels <= 0 or dim <= 0 or n % (channels * dim):
        raise ValueError('%s: %d elements are not rows of %d channels x %d'
                         % (what, n, channels, dim))
    if slopes != (1 if shared else channels):
        raise ValueError('%s: %d slopes for %d channels (shared: %s)'
                         % (what, slopes, channels, bool(shared)))
    return 0


def prelu_forward(const float[::1] x, float[::1] y, const float[::1] slope,
                  Py_ssize_t channels, Py_ssize_t dim, bint shared, float[::1] kept=None):
    """y = max(x, 0) + slope[c] * min(x, 0); kept (optional) receives a copy of x (in place,
    Caffe's bottom_memory_)."""
    cdef Py_ssize_t n = x.shape[0], b
    _same_size(n, y, 'prelu_forward')
    _same_size(n, kept, 'prelu_forward')
    if n == 0:
        return
    _prelu_check(n, slope.shape[0], channels, dim, shared, 'prelu_forward')
    cdef const float* xp = &x[0]
    cdef float* yp = &y[0]
    cdef float* kp = <float*>_at(kept)
    cdef const float* sp = &slope[0]
    for b in prange(blocks(n, BLOCK), nogil=True, schedule='dynamic',
                    num_threads=threads_above(n, CHEAP_MIN)):
        _prelu_forward(xp, yp, kp, sp, b * BLOCK, block_len(b, n, BLOCK), channels, dim,
                       shared)


def prelu_backward(const float[::1] x, const float[::1] dy, float[::1] dx, const float[::1] slope,
                   Py_ssize_t channels, Py_ssize_t dim, bint shared):
    """dx = dy * ((x > 0) + slope[c] * (x <= 0)); dx may be dy."""
    cdef Py_ssize_t n = x.shape[0], b
    _same_size(n, dy, 'prelu_backward')
    _same_size(n, dx, 'prelu_backward')
    if n == 0:
        return
    _prelu_check(n, slope.shape[0], channels, dim, shared, 'prelu_backward')
    cdef const float* xp = &x[0]
    cdef const float* dyp = &dy[0]
    cdef float* dxp = &dx[0]
    cdef const float* sp = &slope[0]
    for b in prange(blocks(n, BLOCK), nogil=True, schedule='dynamic',
                    num_threads=threads_above(n, CHEAP_MIN)):
        _prelu_backward(xp, dyp, dxp, sp, b * BLOCK, block_len(b, n, BLOCK), channels, dim,
                        shared)


def prelu_slope_partials(const float[::1] x, const float[::1] dy, Py_ssize_t dim,
                         Py_ssize_t chunk, double[::1] partials):
    """The slope gradient's terms (dy * x) * (x <= 0), summed in double over each run of `chunk`
    elements of each row (rows of `dim`): partials[r * runs + k] for row r, run k, runs =
    ceil(dim / chunk). Each run is added in element order."""
    cdef Py_ssize_t n = x.shape[0], runs, rows, p, r, start, stop, j
    cdef double total
    cdef float v
    _same_size(n, dy, 'prelu_slope_partials')
    if dim <= 0 or chunk <= 0 or n % dim:
        raise ValueError('prelu_slope_partials: %d elements are not rows of %d' % (n, dim))
    runs = (dim + chunk - 1) // chunk
    rows = n // dim
    if partials.shape[0] != rows * runs:
        raise ValueError('prelu_slope_partials: needs %d partial sums, got %d'
                         % (rows * runs, partials.shape[0]))
    if n == 0:
        return
    cdef const float* xp = &x[0]
    cdef const float* dyp = &dy[0]
    for p in prange(rows * runs, nogil=True, schedule='dynamic',
                    num_threads=threads_above(n, CHEAP_MIN)):
        r = p // runs
        start = r * dim + (p - r * runs) * chunk
        stop = start + chunk
        if stop > (r + 1) * dim:
            stop = (r + 1) * dim
        total = 0
        for j in range(start, stop):
            v = xp[j]
            total = total + <double>((dyp[j] * v) * (<float>1 if v <= 0 else <float>0))
        partials[p] = total


# Scalars ---------------------------------------------------------------------------------------
# The layers' set-up constants, from the same float functions as Caffe's LayerSetUp uses
# (numpy's float32 log/exp/power are its own, and may differ from libm's in the last bit).

def logf_(float x):
    return logf(x)


def expf_(float x):
    return expf(x)


def powf_(float x, float y):
    return powf(x, y)
