# RoI warping loops for the ROIWarping layer (lib/caffe/layers/roi_warping.py; the definition is in
# docs/roi_warping.md). kernels/roi_warping.cu repeats every float32 operation here in the same
# order, so the GPU gives these numbers bit for bit; keep the two in step.
#
# Shapes: R RoIs, C channels, a feature plane H x W, F = samples_per_bin, PH x PW bins, so
# SH = F * PH sample rows and SW = F * PW sample columns per RoI. The sample grid is separable:
# sample (ky, kx) sits at row position py[ky] and column position px[kx] in cell-index space
# (cell i's value at i). sample_grid stores, per RoI, the columns then the rows as the cell
# floor(p) (OUTSIDE for a sample with no cell on the map) and the fraction p - floor(p); every
# channel reuses them. argmax (R, C, PH, PW) holds i * F + j of the sample a bin took (F > 1).
#
# Work is split so that no two threads write one element and every sum runs in a fixed order:
# forward and the coordinate partials per (RoI, channel), the feature gradient per channel (all
# RoIs of a channel in one thread, in RoI order), the per-RoI coordinate sums over channels in
# channel order. Results therefore do not depend on the number of OpenMP threads or on how the
# iterations are dealt out to them (guided: a core that other work slows down takes fewer).
from cython.parallel import prange
from libc.math cimport floorf

cdef int OUTSIDE = -(1 << 30)


cdef struct Sample:
    float value, d_dy, d_dx


cdef inline Sample bilinear(const float* plane, int H, int W, int y0, float ty, int x0,
                            float tx) noexcept nogil:
    """The sample between cells y0, y0 + 1 and x0, x0 + 1 at fractions ty, tx, and its
    derivatives along y and x; cells off the map count as 0. Since y0 = floor(py), a sample on
    an integer position takes the cell pair to the right/below: the derivatives there are the
    one-sided ones towards increasing coordinates."""
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


cdef inline void place(float p, int n, int* cell, float* frac) noexcept nogil:
    # A sample has a cell on the map only for p in [-1, n); NaN fails both tests.
    if p >= -1 and p < n:
        cell[0] = <int>floorf(p)
        frac[0] = p - <float>cell[0]
    else:
        cell[0] = OUTSIDE
        frac[0] = 0


def sample_grid(const float[:, ::1] rois, float scale, int SH, int SW, int H, int W,
                int[:, ::1] cells, float[:, ::1] fracs):
    """Sample positions of every RoI: box edges x1 and x2 + 1 (the +1 pixel convention) times
    scale, SW equal steps between them, a sample at the middle of each step, minus 0.5 to go
    from map coordinates (cell i covers [i, i + 1)) to cell-index space; stored as (cell,
    fraction), columns then rows."""
    cdef int R = rois.shape[0], r, k
    cdef float one = 1, half = 0.5, start, end, step
    with nogil:
        for r in range(R):
            start = rois[r, 1] * scale
            end = (rois[r, 3] + one) * scale
            step = (end - start) / <float>SW
            for k in range(SW):
                place(start + (<float>k + half) * step - half, W, &cells[r, k], &fracs[r, k])
            start = rois[r, 2] * scale
            end = (rois[r, 4] + one) * scale
            step = (end - start) / <float>SH
            for k in range(SH):
                place(start + (<float>k + half) * step - half, H, &cells[r, SW + k],
                      &fracs[r, SW + k])


cdef inline int selected(const unsigned char* argmax, Py_ssize_t at) noexcept nogil:
    # i * F + j of the sample a bin took; without max pooling (argmax NULL) its only sample.
    return argmax[at] if argmax != NULL else 0


cdef inline const unsigned char* argmax_pointer(const unsigned char[:, :, :, ::1] argmax,
                                                int F):
    return &argmax[0, 0, 0, 0] if F > 1 and argmax.shape[0] > 0 else NULL


