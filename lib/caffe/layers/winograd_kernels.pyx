"""Transforms of Winograd's minimal filtering for 3x3, stride-1 convolution (Lavin and Gray,
"Fast Algorithms for Convolutional Neural Networks", CVPR 2016), used by caffe/layers/winograd.py.

F(m x m, 3 x 3) computes an m x m output tile from an a x a input tile (a = m + 2) as
A^T [(G g G^T) . (B^T d B)] A: with the a*a transformed filters U and transformed input tiles V
laid out as (a*a, K, C) and (a*a, C, tiles), the element-wise products summed over channels are
a*a matrix products U[xi] @ V[xi], which numpy's BLAS does; the filters' transform is winograd.py's (a product in
double precision); these kernels do the rest:

- input_transform: V = B^T d B of every a x a input tile (tile rows row0..row1-1, tiles m apart,
  the first at -pad; zero outside the image).
- output_transform: Y = A^T M A (+ bias) of every tile of the products M, written into the
  top's rows (the last tile row and column clipped to the output).
- gradient_transform: for the weight gradient as F(3 x 3, 2 x 2), the top diff's 2 x 2 tiles
  through G' (4 x 2); the input's tiles are input_transform's with m = 2.

The matrices are winograd.py's (built there from the interpolation points 0, 1, -1, (2, -2,)
infinity, rows of B^T scaled to integers); the kernels spell them out term by term, which the
tests check against that construction. Every output element is computed by one thread in a
fixed order, so results do not depend on the number of threads. Work is shared out by
(channel, tile row) on demand, as the other kernels do.
"""
import numpy as np

from cython.parallel cimport parallel, prange
from libc.string cimport memcpy, memset
from openmp cimport omp_get_thread_num

from ._parallel cimport threads_above

cdef enum:
    PARALLEL_MIN_WORK = 1 << 17  # values written below which a call runs on one thread


cdef int _alpha(int tile) except -1:
    if tile != 2 and tile != 4:
        raise ValueError('Winograd tile must be 2 or 4, got %d' % tile)
    return tile + 2


cdef int _check_rows(int row0, int row1, int tiles_h) except -1:
    if not 0 <= row0 <= row1 <= tiles_h:
        raise ValueError('tile rows [%d, %d) are not within [0, %d)' % (row0, row1, tiles_h))
    return 0


# Input tiles -------------------------------------------------------------------------------------

cdef void _load_rows(const float* plane, Py_ssize_t height, Py_ssize_t width, Py_ssize_t y0,
                     Py_ssize_t x0, Py_ssize_t a, Py_ssize_t span, float* rows) noexcept nogil:
    # a rows of span floats: image rows y0.., columns x0.., zero outside the image.
    cdef Py_ssize_t j, y, lo, hi
    cdef float* row
    lo = -x0 if x0 < 0 else 0
    hi = width - x0
    if hi > span:
        hi = span
    if hi < lo:
        hi = lo
    for j in range(a):
        row = rows + j * span
        y = y0 + j
        if y < 0 or y >= height or hi == lo:
            memset(row, 0, span * sizeof(float))
            continue
        if lo > 0:
            memset(row, 0, lo * sizeof(float))
        memcpy(row + lo, plane + y * width + x0 + lo, (hi - lo) * sizeof(float))
        if hi < span:
            memset(row + hi, 0, (span - hi) * sizeof(float))


cdef void _input_row4(const float* plane, Py_ssize_t height, Py_ssize_t width, Py_ssize_t y0,
                      Py_ssize_t x0, Py_ssize_t tiles, float* rows, float* dst,
                      Py_ssize_t xi_stride) noexcept nogil:
    # F(2x2, 3x3): B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, -1, 0, 1]].
    cdef Py_ssize_t span = 2 * tiles + 2, x, p, i
    cdef float* r0 = rows
    cdef float* r1 = rows + span
    cdef float* r2 = rows + 2 * span
    cdef float* r3 = rows + 3 * span
    cdef float d0, d1, d2, d3, e
    cdef float* s
    cdef float* o
    _load_rows(plane, height, width, y0, x0, 4, span, rows)
    # Down the columns, in place (row 2 is read by three outputs: kept in a register).
    for x in range(span):
        d0 = r0[x]
        d1 = r1[x]
        d2 = r2[x]
        d3 = r3[x]
        r0[x] = d0 - d2
        r1[x] = d1 + d2
        r2[x] = d2 - d1
        r3[x] = d3 - d1
    # Along the rows, tile by tile: output (i, l) goes to plane i*4 + l.
    for i in range(4):
        s = rows + i * span
        o = dst + 4 * i * xi_stride
        for p in range(tiles):
            d0 = s[2 * p]
            d1 = s[2 * p + 1]
            d2 = s[2 * p + 2]
            d3 = s[2 * p + 3]
            o[p] = d0 - d2
            o[xi_stride + p] = d1 + d2
            o[2 * xi_stride + p] = d2 - d1
            o[3 * xi_stride + p] = d3 - d1


