"""im2col and col2im for any number of spatial axes (Caffe's im2col_nd / col2im_nd layout).

The column matrix has one row per (channel, kernel tap), taps in row-major order over the kernel
axes, and one column per output position (row-major); an entry is the image value the tap sees
from that output position, zero in the padding. A geometry is an int32 array
[N, image shape (N), output shape (N), kernel (N), pad (N), stride (N), dilation (N)].

col2im adds every pixel's contributions in tap order, as Caffe's col2im_nd (and the 2-D col2im,
im2col.pyx) does, so its float32 sums are Caffe's. Work is split across OpenMP threads by
rows (im2col) and by channel (col2im: each thread owns the planes it writes), so results do not
depend on the thread count.
"""
from cython.parallel cimport prange
from libc.string cimport memset

from ._parallel cimport threads_above

cdef enum:
    PARALLEL_MIN_WORK = 1 << 18  # column entries below which a call runs on one thread
    MAX_AXES = 32                # Caffe's kMaxBlobAxes


cdef struct Geometry:
    int n
    Py_ssize_t image[MAX_AXES]
    Py_ssize_t out[MAX_AXES]
    Py_ssize_t kernel[MAX_AXES]
    Py_ssize_t pad[MAX_AXES]
    Py_ssize_t stride[MAX_AXES]
    Py_ssize_t dilation[MAX_AXES]
    Py_ssize_t taps, image_count, out_count


cdef Geometry _geometry(const int[::1] g) except *:
    cdef Geometry r
    cdef int n, d
    if g.shape[0] < 1:
        raise ValueError('empty geometry')
    n = g[0]
    if not 1 <= n <= MAX_AXES or g.shape[0] != 1 + 6 * n:
        raise ValueError('geometry must be [N, 6 x N values] with 1 <= N <= %d' % MAX_AXES)
    r.n = n
    r.taps = 1
    r.image_count = 1
    r.out_count = 1
    for d in range(n):
        r.image[d] = g[1 + d]
        r.out[d] = g[1 + n + d]
        r.kernel[d] = g[1 + 2 * n + d]
        r.pad[d] = g[1 + 3 * n + d]
        r.stride[d] = g[1 + 4 * n + d]
        r.dilation[d] = g[1 + 5 * n + d]
        if r.kernel[d] < 1 or r.stride[d] < 1 or r.dilation[d] < 1 or r.pad[d] < 0:
            raise ValueError('kernel, stride and dilation must be positive and pad non-negative')
        r.taps *= r.kernel[d]
        r.image_count *= r.image[d]
        r.out_count *= r.out[d]
    return r


cdef inline void _tap(const Geometry* g, Py_ssize_t t, Py_ssize_t* offset) noexcept nogil:
    # The image offset of tap t along each axis, before the output position's own offset.
    cdef int d
    for d in range(g.n - 1, -1, -1):
        offset[d] = (t % g.kernel[d]) * g.dilation[d] - g.pad[d]
        t //= g.kernel[d]


cdef inline bint _source(const Geometry* g, const Py_ssize_t* offset, const Py_ssize_t* pos,
                         Py_ssize_t* index) noexcept nogil:
    # The image index a tap (offset) reads from output position pos; False in the padding.
    cdef Py_ssize_t v, i = 0
    cdef int d
    for d in range(g.n):
        v = pos[d] * g.stride[d] + offset[d]
        if v < 0 or v >= g.image[d]:
            return False
        i = i * g.image[d] + v
    index[0] = i
    return True


cdef inline void _advance(const Geometry* g, Py_ssize_t* pos) noexcept nogil:
    # The next output position in row-major order.
    cdef int d = g.n - 1
    while d >= 0:
        pos[d] += 1
        if pos[d] < g.out[d]:
            return
        pos[d] = 0
        d -= 1


