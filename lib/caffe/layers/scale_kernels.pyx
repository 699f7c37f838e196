"""Scale's and Bias's CPU kernels on a blob seen as (outer, dim, inner), where the scale or bias
has dim entries broadcast over outer and inner.

One pass per element with no blob-sized temporaries; outputs may alias inputs (both layers work
in place). y = x * s + b rounds the product before the sum (no fused multiply-add), as Caffe's
ScaleLayer followed by its internal BiasLayer does. Sums accumulate in double per entry.
"""
from cython.parallel cimport prange

from ._parallel cimport threads_for


def scale_bias(const float[:, :, ::1] x, const float[::1] s, const float[::1] b,
               float[:, :, ::1] y):
    """y = x * s[j] + b[j]; s or b (not both) may be None (then that step is skipped)."""
    cdef Py_ssize_t outer = x.shape[0], dim = x.shape[1], inner = x.shape[2]
    cdef Py_ssize_t p, i, j
    cdef bint has_s = s is not None, has_b = b is not None
    cdef float sj, bj, v
    cdef const float* src
    cdef float* dst
    if y.shape[0] != outer or y.shape[1] != dim or y.shape[2] != inner:
        raise ValueError('the output\'s shape differs from the input\'s %s'
                         % ((outer, dim, inner),))
    if not has_s and not has_b:
        raise ValueError('scale_bias needs a scale or a bias')
    if (has_s and s.shape[0] != dim) or (has_b and b.shape[0] != dim):
        raise ValueError('scale and bias need %d entries' % dim)
    if outer * dim * inner == 0:
        return
    for p in prange(outer * dim, nogil=True, schedule='static',
                    num_threads=threads_for(outer * dim * inner)):
        j = p % dim
        sj = s[j] if has_s else 1
        bj = b[j] if has_b else 0
        src = &x[0, 0, 0] + p * inner
        dst = &y[0, 0, 0] + p * inner
        if has_s and has_b:
            for i in range(inner):
                v = src[i] * sj
                dst[i] = v + bj
        elif has_s:
            for i in range(inner):
                dst[i] = src[i] * sj
        else:
            for i in range(inner):
                dst[i] = src[i] + bj


def sum_over_outer_inner(const float[:, :, ::1] dy, const float[:, :, ::1] x, double[::1] out):
    """out[j] = sum over outer and inner of dy (x None) or of float32 dy * x."""
    cdef Py_ssize_t outer = dy.shape[0], dim = dy.shape[1], inner = dy.shape[2]
    cdef Py_ssize_t j, o, i
    cdef bint has_x = x is not None
    cdef double total
    cdef float prod
    cdef const float* g
    cdef const float* v
    if has_x and (x.shape[0] != outer or x.shape[1] != dim or x.shape[2] != inner):
        raise ValueError('x\'s shape differs from dy\'s %s' % ((outer, dim, inner),))
    if out.shape[0] != dim:
        raise ValueError('out needs %d entries' % dim)
    for j in prange(dim, nogil=True, schedule='static',
                    num_threads=threads_for(outer * dim * inner)):
        total = 0
        for o in range(outer):
            g = &dy[o, j, 0]
            if has_x:
                v = &x[o, j, 0]
                for i in range(inner):
                    prod = g[i] * v[i]
                    total = total + prod
            else:
                for i in range(inner):
                    total = total + g[i]
        out[j] = total
