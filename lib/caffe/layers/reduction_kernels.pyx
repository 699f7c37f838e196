"""Reduction's row sums (caffe.layers.reduction): SUM/MEAN (sum of x), ASUM (sum of |x|) and
SUMSQ (sum of float32 x*x) of each row, accumulated in double and rounded to float32 once, then
times coeff (skipped when coeff is 1, as Caffe skips its caffe_scal). One pass over the bottom,
no temporaries; rows are split across OpenMP threads (each owns its rows), so results do not
depend on the thread count.
"""
from cython.parallel cimport prange
from libc.math cimport fabsf

from ._parallel cimport threads_above

cdef enum:
    PARALLEL_MIN_WORK = 1 << 16  # values below which a call runs on one thread

# ReductionParameter.ReductionOp's numbers.
cdef enum:
    OP_SUM = 1
    OP_ASUM = 2
    OP_SUMSQ = 3
    OP_MEAN = 4


def reduce_rows(const float[:, ::1] x, int op, float coeff, float[::1] out):
    cdef Py_ssize_t rows = x.shape[0], dim = x.shape[1], r, j
    if out.shape[0] != rows:
        raise ValueError('out has %d entries for %d rows' % (out.shape[0], rows))
    if op not in (OP_SUM, OP_ASUM, OP_SUMSQ, OP_MEAN):
        raise ValueError('unknown reduction op %d' % op)
    cdef double total
    cdef float v, value
    cdef int threads = threads_above(rows * dim, PARALLEL_MIN_WORK)
    for r in prange(rows, nogil=True, schedule='static', num_threads=threads):
        total = 0
        for j in range(dim):
            v = x[r, j]
            if op == OP_ASUM:
                v = fabsf(v)
            elif op == OP_SUMSQ:
                v = v * v
            total = total + v
        value = <float>total
        if coeff != 1:
            value = value * coeff
        out[r] = value