cdef void _im2col_row(const float* plane, const Geometry* g, Py_ssize_t t,
                      float* row) noexcept nogil:
    cdef Py_ssize_t offset[MAX_AXES]
    cdef Py_ssize_t pos[MAX_AXES]
    cdef Py_ssize_t j, index = 0
    _tap(g, t, offset)
    memset(pos, 0, g.n * sizeof(Py_ssize_t))
    for j in range(g.out_count):
        row[j] = plane[index] if _source(g, offset, pos, &index) else 0
        _advance(g, pos)


cdef void _col2im_channel(const float* rows, Py_ssize_t row_stride, const Geometry* g,
                          float* plane) noexcept nogil:
    cdef Py_ssize_t offset[MAX_AXES]
    cdef Py_ssize_t pos[MAX_AXES]
    cdef Py_ssize_t t, j, index = 0
    cdef const float* row
    memset(plane, 0, g.image_count * sizeof(float))
    for t in range(g.taps):
        _tap(g, t, offset)
        row = rows + t * row_stride
        memset(pos, 0, g.n * sizeof(Py_ssize_t))
        for j in range(g.out_count):
            if _source(g, offset, pos, &index):
                plane[index] += row[j]
            _advance(g, pos)


cdef Py_ssize_t _row_stride(float[:, :] col, const Geometry* g,
                            Py_ssize_t channels, Py_ssize_t image_values) except -1:
    # Checks the image and column sizes against the geometry; the column matrix's row stride.
    if image_values != g.image_count:
        raise ValueError('image has %d values per channel; the geometry says %d'
                         % (image_values, g.image_count))
    cdef Py_ssize_t rows = channels * g.taps, cols = g.out_count
    if col.shape[0] != rows or col.shape[1] != cols:
        raise ValueError('column matrix has shape (%d, %d); expected (%d, %d)'
                         % (col.shape[0], col.shape[1], rows, cols))
    if cols and (col.strides[1] != sizeof(float) or col.strides[0] % sizeof(float) != 0):
        raise ValueError('column matrix rows must be contiguous float32')
    return col.strides[0] // sizeof(float) if rows else 0


def im2col_nd(const float[:, ::1] image, const int[::1] geometry, float[:, :] col):
    """Fills col (channels * taps, prod(output shape)) from image (channels, prod(image
    shape))."""
    cdef Geometry g = _geometry(geometry)
    cdef Py_ssize_t channels = image.shape[0]
    cdef Py_ssize_t rs = _row_stride(col, &g, channels, image.shape[1])
    if channels == 0 or g.out_count == 0:
        return
    cdef const float* src = &image[0, 0] if g.image_count else NULL
    cdef float* dst = &col[0, 0]
    cdef Py_ssize_t r
    cdef int threads = threads_above(channels * g.taps * g.out_count, PARALLEL_MIN_WORK)
    for r in prange(channels * g.taps, nogil=True, schedule='dynamic', num_threads=threads):
        _im2col_row(src + (r // g.taps) * g.image_count, &g, r % g.taps, dst + r * rs)


def col2im_nd(float[:, :] col, const int[::1] geometry, float[:, ::1] image):
    """Overwrites image (channels, prod(image shape)) with the sum, at each pixel, of the
    column entries im2col_nd took from it (the adjoint of im2col_nd)."""
    cdef Geometry g = _geometry(geometry)
    cdef Py_ssize_t channels = image.shape[0]
    cdef Py_ssize_t rs = _row_stride(col, &g, channels, image.shape[1])
    if channels == 0 or g.image_count == 0:
        return
    cdef float* dst = &image[0, 0]
    if g.out_count == 0:
        memset(dst, 0, channels * g.image_count * sizeof(float))
        return
    cdef const float* src = &col[0, 0]
    cdef Py_ssize_t c
    cdef int threads = threads_above(channels * g.taps * g.out_count, PARALLEL_MIN_WORK)
    for c in prange(channels, nogil=True, schedule='dynamic', num_threads=threads):
        _col2im_channel(src + c * g.taps * rs, rs, &g, dst + c * g.image_count)
