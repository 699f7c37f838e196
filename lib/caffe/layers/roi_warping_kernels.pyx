# RoI warping loops for the ROIWarping layer (lib/caffe/layers/roi_warping.py; the definition is in
# docs/roi_warping.md). kernels/roi_warping.cu repeats every float32 operation here in the same
# order, so the GPU gives these numbers bit for bit; keep the two in step.
#
# Shapes: R RoIs, C channels, a feature plane H x W, F = samples_per_bin, PH x PW bins, so
# SH = F * PH sample rows and SW = F * PW sample columns per RoI. grid (R, SW + SH) holds each
# RoI's sample columns then rows as positions in cell-index space (cell i's centre is at i).
# argmax (R, C, PH, PW) holds i * F + j of the sample a bin took (only for F > 1).
#
# Work is split so that no two threads write one element and every sum runs in a fixed order:
# forward and the coordinate partials per (RoI, channel), the feature gradient per channel (all
# RoIs of a channel in one thread, in RoI order), the per-RoI coordinate sums over channels in
# channel order. Results therefore do not depend on the number of OpenMP threads.
from cython.parallel import prange
from libc.math cimport floorf


cdef inline bint inside(float p, int n) noexcept nogil:
    # A sample has an in-map neighbour only for p in [-1, n); NaN fails both tests.
    return p >= -1 and p < n


cdef struct Sample:
    float value, d_dy, d_dx


cdef inline Sample bilinear(const float* plane, int H, int W, float py, float px) noexcept nogil:
    """The sample at (py, px), inside the map, and its derivatives along y and x; neighbours off
    the map count as 0. At an integer position floor() picks the cell pair to the right/below,
    so the derivatives there are the one-sided ones in the increasing direction."""
    cdef int y0 = <int>floorf(py), x0 = <int>floorf(px)
    cdef float ty = py - <float>y0, tx = px - <float>x0
    cdef float one = 1, v00 = 0, v01 = 0, v10 = 0, v11 = 0
    cdef Sample out
    if y0 >= 0:
        if x0 >= 0:
            v00 = plane[y0 * W + x0]
        if x0 + 1 < W:
            v01 = plane[y0 * W + x0 + 1]
    if y0 + 1 < H:
        if x0 >= 0:
            v10 = plane[(y0 + 1) * W + x0]
        if x0 + 1 < W:
            v11 = plane[(y0 + 1) * W + x0 + 1]
    out.value = (one - ty) * ((one - tx) * v00 + tx * v01) + ty * ((one - tx) * v10 + tx * v11)
    out.d_dx = (one - ty) * (v01 - v00) + ty * (v11 - v10)
    out.d_dy = (one - tx) * (v10 - v00) + tx * (v11 - v01)
    return out


def sample_grid(const float[:, ::1] rois, float scale, int SH, int SW, float[:, ::1] grid):
    """Sample positions of every RoI: box edges x1 and x2 + 1 (the +1 pixel convention) times
    scale, SW equal steps between them, a sample at the middle of each step, minus 0.5 to go
    from map coordinates (cell i covers [i, i + 1)) to cell-index space."""
    cdef int R = rois.shape[0], r, k
    cdef float one = 1, half = 0.5, start, end, step
    with nogil:
        for r in range(R):
            start = rois[r, 1] * scale
            end = (rois[r, 3] + one) * scale
            step = (end - start) / <float>SW
            for k in range(SW):
                grid[r, k] = start + (<float>k + half) * step - half
            start = rois[r, 2] * scale
            end = (rois[r, 4] + one) * scale
            step = (end - start) / <float>SH
            for k in range(SH):
                grid[r, SW + k] = start + (<float>k + half) * step - half


cdef inline int selected(const unsigned char* argmax, Py_ssize_t at) noexcept nogil:
    # i * F + j of the sample a bin took; without max pooling (argmax NULL) its only sample.
    return argmax[at] if argmax != NULL else 0


cdef inline const unsigned char* argmax_pointer(const unsigned char[:, :, :, ::1] argmax,
                                                int F):
    return &argmax[0, 0, 0, 0] if F > 1 and argmax.shape[0] > 0 else NULL


