"""ArgMax's top-k selection (caffe.layers.argmax).

Each row of `dim` values (stride `inner` apart, rows indexed by (outer, inner) position) keeps
its k largest (value, index) pairs in descending order of the pair, as Caffe's partial_sort with
std::greater<std::pair<Dtype, int>> orders them: equal values put the larger index first. The
running top k is kept in the output row itself, as indices, while the row is scanned.
Rows are split across OpenMP threads (each owns its output row), so results do not depend on
the thread count.
"""
from cython.parallel cimport prange

from ._parallel cimport threads_above

cdef enum:
    PARALLEL_MIN_WORK = 1 << 16  # values scanned below which a call runs on one thread

# What the output rows hold (ArgMaxLayer::Forward_cpu's three layouts).
cdef enum:
    LAYOUT_INDICES = 0  # k indices, stride `inner` (with or without an axis)
    LAYOUT_VALUES = 1   # k values, stride `inner` (out_max_val with an axis)
    LAYOUT_BOTH = 2     # k indices then k values, contiguous (out_max_val without an axis)

INDICES, VALUES, BOTH = LAYOUT_INDICES, LAYOUT_VALUES, LAYOUT_BOTH


cdef void _row(const float* x, Py_ssize_t dim, Py_ssize_t inner, int k, float* out,
               Py_ssize_t out_stride) noexcept nogil:
    # out[j * out_stride], j < filled, holds the indices of the best pairs so far, best first.
    cdef Py_ssize_t i, j, filled = 0, at
    cdef float v, w
    cdef Py_ssize_t b
    for i in range(dim):
        v = x[i * inner]
        # Where (v, i) goes: after every kept pair greater than it. A kept pair (w, b) has
        # b < i, so (v, i) > (w, b) exactly when v >= w.
        at = filled
        while at > 0:
            b = <Py_ssize_t>out[(at - 1) * out_stride]
            w = x[b * inner]
            if v >= w:
                at -= 1
            else:
                break
        if at >= k:
            continue
        j = filled if filled < k else k - 1
        while j > at:
            out[j * out_stride] = out[(j - 1) * out_stride]
            j -= 1
        out[at * out_stride] = <float>i
        if filled < k:
            filled += 1


def top_k(const float[::1] x, Py_ssize_t outer, Py_ssize_t dim, Py_ssize_t inner, int k,
          int layout, float[::1] out):
    """x is (outer, dim, inner); out holds k entries per row in `layout` (INDICES, VALUES or
    BOTH; BOTH needs inner == 1)."""
    if x.shape[0] != outer * dim * inner:
        raise ValueError('x has %d values; expected %d x %d x %d' % (x.shape[0], outer, dim, inner))
    if not 1 <= k <= dim:
        raise ValueError('top_k %d must be within 1..%d' % (k, dim))
    if layout == LAYOUT_BOTH and inner != 1:
        raise ValueError('the index-and-value layout has rows of one position')
    if out.shape[0] != outer * k * inner * (2 if layout == LAYOUT_BOTH else 1):
        raise ValueError('out has %d values; expected %d' %
                         (out.shape[0], outer * k * inner * (2 if layout == LAYOUT_BOTH else 1)))
    cdef Py_ssize_t rows = outer * inner, r, o, p, j, stride, base
    if rows == 0:
        return
    cdef int threads = threads_above(rows * dim, PARALLEL_MIN_WORK)
    cdef const float* src = &x[0]
    cdef float* dst = &out[0]
    for r in prange(rows, nogil=True, schedule='static', num_threads=threads):
        o = r // inner
        p = r % inner
        if layout == LAYOUT_BOTH:
            base = 2 * o * k
            stride = 1
        else:
            base = o * k * inner + p
            stride = inner
        _row(src + o * dim * inner + p, dim, inner, k, dst + base, stride)
        if layout == LAYOUT_BOTH:
            for j in range(k):
                dst[base + k + j] = src[o * dim + <Py_ssize_t>dst[base + j]]
        elif layout == LAYOUT_VALUES:
            for j in range(k):
                dst[base + j * stride] = src[o * dim * inner + p +
                                             (<Py_ssize_t>dst[base + j * stride]) * inner]
