"""Single-precision matrix products cut into parts by their shape alone (caffe.gemm says why).

A product C = A B (m x n, inner dimension k; a stack of `groups` of them) is cut into `parts`
along one dimension, chosen from the shape only:
  SPLIT_N  columns of C (each part reads all of A: A is packed once per part)
  SPLIT_M  rows of C (each part reads all of B)
  SPLIT_K  slices of the inner dimension: each part's product goes to its own scratch matrix and
           the scratch matrices are then added element by element, part 0 first
Every part is one call of numpy's OpenBLAS sgemm (CBLAS, row-major) held at one thread; the
OpenMP threads take the parts on demand. The parts, and the calls, are the same whatever the
number of threads and whichever thread runs which part, so the result is too.
"""
from cython.parallel cimport prange
from libc.stdint cimport int64_t, intptr_t
from openmp cimport omp_get_max_threads

import threading

import numpy as np

ctypedef void (*sgemm64_t)(int, int, int, int64_t, int64_t, int64_t, float, const float*,
                           int64_t, const float*, int64_t, float, float*, int64_t) noexcept nogil
ctypedef void (*sgemm32_t)(int, int, int, int, int, int, float, const float*, int,
                           const float*, int, float, float*, int) noexcept nogil
ctypedef int (*get_threads_t)() noexcept nogil
ctypedef void (*set_threads64_t)(int64_t) noexcept nogil
ctypedef void (*set_threads32_t)(int) noexcept nogil

cdef enum:
    ROW_MAJOR = 101          # CBLAS_ORDER / CBLAS_TRANSPOSE values
    NO_TRANS = 111
    TRANS = 112
    SPLIT_N = 0
    SPLIT_M = 1
    SPLIT_K = 2
    # A part has at least this many multiply-adds (about 50-100 microseconds on one core):
    # below that, waking a thread costs more than it saves.
    PART_MULTS = 1 << 22
    MAX_PARTS = 64
    # Cutting costs memory traffic: each part of a SPLIT_N product packs all of A again (m k
    # floats), of a SPLIT_M product all of B (k n), and a SPLIT_K part writes a scratch C that
    # the sum reads back (2 m n). Counting a float packed as PACK_COST multiply-adds, the parts
    # are as many as keep that extra work under 1/OVERHEAD of the product's (on the 2-core AMD
    # EPYC, one thread: the products of ZF's training took 1-12% more CPU time in these parts
    # than in one call).
    PACK_COST = 64
    OVERHEAD = 16
    # Parts start at multiples of ALIGN rows, columns or inner indices (OpenBLAS's kernels work
    # on tiles of up to 16 and round the last one).
    ALIGN = 16

cdef sgemm64_t _sgemm64 = NULL
cdef sgemm32_t _sgemm32 = NULL
cdef get_threads_t _get_threads = NULL
cdef set_threads64_t _set_threads64 = NULL
cdef set_threads32_t _set_threads32 = NULL


def bind(intptr_t sgemm, intptr_t get_threads, intptr_t set_threads, bint ilp64):
    """Takes the addresses of numpy's OpenBLAS cblas_sgemm, openblas_get_num_threads and
    openblas_set_num_threads (64-bit integers where ilp64)."""
    global _sgemm64, _sgemm32, _get_threads, _set_threads64, _set_threads32
    _sgemm64, _sgemm32, _set_threads64, _set_threads32 = NULL, NULL, NULL, NULL
    if ilp64:
        _sgemm64 = <sgemm64_t>sgemm
        _set_threads64 = <set_threads64_t>set_threads
    else:
        _sgemm32 = <sgemm32_t>sgemm
        _set_threads32 = <set_threads32_t>set_threads
    _get_threads = <get_threads_t>get_threads
    _single_threaded()


def bound():
    return _sgemm64 != NULL or _sgemm32 != NULL


cdef void _single_threaded() noexcept nogil:
    # Whatever else in the process asked OpenBLAS for threads, each part runs on one.
    if _get_threads() != 1:
        if _set_threads64 != NULL:
            _set_threads64(1)
        else:
            _set_threads32(1)


cdef struct Operand:
    const float* data       # element (0, 0) of the first matrix of the stack
    int64_t stack_stride    # elements from one matrix of the stack to the next (0: shared)
    int64_t ld              # leading dimension, as CBLAS takes it
    bint trans              # stored transposed: element (i, j) at data[j * ld + i]