cdef inline void _bt6(float d0, float d1, float d2, float d3, float d4, float d5, float* o,
                      Py_ssize_t stride) noexcept nogil:
    # F(4x4, 3x3): B^T = [[4, 0, -5, 0, 1, 0], [0, 4, 4, -1, -1, 0], [0, -4, 4, 1, -1, 0],
    #                     [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]].
    o[0] = 4 * d0 - 5 * d2 + d4
    o[stride] = 4 * (d1 + d2) - (d3 + d4)
    o[2 * stride] = 4 * (d2 - d1) + (d3 - d4)
    o[3 * stride] = 2 * (d3 - d1) + (d4 - d2)
    o[4 * stride] = 2 * (d1 - d3) + (d4 - d2)
    o[5 * stride] = 4 * d1 - 5 * d3 + d5


cdef void _input_row6(const float* plane, Py_ssize_t height, Py_ssize_t width, Py_ssize_t y0,
                      Py_ssize_t x0, Py_ssize_t tiles, float* rows, float* dst,
                      Py_ssize_t xi_stride) noexcept nogil:
    cdef Py_ssize_t span = 4 * tiles + 2, x, p, i
    cdef float* t = rows + 6 * span
    cdef float* s
    _load_rows(plane, height, width, y0, x0, 6, span, rows)
    for x in range(span):
        _bt6(rows[x], rows[span + x], rows[2 * span + x], rows[3 * span + x],
             rows[4 * span + x], rows[5 * span + x], t + x, span)
    for i in range(6):
        s = t + i * span
        for p in range(tiles):
            _bt6(s[4 * p], s[4 * p + 1], s[4 * p + 2], s[4 * p + 3], s[4 * p + 4],
                 s[4 * p + 5], dst + 6 * i * xi_stride + p, xi_stride)


def input_transform(const float[:, :, ::1] image, int tile, int pad_h, int pad_w, int row0,
                    int row1, int tiles_w, float[:, :, ::1] out):
    """out (a*a, C, (row1 - row0) * tiles_w) = B^T d B of the input tiles of tile rows
    row0..row1-1: tile (ty, tx) is the a x a block of image (C, H, W) whose corner is
    (ty*tile - pad_h, tx*tile - pad_w)."""
    cdef int a = _alpha(tile)
    cdef Py_ssize_t C = image.shape[0], H = image.shape[1], W = image.shape[2]
    cdef Py_ssize_t rows = row1 - row0
    if rows < 0 or tiles_w < 0:
        raise ValueError('input_transform: bad tile rows [%d, %d) or tiles_w %d'
                         % (row0, row1, tiles_w))
    if out.shape[0] != a * a or out.shape[1] != C or out.shape[2] != rows * tiles_w:
        raise ValueError('input_transform: output has shape (%d, %d, %d); expected (%d, %d, %d)'
                         % (out.shape[0], out.shape[1], out.shape[2], a * a, C, rows * tiles_w))
    if C == 0 or rows == 0 or tiles_w == 0:
        return
    cdef Py_ssize_t span = tile * tiles_w + 2
    cdef Py_ssize_t xi_stride = C * rows * tiles_w, u, c, r
    cdef const float* src = &image[0, 0, 0]
    cdef float* dst = &out[0, 0, 0]
    cdef int threads = threads_above(a * a * xi_stride, PARALLEL_MIN_WORK)
    cdef Py_ssize_t each = 2 * a * span
    cdef float[::1] buffers = np.empty(threads * each, np.float32)
    cdef float* scratch = NULL
    with nogil, parallel(num_threads=threads):
        scratch = &buffers[0] + omp_get_thread_num() * each
        for u in prange(C * rows, schedule='dynamic'):
            c = u // rows
            r = u % rows
            if tile == 2:
                _input_row4(src + c * H * W, H, W, (row0 + r) * 2 - pad_h, -pad_w, tiles_w,
                            scratch, dst + (c * rows + r) * tiles_w, xi_stride)
            else:
                _input_row6(src + c * H * W, H, W, (row0 + r) * 4 - pad_h, -pad_w, tiles_w,
                            scratch, dst + (c * rows + r) * tiles_w, xi_stride)


# Output tiles ------------------------------------------------------------------------------------

