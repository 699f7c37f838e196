"""CPU kernels of the loss layers ContrastiveLoss, EuclideanLoss, HingeLoss, InfogainLoss and
SigmoidCrossEntropyLoss: the host counterparts of gpu/kernels/losses.cu, with the same names.

Per-element terms round as Caffe's CPU code forms them (float, with expf/logf as its unqualified
calls on floats resolve to; see neuron_kernels.pyx). Sums are cut into fixed runs of `chunk`
terms, each added in double in order into one partial sum (caffe.layers._partial_sums): the
layer adds the partial sums, so the loss does not depend on the thread count and equals the GPU
path's. Gradients are one pass over the bottom, with no temporaries. Labels are floats, cast to
int as Caffe's static_cast<int> does (truncation); the layers check their range first.
"""
from cython.parallel cimport prange
from libc.math cimport expf, logf, tanh

from ._parallel cimport block_len, blocks, threads_above

cdef enum:
    BLOCK = 1 << 15          # elements per unit of work of the gradient kernels
    PARALLEL_MIN = 1 << 16   # elements below which the calling thread does everything

# Caffe's kLOG_THRESHOLD (loss_layer.hpp): probabilities are clipped to it before the log.
cdef float LOG_THRESHOLD = 1e-20


cdef int _same_size(Py_ssize_t n, Py_ssize_t m, str what) except -1:
    if n != m:
        raise ValueError('%s: arrays of %d and %d elements' % (what, n, m))
    return 0