cdef struct Product:
    Operand a, b
    float* c
    int64_t c_stride, ldc
    int64_t m, n, k, groups
    int split, parts
    float beta
    float* scratch          # SPLIT_K: groups * parts matrices of m x n


cdef inline void _call(bint ta, bint tb, int64_t m, int64_t n, int64_t k, const float* a,
                       int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                       int64_t ldc) noexcept nogil:
    cdef int oa = TRANS if ta else NO_TRANS, ob = TRANS if tb else NO_TRANS
    if _sgemm64 != NULL:
        _sgemm64(ROW_MAJOR, oa, ob, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
    else:
        _sgemm32(ROW_MAJOR, oa, ob, <int>m, <int>n, <int>k, 1, a, <int>lda, b, <int>ldb, beta,
                 c, <int>ldc)


cdef inline int64_t _edge(int64_t size, int64_t parts, int64_t i) noexcept nogil:
    # Start of part i of `size` (part `parts` ends it): equal shares, rounded down to ALIGN.
    if i >= parts:
        return size
    return (size * i // parts) // ALIGN * ALIGN


cdef void _part(const Product* p, Py_ssize_t index) noexcept nogil:
    cdef int64_t g = index // p.parts, i = index % p.parts
    cdef const float* a = p.a.data + g * p.a.stack_stride
    cdef const float* b = p.b.data + g * p.b.stack_stride
    cdef float* c = p.c + g * p.c_stride
    cdef int64_t lo = 0, hi = 0
    if p.split == SPLIT_N:
        lo = _edge(p.n, p.parts, i)
        hi = _edge(p.n, p.parts, i + 1)
        b = b + (lo * p.b.ld if p.b.trans else lo)
        _call(p.a.trans, p.b.trans, p.m, hi - lo, p.k, a, p.a.ld, b, p.b.ld, p.beta, c + lo,
              p.ldc)
    elif p.split == SPLIT_M:
        lo = _edge(p.m, p.parts, i)
        hi = _edge(p.m, p.parts, i + 1)
        a = a + (lo if p.a.trans else lo * p.a.ld)
        _call(p.a.trans, p.b.trans, hi - lo, p.n, p.k, a, p.a.ld, b, p.b.ld, p.beta,
              c + lo * p.ldc, p.ldc)
    else:
        lo = _edge(p.k, p.parts, i)
        hi = _edge(p.k, p.parts, i + 1)
        a = a + (lo * p.a.ld if p.a.trans else lo)
        b = b + (lo if p.b.trans else lo * p.b.ld)
        _call(p.a.trans, p.b.trans, p.m, p.n, hi - lo, a, p.a.ld, b, p.b.ld, 0,
              p.scratch + index * p.m * p.n, p.n)


cdef void _sum_parts(const Product* p, Py_ssize_t row) noexcept nogil:
    # Row `row` of the stack's C: the parts' products added in part order, then added to C's
    # previous value when accumulating (beta 1).
    cdef int64_t g = row // p.m, r = row % p.m, j, i
    cdef const float* first = p.scratch + (g * p.parts * p.m + r) * p.n
    cdef int64_t step = p.m * p.n
    cdef float* c = p.c + g * p.c_stride + r * p.ldc
    cdef float t
    for j in range(p.n):
        t = first[j]
        for i in range(1, p.parts):
            t = t + first[i * step + j]
        if p.beta != 0:
            t = c[j] + t
        c[j] = t


cdef int _plan(Product* p) noexcept nogil:
    # Chooses split and parts from the shape alone: along the dimension that allows the most
    # parts (ties: the least extra traffic), as many as the work (PART_MULTS each, at most
    # MAX_PARTS) and the overhead bound allow.
    cdef int64_t m = p.m, n = p.n, k = p.k, limit, by_n, by_m, by_k
    limit = min(<int64_t>MAX_PARTS, m * n * k // PART_MULTS)
    # (parts - 1) * m * k * PACK_COST <= m * n * k / OVERHEAD, and alike for SPLIT_M;
    # 2 * parts * m * n * PACK_COST <= m * n * k / OVERHEAD for SPLIT_K.
    by_n = min(limit, 1 + n // (PACK_COST * OVERHEAD), n // ALIGN)
    by_m = min(limit, 1 + m // (PACK_COST * OVERHEAD), m // ALIGN)
    by_k = min(limit, k // (2 * PACK_COST * OVERHEAD), k // ALIGN)
    p.split = SPLIT_N
    p.parts = <int>max(by_n, 1)
    if by_m > p.parts or (by_m == p.parts and by_m > 1 and k * n < m * k):
        p.split = SPLIT_M
        p.parts = <int>by_m
    if by_k > p.parts:
        p.split = SPLIT_K
        p.parts = <int>by_k
    return 0


cdef int _operand(x, Operand* op, int64_t rows, int64_t cols, str name) except -1:
    # Layout of a (stack, rows, cols) float32 array as CBLAS takes it; 1 if it has none.
    cdef const float[:, :, :] v = x
    cdef Py_ssize_t s0 = v.strides[0], s1 = v.strides[1], s2 = v.strides[2]
    if s0 % 4 or s1 % 4 or s2 % 4 or s0 < 0 or s1 < 0 or s2 < 0:
        return 1
    op.data = &v[0, 0, 0]
    op.stack_stride = s0 // 4 if v.shape[0] > 1 else 0
    if s2 == 4 or cols == 1:
        op.trans = False
        op.ld = s1 // 4 if rows > 1 else cols
        return 0 if op.ld >= max(cols, 1) else 1
    if s1 == 4 or rows == 1:
        op.trans = True
        op.ld = s2 // 4 if cols > 1 else rows
        return 0 if op.ld >= max(rows, 1) else 1
    return 1


_local = threading.local()


def _scratch(Py_ssize_t size):
    # One buffer per calling thread, kept: SPLIT_K needs it for every such product.
    buf = getattr(_local, 'buffer', None)
    if buf is None or buf.size < size:
        buf = _local.buffer = np.empty(size, np.float32)
    return buf


def sgemm(a, b, c, bint accumulate=False):
    """c = a @ b, or c += a @ b where accumulate, for float32 stacks a (g or 1, m, k),
    b (g or 1, k, n) and c (g, m, n) with unit stride along some axis of each matrix (any
    numpy view: transposes, column slices). Returns False, having done nothing, where an
    operand has no such layout or no BLAS is bound; the caller then uses numpy."""
    if not bound():
        return False
    cdef Product p
    cdef Py_ssize_t count, i
    cdef float[:, :, :] cv = c
    p.groups, p.m, p.n = cv.shape[0], cv.shape[1], cv.shape[2]
    p.k = a.shape[2]
    if (a.shape[1] != p.m or b.shape[1] != p.k or b.shape[2] != p.n
            or a.shape[0] not in (1, p.groups) or b.shape[0] not in (1, p.groups)):
        raise ValueError('sgemm: shapes %s @ %s do not give %s'
                         % (tuple(a.shape), tuple(b.shape), tuple(c.shape)))
    if p.groups == 0 or p.m == 0 or p.n == 0:
        return True
    if cv.strides[2] != 4 or cv.strides[1] % 4 or cv.strides[0] % 4:
        return False
    p.c = &cv[0, 0, 0]
    p.c_stride = cv.strides[0] // 4
    p.ldc = cv.strides[1] // 4 if p.m > 1 else p.n
    if p.ldc < p.n:
        return False
    if p.k == 0:
        if not accumulate:
            c[...] = 0
        return True
    if _operand(a, &p.a, p.m, p.k, 'a') or _operand(b, &p.b, p.k, p.n, 'b'):
        return False
    p.beta = 1 if accumulate else 0
    _plan(&p)
    count = p.groups * p.parts
    scratch = None
    if p.split == SPLIT_K:
        scratch = _scratch(count * p.m * p.n)
        p.scratch = <float*><intptr_t>scratch.ctypes.data
    cdef int threads = min(omp_get_max_threads(), count)
    if p.groups * p.m * p.n * p.k < 2 * PART_MULTS:
        threads = 1
    with nogil:
        _single_threaded()
        if threads <= 1:
            for i in range(count):
                _part(&p, i)
        else:
            for i in prange(count, schedule='dynamic', num_threads=threads):
                _part(&p, i)
        if p.split == SPLIT_K:
            count = p.groups * p.m
            threads = min(omp_get_max_threads(), count) if count * p.n >= (1 << 18) else 1
            for i in prange(count, schedule='static', num_threads=threads):
                _sum_parts(&p, i)
    return True


def plan(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k):
    """(split, parts) sgemm chooses for an m x n product with inner dimension k ('n', 'm' or
    'k': the dimension it cuts)."""
    cdef Product p
    p.m, p.n, p.k = m, n, k
    _plan(&p)
    return 'nmk'[p.split], p.parts