cdef void _output_row2(const float* m, Py_ssize_t xi_stride, Py_ssize_t tiles, float bias,
                       float* t, float* out, Py_ssize_t out_w, Py_ssize_t out_rows) noexcept nogil:
    # F(2x2, 3x3): A^T = [[1, 1, 1, 0], [0, 1, -1, 1]]. t: 2 x 4 rows of tiles floats.
    cdef Py_ssize_t l, p, a, full = out_w // 2
    cdef float v0, v1, v2, v3
    cdef float* o
    cdef const float* s
    for l in range(4):
        for p in range(tiles):
            v0 = m[l * xi_stride + p]
            v1 = m[(4 + l) * xi_stride + p]
            v2 = m[(8 + l) * xi_stride + p]
            v3 = m[(12 + l) * xi_stride + p]
            t[l * tiles + p] = v0 + v1 + v2
            t[(4 + l) * tiles + p] = v1 - v2 + v3
    for a in range(out_rows):
        s = t + 4 * a * tiles
        o = out + a * out_w
        for p in range(full):
            o[2 * p] = (s[p] + s[tiles + p] + s[2 * tiles + p]) + bias
            o[2 * p + 1] = (s[tiles + p] - s[2 * tiles + p] + s[3 * tiles + p]) + bias
        if full < tiles:
            o[2 * full] = (s[full] + s[tiles + full] + s[2 * tiles + full]) + bias


cdef inline void _at4(float v0, float v1, float v2, float v3, float v4, float v5,
                      float* y) noexcept nogil:
    # F(4x4, 3x3): A^T = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
    #                     [0, 1, -1, 8, -8, 1]].
    cdef float sp = v1 + v2, sm = v1 - v2, tp = v3 + v4, tm = v3 - v4
    y[0] = v0 + sp + tp
    y[1] = sm + 2 * tm
    y[2] = sp + 4 * tp
    y[3] = sm + 8 * tm + v5


cdef void _output_row4(const float* m, Py_ssize_t xi_stride, Py_ssize_t tiles, float bias,
                       float* t, float* out, Py_ssize_t out_w, Py_ssize_t out_rows) noexcept nogil:
    # t: 4 x 6 rows of tiles floats, then 4 floats of one tile's row.
    cdef Py_ssize_t l, p, a, b, cols
    cdef float y[4]
    cdef float* o
    cdef const float* s
    for l in range(6):
        for p in range(tiles):
            _at4(m[l * xi_stride + p], m[(6 + l) * xi_stride + p], m[(12 + l) * xi_stride + p],
                 m[(18 + l) * xi_stride + p], m[(24 + l) * xi_stride + p],
                 m[(30 + l) * xi_stride + p], y)
            for a in range(4):
                t[(6 * a + l) * tiles + p] = y[a]
    for a in range(out_rows):
        s = t + 6 * a * tiles
        o = out + a * out_w
        for p in range(tiles):
            _at4(s[p], s[tiles + p], s[2 * tiles + p], s[3 * tiles + p], s[4 * tiles + p],
                 s[5 * tiles + p], y)
            cols = out_w - 4 * p
            if cols >= 4:
                o[4 * p] = y[0] + bias
                o[4 * p + 1] = y[1] + bias
                o[4 * p + 2] = y[2] + bias
                o[4 * p + 3] = y[3] + bias
            else:
                for b in range(cols):
                    o[4 * p + b] = y[b] + bias


def output_transform(const float[:, :, ::1] products, int tile, const float[::1] bias,
                     int row0, int row1, int tiles_w, float[:, :, ::1] out):
    """Writes A^T M A (+ bias[k]) of each tile of products (a*a, K, (row1 - row0) * tiles_w)
    into out (K, out_h, out_w) at rows row*tile.., columns tx*tile.. (clipped to out). bias may
    be None."""
    cdef int a = _alpha(tile)
    cdef Py_ssize_t K = out.shape[0], out_h = out.shape[1], out_w = out.shape[2]
    cdef Py_ssize_t rows = row1 - row0
    if rows < 0 or tiles_w * tile < out_w or tiles_w * tile >= out_w + tile or \
            row1 * tile >= out_h + tile:
        raise ValueError('output_transform: tile rows [%d, %d) x %d tiles do not fit an output '
                         'of %d x %d' % (row0, row1, tiles_w, out_h, out_w))
    if products.shape[0] != a * a or products.shape[1] != K or \
            products.shape[2] != rows * tiles_w:
        raise ValueError('output_transform: products have shape (%d, %d, %d); expected '
                         '(%d, %d, %d)' % (products.shape[0], products.shape[1],
                                           products.shape[2], a * a, K, rows * tiles_w))
    if bias is not None and bias.shape[0] != K:
        raise ValueError('output_transform: %d biases for %d outputs' % (bias.shape[0], K))
    if K == 0 or rows == 0 or out_w == 0:
        return
    cdef Py_ssize_t xi_stride = K * rows * tiles_w, u, k, r, y0, n
    cdef const float* src = &products[0, 0, 0]
    cdef float* dst = &out[0, 0, 0]
    cdef const float* b = &bias[0] if bias is not None else NULL
    cdef int threads = threads_above(K * rows * tile * out_w, PARALLEL_MIN_WORK)
    cdef Py_ssize_t each = a * tile * tiles_w
    cdef float[::1] buffers = np.empty(threads * each, np.float32)
    cdef float* scratch = NULL
    with nogil, parallel(num_threads=threads):
        scratch = &buffers[0] + omp_get_thread_num() * each
        for u in prange(K * rows, schedule='dynamic'):
            k = u // rows
            r = u % rows
            y0 = (row0 + r) * tile
            n = out_h - y0
            if n > tile:
                n = tile
            if tile == 2:
                _output_row2(src + (k * rows + r) * tiles_w, xi_stride, tiles_w,
                             b[k] if b != NULL else 0, scratch,
                             dst + (k * out_h + y0) * out_w, out_w, n)
            else:
                _output_row4(src + (k * rows + r) * tiles_w, xi_stride, tiles_w,
                             b[k] if b != NULL else 0, scratch,
                             dst + (k * out_h + y0) * out_w, out_w, n)


