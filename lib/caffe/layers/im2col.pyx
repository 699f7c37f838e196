"""im2col and col2im for 2-D convolution (Caffe's layout).

The column matrix has one row per (channel, kernel row, kernel column), in that order, and one
column per output position (row-major), so a convolution is a single matrix product
weights (num_output, C*kh*kw) @ col (C*kh*kw, out_h*out_w), and the rows of one group are
contiguous. Positions that fall in the padding read as zero.

Both functions can work on a band of output rows [row_start, row_end) only: the column matrix
then has (row_end - row_start) * out_w columns. The Convolution layer walks a large image band
by band, so its column buffer stays a few megabytes (in cache for the product that reads it)
instead of C*kh*kw times the output size. col2im adds a band's contributions into the image
(accumulate=True) or overwrites the image with them.

Both functions take the column matrix as any 2-D float32 array whose rows are contiguous, so a
caller may hand in a column slice of a wider buffer (several images side by side). The work is
split across OpenMP threads (im2col by channel and kernel row, col2im by channel: each thread
then owns the image planes it writes), only for work large enough to pay for waking them, and
handed out on demand, so a thread that starts late (a busy machine) delays nothing.
"""
from cython.parallel cimport prange
from libc.string cimport memcpy, memset

from ._parallel cimport threads_above

cdef enum:
    PARALLEL_MIN_WORK = 1 << 18  # elements below which a call runs on the calling thread alone