cdef int _runs(Py_ssize_t n, Py_ssize_t chunk, Py_ssize_t got, str what) except -1:
    if chunk <= 0:
        raise ValueError('%s: chunk must be positive' % what)
    if got != (n + chunk - 1) // chunk:
        raise ValueError('%s: %d terms need %d partial sums, got %d'
                         % (what, n, (n + chunk - 1) // chunk, got))
    return 0


cdef inline float _sigmoid(float v) noexcept nogil:
    # Caffe's sigmoid(): 0.5 * tanh(0.5 * x) + 0.5, in double, returned as float.
    return <float>(0.5 * tanh(0.5 * <double>v) + 0.5)


cdef inline float _clip_probability(float p) noexcept nogil:
    # std::max(p, kLOG_THRESHOLD)
    return LOG_THRESHOLD if p < LOG_THRESHOLD else p


# Euclidean and contrastive losses --------------------------------------------------------------

def squared_difference_partials(const float[::1] a, const float[::1] b, Py_ssize_t chunk,
                                double[::1] partials):
    """partials[k] = sum over run k of d^2, d = a - b (a float), the squares exact in double."""
    cdef Py_ssize_t n = a.shape[0], k, i, stop
    cdef double total
    cdef float d
    _same_size(n, b.shape[0], 'squared_difference_partials')
    _runs(n, chunk, partials.shape[0], 'squared_difference_partials')
    if n == 0:
        return
    cdef const float* ap = &a[0]
    cdef const float* bp = &b[0]
    for k in prange(partials.shape[0], nogil=True, schedule='dynamic',
                    num_threads=threads_above(n, PARALLEL_MIN)):
        stop = (k + 1) * chunk
        if stop > n:
            stop = n
        total = 0
        for i in range(k * chunk, stop):
            d = ap[i] - bp[i]
            total = total + <double>d * <double>d
        partials[k] = total


def row_squared_distances(const float[::1] a, const float[::1] b, Py_ssize_t cols,
                          float[::1] out):
    """out[r] = sum over row r (of `cols` elements) of (a - b)^2, added in double in order."""
    cdef Py_ssize_t n = a.shape[0], rows = out.shape[0], r, i
    cdef double total
    cdef float d
    _same_size(n, b.shape[0], 'row_squared_distances')
    _same_size(n, rows * cols, 'row_squared_distances')
    for r in prange(rows, nogil=True, schedule='static',
                    num_threads=threads_above(n, PARALLEL_MIN)):
        total = 0
        for i in range(r * cols, (r + 1) * cols):
            d = a[i] - b[i]
            total = total + <double>d * <double>d
        out[r] = <float>total


cdef void _scaled_difference(const float* a, const float* b, const float* coef, float alpha,
                             Py_ssize_t cols, float* dx, Py_ssize_t start,
                             Py_ssize_t n) noexcept nogil:
    # Row by row segment: coef[row] (or alpha for all) times (a - b).
    cdef Py_ssize_t i = start, end = start + n, stop, j, row
    cdef float c
    while i < end:
        row = i // cols
        stop = (row + 1) * cols
        if stop > end:
            stop = end
        c = coef[row] if coef != NULL else alpha
        for j in range(i, stop):
            dx[j] = c * (a[j] - b[j])
        i = stop


def scaled_difference(const float[::1] a, const float[::1] b, Py_ssize_t cols, float[::1] dx,
                      const float[::1] coef=None, float alpha=0):
    """dx = c * (a - b), c = coef[row] for rows of `cols` elements, or alpha without coef."""
    cdef Py_ssize_t n = a.shape[0], k
    _same_size(n, b.shape[0], 'scaled_difference')
    _same_size(n, dx.shape[0], 'scaled_difference')
    if n == 0:
        return
    if cols <= 0 or n % cols:
        raise ValueError('scaled_difference: %d elements are not rows of %d' % (n, cols))
    if coef is not None:
        _same_size(n // cols, coef.shape[0], 'scaled_difference coefficients')
    cdef const float* cp = &coef[0] if coef is not None else NULL
    cdef const float* ap = &a[0]
    cdef const float* bp = &b[0]
    cdef float* dxp = &dx[0]
    for k in prange(blocks(n, BLOCK), nogil=True, schedule='dynamic',
                    num_threads=threads_above(n, PARALLEL_MIN)):
        _scaled_difference(ap, bp, cp, alpha, cols, dxp, k * BLOCK, block_len(k, n, BLOCK))


# Hinge loss ------------------------------------------------------------------------------------

cdef inline float _hinge(const float* x, const float* labels, Py_ssize_t dim,
                         Py_ssize_t i) noexcept nogil:
    # Caffe: the score of the true class negated, then max(0, 1 + v). The result carries the
    # sign back (-t at the true class) for the gradient.
    cdef Py_ssize_t row = i // dim
    cdef float v = x[i], t
    cdef bint truth = i - row * dim == <int>labels[row]
    if truth:
        v = v * <float>-1
    t = <float>1 + v
    t = t if <float>0 < t else <float>0
    return t * <float>-1 if truth else t


def hinge_partials(const float[::1] x, const float[::1] labels, Py_ssize_t dim, bint squared,
                   Py_ssize_t chunk, double[::1] partials):
    """Run sums of t (L1) or t^2 (L2), t = max(0, 1 - x) at the label, max(0, 1 + x) elsewhere,
    for rows of `dim` scores with one label each."""
    cdef Py_ssize_t n = x.shape[0], k, i, stop
    cdef double total
    cdef float t
    _same_size(n, labels.shape[0] * dim, 'hinge_partials')
    _runs(n, chunk, partials.shape[0], 'hinge_partials')
    if n == 0:
        return
    cdef const float* xp = &x[0]
    cdef const float* lp = &labels[0]
    for k in prange(partials.shape[0], nogil=True, schedule='dynamic',
                    num_threads=threads_above(n, PARALLEL_MIN)):
        stop = (k + 1) * chunk
        if stop > n:
            stop = n
        total = 0
        for i in range(k * chunk, stop):
            t = _hinge(xp, lp, dim, i)
            if t < 0:
                t = t * <float>-1
            total = total + (<double>t * <double>t if squared else <double>t)
        partials[k] = total


def hinge_backward(const float[::1] x, const float[::1] labels, Py_ssize_t dim, bint squared,
                   float scale, float[::1] dx):
    """dx = scale * sign(u) (L1) or scale * u (L2), u = the signed hinge (-t at the label)."""
    cdef Py_ssize_t n = x.shape[0], i
    cdef float u, sign
    _same_size(n, labels.shape[0] * dim, 'hinge_backward')
    _same_size(n, dx.shape[0], 'hinge_backward')
    if n == 0:
        return
    cdef const float* xp = &x[0]
    cdef const float* lp = &labels[0]
    for i in prange(n, nogil=True, schedule='static',
                    num_threads=threads_above(n, PARALLEL_MIN)):
        u = _hinge(xp, lp, dim, i)
        if squared:
            dx[i] = scale * u
        else:
            sign = (<float>1 if u > 0 else <float>0) - (<float>1 if u < 0 else <float>0)
            dx[i] = scale * sign


# Sigmoid cross-entropy loss --------------------------------------------------------------------

def sigmoid_ce_partials(const float[::1] x, const float[::1] target, bint has_ignore,
                        int ignore_label, Py_ssize_t chunk, double[::1] partials,
                        long long[::1] counts):
    """Run sums of Caffe's stable per-element term
    x * (t - (x >= 0)) - log(1 + exp(x - 2 * x * (x >= 0))) (the loss is minus their sum),
    and run counts of the elements whose int(target) is not ignore_label."""
    cdef Py_ssize_t n = x.shape[0], k, i, stop
    cdef double total
    cdef long long valid
    cdef float v, positive
    _same_size(n, target.shape[0], 'sigmoid_ce_partials')
    _runs(n, chunk, partials.shape[0], 'sigmoid_ce_partials')
    _same_size(partials.shape[0], counts.shape[0], 'sigmoid_ce_partials')
    if n == 0:
        return
    cdef const float* xp = &x[0]
    cdef const float* tp = &target[0]
    for k in prange(partials.shape[0], nogil=True, schedule='dynamic',
                    num_threads=threads_above(n, PARALLEL_MIN // 4)):
        stop = (k + 1) * chunk
        if stop > n:
            stop = n
        total = 0
        valid = 0
        for i in range(k * chunk, stop):
            if has_ignore and <int>tp[i] == ignore_label:
                continue
            v = xp[i]
            positive = <float>1 if v >= 0 else <float>0
            total = total + <double>(v * (tp[i] - positive)
                                     - logf(<float>1 + expf(v - (<float>2 * v) * positive)))
            valid = valid + 1
        partials[k] = total
        counts[k] = valid


def sigmoid_ce_backward(const float[::1] x, const float[::1] target, bint has_ignore,
                        int ignore_label, float scale, float[::1] dx):
    """dx = scale * (sigmoid(x) - t), 0 where int(t) is ignore_label."""
    cdef Py_ssize_t n = x.shape[0], i
    _same_size(n, target.shape[0], 'sigmoid_ce_backward')
    _same_size(n, dx.shape[0], 'sigmoid_ce_backward')
    for i in prange(n, nogil=True, schedule='static',
                    num_threads=threads_above(n, PARALLEL_MIN // 4)):
        if has_ignore and <int>target[i] == ignore_label:
            dx[i] = scale * <float>0
        else:
            dx[i] = scale * (_sigmoid(x[i]) - target[i])


# Infogain loss ---------------------------------------------------------------------------------
# prob is (outer, K, inner); labels (outer * inner); H (K, K), row = the true label.

def infogain_partials(const float[::1] prob, const float[::1] labels, const float[::1] H,
                      Py_ssize_t K, Py_ssize_t inner, bint has_ignore, int ignore_label,
                      Py_ssize_t chunk, double[::1] partials, long long[::1] counts):
    """Run sums over positions of sum_l H[label, l] * log(max(prob[l], 1e-20)) (each product in
    float; the loss is minus their sum), and run counts of the positions not ignored."""
    cdef Py_ssize_t positions = labels.shape[0], k, p, stop, l, i, j, base
    cdef double total
    cdef long long valid
    cdef int label
    _same_size(prob.shape[0], positions * K, 'infogain_partials')
    _same_size(H.shape[0], K * K, 'infogain_partials')
    _runs(positions, chunk, partials.shape[0], 'infogain_partials')
    _same_size(partials.shape[0], counts.shape[0], 'infogain_partials')
    if positions == 0:
        return
    for k in prange(partials.shape[0], nogil=True, schedule='dynamic',
                    num_threads=threads_above(positions * K, PARALLEL_MIN // 4)):
        stop = (k + 1) * chunk
        if stop > positions:
            stop = positions
        total = 0
        valid = 0
        for p in range(k * chunk, stop):
            label = <int>labels[p]
            if has_ignore and label == ignore_label:
                continue
            i = p // inner
            j = p - i * inner
            base = i * K * inner + j
            for l in range(K):
                total = total + <double>(H[label * K + l]
                                         * logf(_clip_probability(prob[base + l * inner])))
            valid = valid + 1
        partials[k] = total
        counts[k] = valid


def infogain_backward(const float[::1] prob, const float[::1] labels, const float[::1] H,
                      const float[::1] row_sums, Py_ssize_t K, Py_ssize_t inner, bint has_ignore,
                      int ignore_label, float scale, float[::1] dx):
    """dx = scale * (prob * row_sums[label] - H[label, l]); scale * 0 at ignored positions."""
    cdef Py_ssize_t n = prob.shape[0], e, i, l, j
    cdef int label
    _same_size(n, labels.shape[0] * K, 'infogain_backward')
    _same_size(n, dx.shape[0], 'infogain_backward')
    _same_size(H.shape[0], K * K, 'infogain_backward')
    _same_size(row_sums.shape[0], K, 'infogain_backward')
    if n == 0:
        return
    for e in prange(n, nogil=True, schedule='static',
                    num_threads=threads_above(n, PARALLEL_MIN)):
        i = e // (K * inner)
        l = (e // inner) % K
        j = e % inner
        label = <int>labels[i * inner + j]
        if has_ignore and label == ignore_label:
            dx[e] = scale * <float>0
        else:
            dx[e] = scale * (prob[e] * row_sums[label] - H[label * K + l])


# Multinomial logistic loss ---------------------------------------------------------------------

def clipped_log_sum(const float[::1] p):
    """sum of log(max(p, 1e-20)) (logf of each, added in double in order): one probability per
    item, so few terms."""
    cdef Py_ssize_t i
    cdef double total = 0
    for i in range(p.shape[0]):
        total = total + <double>logf(_clip_probability(p[i]))
    return total


def clip_probabilities(float[::1] p):
    """p = max(p, 1e-20), in place."""
    cdef Py_ssize_t i
    for i in range(p.shape[0]):
        p[i] = _clip_probability(p[i])