# Top-diff tiles of the weight gradient -----------------------------------------------------------

cdef void _gradient_row(const float* plane, Py_ssize_t height, Py_ssize_t width, Py_ssize_t y0,
                        Py_ssize_t tiles, float* rows, float* dst,
                        Py_ssize_t xi_stride) noexcept nogil:
    # G' = [[1, 0], [1/2, 1/2], [1/2, -1/2], [0, 1]] down the 2 rows, then along them.
    cdef Py_ssize_t span = 2 * tiles, x, p, i
    cdef float* r0 = rows
    cdef float* r1 = rows + span
    cdef float* t = rows + 2 * span
    cdef float* s
    cdef float* o
    cdef float g0, g1
    _load_rows(plane, height, width, y0, 0, 2, span, rows)
    for x in range(span):
        g0 = r0[x]
        g1 = r1[x]
        t[x] = g0
        t[span + x] = (g0 + g1) * 0.5
        t[2 * span + x] = (g0 - g1) * 0.5
        t[3 * span + x] = g1
    for i in range(4):
        s = t + i * span
        o = dst + 4 * i * xi_stride
        for p in range(tiles):
            g0 = s[2 * p]
            g1 = s[2 * p + 1]
            o[p] = g0
            o[xi_stride + p] = (g0 + g1) * 0.5
            o[2 * xi_stride + p] = (g0 - g1) * 0.5
            o[3 * xi_stride + p] = g1


def gradient_transform(const float[:, :, ::1] top_diff, int row0, int row1, int tiles_w,
                       float[:, :, ::1] out):
    """out (16, K, (row1 - row0) * tiles_w) = G' g G'^T of the top diff's 2 x 2 tiles g (tile
    (ty, tx) at rows 2ty.., columns 2tx.. of top_diff (K, out_h, out_w), zero outside): the
    filter side of the weight gradient computed as F(3x3, 2x2)."""
    cdef Py_ssize_t K = top_diff.shape[0], H = top_diff.shape[1], W = top_diff.shape[2]
    cdef Py_ssize_t rows = row1 - row0
    if rows < 0 or tiles_w < 0:
        raise ValueError('gradient_transform: bad tile rows [%d, %d) or tiles_w %d'
                         % (row0, row1, tiles_w))
    if out.shape[0] != 16 or out.shape[1] != K or out.shape[2] != rows * tiles_w:
        raise ValueError('gradient_transform: output has shape (%d, %d, %d); expected '
                         '(16, %d, %d)' % (out.shape[0], out.shape[1], out.shape[2], K,
                                           rows * tiles_w))
    if K == 0 or rows == 0 or tiles_w == 0:
        return
    cdef Py_ssize_t xi_stride = K * rows * tiles_w, u, k, r
    cdef const float* src = &top_diff[0, 0, 0]
    cdef float* dst = &out[0, 0, 0]
    cdef int threads = threads_above(16 * xi_stride, PARALLEL_MIN_WORK)
    cdef Py_ssize_t each = 12 * tiles_w
    cdef float[::1] buffers = np.empty(threads * each, np.float32)
    cdef float* scratch = NULL
    with nogil, parallel(num_threads=threads):
        scratch = &buffers[0] + omp_get_thread_num() * each
        for u in prange(K * rows, schedule='dynamic'):
            k = u // rows
            r = u % rows
            _gradient_row(src + k * H * W, H, W, (row0 + r) * 2, tiles_w, scratch,
                          dst + (k * rows + r) * tiles_w, xi_stride)
