"""Row scatter-add for the layers that gather rows by an index (BatchReindex's data gradient,
Embed's weight gradient): destination row k receives the source rows whose index is k, added in
ascending source order, which is the order of Caffe's sequential loop (`dst[index[m]] +=
src[m]` for m = 0, 1, ...), so the float32 sums are Caffe's. Rows are split across OpenMP
threads by destination (each owns the rows it writes), so results do not depend on the thread
count.
"""
from cython.parallel cimport prange
from libc.string cimport memset

import numpy as np

from ._parallel cimport threads_above

cdef enum:
    PARALLEL_MIN_WORK = 1 << 16  # values added below which a call runs on one thread


def row_order(index, Py_ssize_t rows):
    """(order, begin) for scatter_add_rows: order lists the source rows by destination
    (ascending within each), begin[k]..begin[k + 1] is destination k's part. index must hold
    integers in [0, rows)."""
    index = np.asarray(index, np.int64).reshape(-1)
    order = np.argsort(index, kind='stable').astype(np.int32)
    begin = np.zeros(rows + 1, np.int32)
    np.cumsum(np.bincount(index, minlength=rows), out=begin[1:])
    return order, begin


def scatter_add_rows(const float[:, ::1] src, const int[::1] order, const int[::1] begin,
                     float[:, ::1] dst, bint accumulate):
    """dst[k] (+)= the rows src[order[begin[k]:begin[k + 1]]] in that order; without
    accumulate each dst row starts from 0."""
    cdef Py_ssize_t rows = dst.shape[0], width = dst.shape[1], k, m, j
    if src.shape[1] != width or begin.shape[0] != rows + 1:
        raise ValueError('src (%d x %d), dst (%d x %d) and begin (%d) do not agree'
                         % (src.shape[0], src.shape[1], rows, width, begin.shape[0]))
    if rows == 0 or width == 0:
        return
    if begin[rows] > order.shape[0]:
        raise ValueError('begin runs past the order array')
    cdef float* out = &dst[0, 0]
    cdef const float* row
    cdef const float* base = &src[0, 0] if src.shape[0] else NULL
    cdef const int* ordered = &order[0] if order.shape[0] else NULL
    cdef int threads = threads_above(src.shape[0] * width + rows * width, PARALLEL_MIN_WORK)
    for k in prange(rows, nogil=True, schedule='static', num_threads=threads):
        if not accumulate:
            memset(out + k * width, 0, width * sizeof(float))
        for m in range(begin[k], begin[k + 1]):
            row = base + <Py_ssize_t>ordered[m] * width
            for j in range(width):
                out[k * width + j] += row[j]