def warp_forward(const float[:, :, :, ::1] data, const float[:, ::1] rois,
                 const int[:, ::1] cells, const float[:, ::1] fracs, int F,
                 float[:, :, :, ::1] top, unsigned char[:, :, :, ::1] argmax):
    """top[r, c, ph, pw]: the bin's sample, or for F > 1 the maximum of its F x F samples (the
    first in row-major order among equals, recorded in argmax); a sample off the map is 0."""
    cdef int R = top.shape[0], C = top.shape[1], PH = top.shape[2], PW = top.shape[3]
    cdef int H = data.shape[2], W = data.shape[3], SW = F * PW
    cdef Py_ssize_t n
    cdef int r, c, ph, pw, i, j, best, y0, x0
    cdef float v, m
    cdef const float* plane
    with nogil:
        for n in prange(<Py_ssize_t>R * C, schedule='guided'):
            r = <int>(n // C)
            c = <int>(n % C)
            plane = &data[<int>rois[r, 0], c, 0, 0]
            for ph in range(PH):
                for pw in range(PW):
                    m = 0
                    best = 0
                    for i in range(F):
                        y0 = cells[r, SW + ph * F + i]
                        for j in range(F):
                            x0 = cells[r, pw * F + j]
                            v = 0
                            if y0 != OUTSIDE and x0 != OUTSIDE:
                                v = bilinear(plane, H, W, y0, fracs[r, SW + ph * F + i], x0,
                                             fracs[r, pw * F + j]).value
                            if (i == 0 and j == 0) or v > m:
                                m = v
                                best = i * F + j
                    top[r, c, ph, pw] = m
                    if F > 1:
                        argmax[r, c, ph, pw] = best


def warp_backward_features(const float[:, :, :, ::1] top_diff, const float[:, ::1] rois,
                           const int[:, ::1] cells, const float[:, ::1] fracs, int F,
                           const unsigned char[:, :, :, ::1] argmax,
                           float[:, :, :, ::1] bottom_diff):
    """Adds each bin's diff times the bilinear weights of its sample (the argmax sample for
    F > 1) to the sample's in-map neighbours. bottom_diff must be zeroed. One thread per channel
    adds in the order RoI, bin row, bin column."""
    cdef int R = top_diff.shape[0], C = top_diff.shape[1]
    cdef int PH = top_diff.shape[2], PW = top_diff.shape[3]
    cdef int H = bottom_diff.shape[2], W = bottom_diff.shape[3], SW = F * PW
    cdef const unsigned char* am = argmax_pointer(argmax, F)
    cdef int r, c, b, ph, pw, a, ky, kx, y0, x0
    cdef float one = 1, g, ty, tx
    cdef float* plane
    with nogil:
        for c in prange(C, schedule='guided'):
            for r in range(R):
                b = <int>rois[r, 0]
                plane = &bottom_diff[b, c, 0, 0]
                for ph in range(PH):
                    for pw in range(PW):
                        a = selected(am, ((<Py_ssize_t>r * C + c) * PH + ph) * PW + pw)
                        ky = SW + ph * F + a // F
                        kx = pw * F + a % F
                        y0 = cells[r, ky]
                        x0 = cells[r, kx]
                        if y0 == OUTSIDE or x0 == OUTSIDE:
                            continue
                        g = top_diff[r, c, ph, pw]
                        ty = fracs[r, ky]
                        tx = fracs[r, kx]
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
                         const float[:, ::1] rois, const int[:, ::1] cells,
                         const float[:, ::1] fracs, int F,
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
    cdef int r, c, ph, pw, a, kx, ky, k, y0, x0
    cdef Sample smp
    cdef double gx1, gy1, gx2, gy2, d, g, ax, ay, total
    cdef const float* plane
    with nogil:
        for n in prange(<Py_ssize_t>R * C, schedule='guided'):
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
                    y0 = cells[r, SW + ky]
                    x0 = cells[r, kx]
                    if y0 == OUTSIDE or x0 == OUTSIDE:
                        continue
                    smp = bilinear(plane, H, W, y0, fracs[r, SW + ky], x0, fracs[r, kx])
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
        for r in prange(R, schedule='guided'):
            rois_diff[r, 0] = 0
            for k in range(4):
                total = 0
                for c in range(C):
                    total = total + partial[r, c, k]
                rois_diff[r, k + 1] = <float>(total * <double>scale)