cdef inline Py_ssize_t _ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    # For b > 0 and any a, without relying on how C rounds negative quotients.
    if a <= 0:
        return -((-a) // b)
    return (a + b - 1) // b


cdef inline void _valid_range(Py_ssize_t offset, Py_ssize_t stride, Py_ssize_t size,
                              Py_ssize_t out_size, Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    # Output indices o with 0 <= o*stride + offset < size form [lo, hi).
    cdef Py_ssize_t a = _ceil_div(-offset, stride)
    cdef Py_ssize_t b = _ceil_div(size - offset, stride)
    if a < 0:
        a = 0
    if b > out_size:
        b = out_size
    if b < a:
        b = a
    lo[0] = a
    hi[0] = b


cdef void _im2col_kernel_row(const float* plane, Py_ssize_t height, Py_ssize_t width,
                             Py_ssize_t ki, Py_ssize_t kw, Py_ssize_t ph, Py_ssize_t pw,
                             Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw,
                             Py_ssize_t out_w, Py_ssize_t r0, Py_ssize_t r1,
                             float* rows, Py_ssize_t row_stride) noexcept nogil:
    # The kw column-matrix rows of kernel row ki, for output rows r0..r1-1.
    cdef Py_ssize_t kj, oh, ow, oh_lo, oh_hi, ow_lo, ow_hi, off_h, off_w
    cdef Py_ssize_t band = r1 - r0
    cdef float* row
    cdef float* dst
    cdef const float* src
    off_h = ki * dh - ph
    _valid_range(off_h, sh, height, r1, &oh_lo, &oh_hi)
    if oh_lo < r0:
        oh_lo = r0
    if oh_hi < oh_lo:
        oh_hi = oh_lo
    for kj in range(kw):
        off_w = kj * dw - pw
        _valid_range(off_w, sw, width, out_w, &ow_lo, &ow_hi)
        row = rows + kj * row_stride
        if oh_lo > r0:
            memset(row, 0, (oh_lo - r0) * out_w * sizeof(float))
        if oh_hi < r1:
            memset(row + (oh_hi - r0) * out_w, 0, (r1 - oh_hi) * out_w * sizeof(float))
        for oh in range(oh_lo, oh_hi):
            dst = row + (oh - r0) * out_w
            src = plane + (oh * sh + off_h) * width + off_w
            if ow_lo > 0:
                memset(dst, 0, ow_lo * sizeof(float))
            if sw == 1:
                memcpy(dst + ow_lo, src + ow_lo, (ow_hi - ow_lo) * sizeof(float))
            elif sw == 2:
                # A constant stride: the compiler vectorizes the gather (loads and shuffles).
                for ow in range(ow_lo, ow_hi):
                    dst[ow] = src[2 * ow]
            else:
                for ow in range(ow_lo, ow_hi):
                    dst[ow] = src[ow * sw]
            if ow_hi < out_w:
                memset(dst + ow_hi, 0, (out_w - ow_hi) * sizeof(float))


cdef void _col2im_channel(const float* rows, Py_ssize_t row_stride,
                          Py_ssize_t height, Py_ssize_t width,
                          Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t ph, Py_ssize_t pw,
                          Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw,
                          Py_ssize_t out_w, Py_ssize_t r0, Py_ssize_t r1, bint accumulate,
                          float* plane) noexcept nogil:
    # Walks the image row by row (the row stays in L1 while every kernel tap adds into it) and,
    # for each pixel, adds the taps in (kernel row, kernel column) order: the order in which
    # Caffe's col2im sums them, so the float32 result is the same. A pixel's taps from a band of
    # output rows have higher kernel rows than those from the band below it, so bands added
    # from the last to the first keep that order too.
    cdef Py_ssize_t ih, ih_lo, ih_hi, ki, kj, t, oh, ow, ow_lo, ow_hi, off_w
    cdef float* dst
    cdef const float* src
    if not accumulate:
        memset(plane, 0, height * width * sizeof(float))
    # Image rows the band reaches: from its first output row's window top to its last one's
    # window bottom.
    ih_lo = r0 * sh - ph
    ih_hi = (r1 - 1) * sh - ph + (kh - 1) * dh + 1
    if ih_lo < 0:
        ih_lo = 0
    if ih_hi > height:
        ih_hi = height
    for ih in range(ih_lo, ih_hi):
        dst = plane + ih * width
        for ki in range(kh):
            t = ih + ph - ki * dh
            if t < 0 or t % sh != 0:
                continue
            oh = t // sh
            if oh < r0 or oh >= r1:
                continue
            for kj in range(kw):
                off_w = kj * dw - pw
                _valid_range(off_w, sw, width, out_w, &ow_lo, &ow_hi)
                src = rows + (ki * kw + kj) * row_stride + (oh - r0) * out_w
                if sw == 1:
                    for ow in range(ow_lo, ow_hi):
                        dst[ow + off_w] += src[ow]
                else:
                    for ow in range(ow_lo, ow_hi):
                        dst[ow * sw + off_w] += src[ow]


cdef Py_ssize_t _row_stride(float[:, :] col, Py_ssize_t rows, Py_ssize_t cols) except -1:
    if col.shape[0] != rows or col.shape[1] != cols:
        raise ValueError('column matrix has shape (%d, %d); expected (%d, %d)'
                         % (col.shape[0], col.shape[1], rows, cols))
    if col.strides[1] != sizeof(float) or col.strides[0] % sizeof(float) != 0:
        raise ValueError('column matrix rows must be contiguous float32')
    return col.strides[0] // sizeof(float)


cdef int _band(int out_h, int row_start, int row_end, Py_ssize_t* r0,
               Py_ssize_t* r1) except -1:
    if row_end < 0:
        row_end = out_h
    if not 0 <= row_start <= row_end <= out_h:
        raise ValueError('output rows [%d, %d) are not within [0, %d)'
                         % (row_start, row_end, out_h))
    r0[0] = row_start
    r1[0] = row_end
    return 0


def im2col(const float[:, :, ::1] img, int kernel_h, int kernel_w, int pad_h, int pad_w,
           int stride_h, int stride_w, int dilation_h, int dilation_w,
           float[:, :] col, int out_h, int out_w, int row_start=0, int row_end=-1):
    """Fills col (channels*kernel_h*kernel_w, (row_end-row_start)*out_w) from img (channels,
    height, width): the columns of output rows row_start..row_end-1 (default: all out_h)."""
    cdef Py_ssize_t channels = img.shape[0], height = img.shape[1], width = img.shape[2]
    cdef Py_ssize_t r0, r1
    _band(out_h, row_start, row_end, &r0, &r1)
    cdef Py_ssize_t taps = <Py_ssize_t>kernel_h * kernel_w
    cdef Py_ssize_t rs = _row_stride(col, channels * taps, (r1 - r0) * out_w)
    cdef Py_ssize_t u, c, ki
    if channels == 0 or r1 == r0 or out_w == 0:
        return
    cdef const float* src = &img[0, 0, 0]
    cdef float* dst = &col[0, 0]
    cdef int threads = threads_above(channels * taps * (r1 - r0) * out_w, PARALLEL_MIN_WORK)
    for u in prange(channels * kernel_h, nogil=True, schedule='dynamic', num_threads=threads):
        c = u // kernel_h
        ki = u % kernel_h
        _im2col_kernel_row(src + c * height * width, height, width, ki, kernel_w,
                           pad_h, pad_w, stride_h, stride_w, dilation_h, dilation_w,
                           out_w, r0, r1, dst + (c * taps + ki * kernel_w) * rs, rs)


def col2im(float[:, :] col, int kernel_h, int kernel_w, int pad_h, int pad_w,
           int stride_h, int stride_w, int dilation_h, int dilation_w,
           int out_h, int out_w, float[:, :, ::1] img, int row_start=0, int row_end=-1,
           bint accumulate=False):
    """Adds col's entries (the columns of output rows row_start..row_end-1, default all) into
    img (channels, height, width) at the image positions they were taken from: the adjoint of
    im2col. Without accumulate, img is zeroed first."""
    cdef Py_ssize_t channels = img.shape[0], height = img.shape[1], width = img.shape[2]
    cdef Py_ssize_t r0, r1
    _band(out_h, row_start, row_end, &r0, &r1)
    cdef Py_ssize_t taps = <Py_ssize_t>kernel_h * kernel_w
    cdef Py_ssize_t rs = _row_stride(col, channels * taps, (r1 - r0) * out_w)
    cdef Py_ssize_t c
    if channels == 0 or height * width == 0:
        return
    if r1 == r0 or out_w == 0:
        if not accumulate:
            img[...] = 0
        return
    cdef const float* src = &col[0, 0]
    cdef float* dst = &img[0, 0, 0]
    cdef int threads = threads_above(channels * taps * (r1 - r0) * out_w, PARALLEL_MIN_WORK)
    for c in prange(channels, nogil=True, schedule='dynamic', num_threads=threads):
        _col2im_channel(src + c * taps * rs, rs, height, width, kernel_h, kernel_w,
                        pad_h, pad_w, stride_h, stride_w, dilation_h, dilation_w,
                        out_w, r0, r1, accumulate, dst + c * height * width)