def warp_forward(const float[:, :, :, ::1] data, const float[:, ::1] rois,
                 const float[:, ::1] grid, int F, float[:, :, :, ::1] top,
                 unsigned char[:, :, :, ::1] argmax):
    """top[r, c, ph, pw]: the bin's sample, or for F > 1 the maximum of its F x F samples (the
    first in row-major order among equals, recorded in argmax); a sample off the map is 0."""
    cdef int R = top.shape[0], C = top.shape[1], PH = top.shape[2], PW = top.shape[3]
    cdef int H = data.shape[2], W = data.shape[3], SW = F * PW
    cdef Py_ssize_t n
    cdef int r, c, ph, pw, i, j, best
    cdef float py, px, v, m
    cdef const float* plane
    with nogil:
        for n in prange(<Py_ssize_t>R * C, schedule='static'):
            r = <int>(n // C)
            c = <int>(n % C)
            plane = &data[<int>rois[r, 0], c, 0, 0]
            for ph in range(PH):
                for pw in range(PW):
                    m = 0
                    best = 0
                    for i in range(F):
                        py = grid[r, SW + ph * F + i]
                        for j in range(F):
                            px = grid[r, pw * F + j]
                            v = 0
                            if inside(py, H) and inside(px, W):
                                v = bilinear(plane, H, W, py, px).value
                            if (i == 0 and j == 0) or v > m:
                                m = v
                                best = i * F + j
                    top[r, c, ph, pw] = m
                    if F > 1:
                        argmax[r, c, ph, pw] = best


def warp_backward_features(const float[:, :, :, ::1] top_diff, const float[:, ::1] rois,
                           const float[:, ::1] grid, int F,
                           const unsigned char[:, :, :, ::1] argmax,
                           float[:, :, :, ::1] bottom_diff):
    """Adds each bin's diff times the bilinear weights of its sample (the argmax sample for
    F > 1) to the sample's in-map neighbours. bottom_diff must be zeroed. One thread per channel
    adds in the order RoI, bin row, bin column."""
    cdef int R = top_diff.shape[0], C = top_diff.shape[1]
    cdef int PH = top_diff.shape[2], PW = top_diff.shape[3]
    cdef int H = bottom_diff.shape[2], W = bottom_diff.shape[3], SW = F * PW
    cdef const unsigned char* am = argmax_pointer(argmax, F)
    cdef int r, c, b, ph, pw, a, y0, x0
    cdef float one = 1, g, py, px, ty, tx
    cdef float* plane
    with nogil:
        for c in prange(C, schedule='static'):
            for r in range(R):
                b = <int>rois[r, 0]
                plane = &bottom_diff[b, c, 0, 0]
                for ph in range(PH):
                    for pw in range(PW):
                        a = selected(am, ((<Py_ssize_t>r * C + c) * PH + ph) * PW + pw)
                        py = grid[r, SW + ph * F + a // F]
                        px = grid[r, pw * F + a % F]
                        if not (inside(py, H) and inside(px, W)):
                            continue
                        g = top_diff[r, c, ph, pw]
                        y0 = <int>floorf(py)
                        x0 = <int>floorf(px)
                        ty = py - <float>y0
                        tx = px - <float>x0
                        if y0 >= 0:
                            if x0 >= 0:
                                plane[y0 * W + x0] += g * ((one - ty) * (one - tx))
                            if x0 + 1 < W:
                                plane[y0 * W + x0 + 1] += g * ((one - ty) * tx)
                        if y0 + 1 < H:
                            if x0 >= 0:
                                plane[(y0 + 1) * W + x0] += g * (ty * (one - tx))
                            if x0 + 1 < W:
                                plane[(y0 + 1) * W + x0 + 1] += g * (ty * tx)


def warp_backward_coords(const float[:, :, :, ::1] data, const float[:, :, :, ::1] top_diff,
                         const float[:, ::1] rois, const float[:, ::1] grid, int F,
                         const unsigned char[:, :, :, ::1] argmax, float scale,
                         double[:, :, ::1] partial, float[:, ::1] rois_diff):
    """d(loss)/d(x1, y1, x2, y2) of every RoI into rois_diff[:, 1:5]; column 0, the batch
    index, gets 0. Sample k of SW lies at the fraction a = (k + 0.5) / SW of the way from one
    edge to the other, so it moves by scale * (1 - a) per unit of x1 and by scale * a per unit
    of x2 (rows alike). partial (R, C, 4) receives each channel's sum over its bins (double,
    bins in row-major order); then each RoI adds its channels in order."""
    cdef int R = top_diff.shape[0], C = top_diff.shape[1]
    cdef int PH = top_diff.shape[2], PW = top_diff.shape[3]
    cdef int H = data.shape[2], W = data.shape[3], SH = F * PH, SW = F * PW
    cdef const unsigned char* am = argmax_pointer(argmax, F)
    cdef Py_ssize_t n
    cdef int r, c, ph, pw, a, kx, ky, k
    cdef float py, px
    cdef Sample smp
    cdef double gx1, gy1, gx2, gy2, d, g, ax, ay, total
    cdef const float* plane
    with nogil:
        for n in prange(<Py_ssize_t>R * C, schedule='static'):
            r = <int>(n // C)
            c = <int>(n % C)
            plane = &data[<int>rois[r, 0], c, 0, 0]
            gx1 = 0
            gy1 = 0
            gx2 = 0
            gy2 = 0
            for ph in range(PH):
                for pw in range(PW):
                    a = selected(am, (n * PH + ph) * PW + pw)
                    ky = ph * F + a // F
                    kx = pw * F + a % F
                    py = grid[r, SW + ky]
                    px = grid[r, kx]
                    if not (inside(py, H) and inside(px, W)):
                        continue
                    smp = bilinear(plane, H, W, py, px)
                    g = <double>top_diff[r, c, ph, pw]
                    ax = (<double>kx + 0.5) / <double>SW
                    ay = (<double>ky + 0.5) / <double>SH
                    d = g * <double>smp.d_dx
                    gx1 = gx1 + d * (1.0 - ax)
                    gx2 = gx2 + d * ax
                    d = g * <double>smp.d_dy
                    gy1 = gy1 + d * (1.0 - ay)
                    gy2 = gy2 + d * ay
            partial[r, c, 0] = gx1
            partial[r, c, 1] = gy1
            partial[r, c, 2] = gx2
            partial[r, c, 3] = gy2
        for r in prange(R, schedule='static'):
            rois_diff[r, 0] = 0
            for k in range(4):
                total = 0
                for c in range(C):
                    total = total + partial[r, c, k]
                rois_diff[r, k + 1] = <float>(total * <double>scale)
