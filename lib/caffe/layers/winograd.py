"""Winograd convolution on the CPU: 3x3, stride 1, dilation 1, one group (Lavin and Gray, "Fast
Algorithms for Convolutional Neural Networks", CVPR 2016).

F(m x m, 3 x 3) makes each m x m tile of the output from an a x a tile of the input (a = m + 2)
with a*a multiplications per channel pair instead of 9 m^2: 16 for 4 outputs with m = 2 (2.25
times fewer than im2col + GEMM), 36 for 16 with m = 4 (4 times fewer). Summed over channels the
products are a*a matrix products, U[xi] (K x C) @ V[xi] (C x tiles), which caffe.gemm does (the
same bits at any thread count); the transforms around them are winograd_kernels.pyx's.

- forward: Y = A^T [U . V] A + bias, tile row band by band (V and the products of a band fit
  the Convolution layers' shared column buffer).
- data gradient: the same algorithm on the top diff with each filter turned by 180 degrees and
  K and C swapped (a full correlation: padding 2 - pad).
- weight gradient: the correlation of the input with the top diff, as F(3 x 3, 2 x 2): 4 x 4
  input tiles (the forward F(2x2)'s), the top diff's 2 x 2 tiles through G' (4 x 2), and the
  sum over tiles as 16 products dY'[xi] (K x tiles) @ X'[xi]^T (tiles x C), accumulated band
  by band in a fixed order; A'^T (3 x 4) on both sides at the end.

The matrices come from the Toom-Cook construction below (exact fractions): for the points
p_0..p_{a-2} and infinity, with V_n the a x n matrix evaluating a polynomial of degree n - 1 at
them (the infinity row picks the leading coefficient), F(m, r) is
y = V_m^T [(V_r g) . (V_a^-T d)]; rows of V_a^-T are scaled to integers (B^T) and the scale goes
into G. Float32 rounding grows with the size of the points: F(2x2) stays near im2col's error,
F(4x4) is about ten times larger (docs/cpu_performance.md has the measurements).
"""
import math
from fractions import Fraction

import numpy as np

from ..gemm import matmul

try:
    from . import winograd_kernels as _kernels
    _IMPORT_ERROR = None
except ImportError as e:  # not built yet: Convolution then keeps to im2col
    _kernels = None
    _IMPORT_ERROR = e

# Interpolation points (besides infinity) of each output tile size.
POINTS = {2: (0, 1, -1), 4: (0, 1, -1, 2, -2)}


def toom_cook(m, r, points):
    """(A^T (m x a), G (a x r), B^T (a x a)) of F(m, r) as exact Fractions (object arrays),
    a = m + r - 1, for the a - 1 given points and infinity."""
    a = m + r - 1
    if len(points) != a - 1 or len(set(points)) != len(points):
        raise ValueError('F(%d, %d) needs %d distinct points, got %s' % (m, r, a - 1, points))

    def vander(n):
        rows = [[Fraction(p) ** j for j in range(n)] for p in points]
        return rows + [[Fraction(0)] * (n - 1) + [Fraction(1)]]

    inverse = _inverse(vander(a))
    bt = [[inverse[j][i] for j in range(a)] for i in range(a)]
    scales = []
    for row in bt:
        scale = math.lcm(*(x.denominator for x in row))
        scales.append(scale)
        row[:] = [x * scale for x in row]
    g = [[x / s for x in row] for row, s in zip(vander(r), scales)]
    at = [[row[i] for row in vander(m)] for i in range(m)]
    return tuple(np.array(x, dtype=object) for x in (at, g, bt))


def _inverse(matrix):
    """Gauss-Jordan inverse of a square matrix of Fractions."""
    n = len(matrix)
    rows = [list(row) + [Fraction(int(i == j)) for j in range(n)]
            for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = next(i for i in range(col, n) if rows[i][col] != 0)
        rows[col], rows[pivot] = rows[pivot], rows[col]
        rows[col] = [x / rows[col][col] for x in rows[col]]
        for i in range(n):
            if i != col and rows[i][col] != 0:
                f = rows[i][col]
                rows[i] = [x - f * y for x, y in zip(rows[i], rows[col])]
    return [row[n:] for row in rows]


# F(m x m, 3 x 3) of each tile size: (A^T, G, B^T) in float64.
MATRICES = {m: tuple(x.astype(np.float64) for x in toom_cook(m, 3, POINTS[m])) for m in POINTS}
# The weight gradient's F(3 x 3, 2 x 2): (A'^T (3 x 4), G' (4 x 2), B^T (4 x 4), the same B^T as
# F(2x2, 3x3)'s), and A'^T on both sides of a flattened 4 x 4 tile as one 9 x 16 matrix.
GRADIENT_MATRICES = tuple(x.astype(np.float64) for x in toom_cook(3, 2, POINTS[2]))
_FILTER_KRON = {m: np.kron(g, g) for m, (_, g, _) in MATRICES.items()}
# Tiles per band: each band's a*a products multiply the transformed filters (K x C) by this many
# columns. Fewer re-read large filters too often, more push the band's tiles and products out of
# the caches (one thread, F(2x2): 512 channels 10% slower with 128 tiles than with 1024; 64
# channels 10% slower with whole 32 MB bands than with 256 tiles; 512 within 5% of the best
# for both).
BAND_TILES = 512
# Filters transformed per matrix product (the double-precision temporaries stay a few MB).
FILTER_CHUNK = 1 << 14
_GRADIENT_OUTPUT = np.kron(GRADIENT_MATRICES[0], GRADIENT_MATRICES[0]).astype(np.float32)


def available():
    return _kernels is not None


def import_error():
    return _IMPORT_ERROR


def tile_count(size, tile):
    return -(-size // tile)


class Winograd:
    """The Winograd passes of one 3x3, stride-1, one-group convolution layer.

    tile: m of the forward pass and the data gradient (2 or 4); the weight gradient is always
    F(3 x 3, 2 x 2). workspace: the Convolution layers' shared scratch (its 'col' buffer of
    buffer_floats holds a band's tiles and products; 'winograd' the transformed filters or the
    weight gradient's sums)."""

    def __init__(self, tile, channels, num_output, pad, workspace, buffer_floats):
        if tile not in MATRICES:
            raise ValueError('Winograd tile must be one of %s, got %r' % (sorted(MATRICES), tile))
        self.tile = tile
        self.alpha = tile + 2
        self.channels = channels
        self.num_output = num_output
        self.pad = pad
        self.workspace = workspace
        self.buffer_floats = buffer_floats

    @property
    def name(self):
        return 'winograd F(%dx%d,3x3)' % (self.tile, self.tile)

    def products(self, num, in_hw, out_hw):
        """The matrix products (m, n, k) of each pass over num images of in_hw -> out_hw, as
        {'forward': [...], 'data': [...], 'weights': [...]} (one entry per product, bands of an
        image counted as one): what the benchmark tools replay as the algorithm's floor."""
        a2, m = self.alpha ** 2, self.tile
        k, c = self.num_output, self.channels
        forward = tile_count(out_hw[0], m) * tile_count(out_hw[1], m)
        data = tile_count(in_hw[0], m) * tile_count(in_hw[1], m)
        weights = tile_count(out_hw[0], 2) * tile_count(out_hw[1], 2)
        return {'forward': [(k, forward, c)] * (a2 * num), 'data': [(c, data, k)] * (a2 * num),
                'weights': [(k, c, weights)] * (16 * num)}

    def _band_rows(self, tiles_w, floats_per_tile, tiles_h):
        """Tile rows per band: enough for BAND_TILES tiles (at least one row), fewer if the
        column buffer cannot hold them."""
        rows = min(tiles_h, -(-BAND_TILES // max(tiles_w, 1)))
        return max(1, min(rows, self.buffer_floats // max(floats_per_tile * tiles_w, 1)))

    def _filters(self, weights, rotated):
        """U (a*a, K, C) = G w G^T of every filter w, or with rotated (a*a, C, K) of every
        filter turned by 180 degrees (the data gradient's). Computed in double precision and
        rounded once, FILTER_CHUNK filters at a time (G w G^T is kron(G, G) times the 9 taps)."""
        a2 = self.alpha ** 2
        k, c = self.num_output, self.channels
        flat = self.workspace.get('winograd', a2 * k * c)
        taps = weights.reshape(k, c * 9)
        kron = _FILTER_KRON[self.tile][:, ::-1] if rotated else _FILTER_KRON[self.tile]
        step = max(1, FILTER_CHUNK // c)
        for k0 in range(0, k, step):
            k1 = min(k, k0 + step)
            product = np.matmul(kron, taps[k0:k1].reshape(-1, 9).T.astype(np.float64))
            if rotated:
                flat.reshape(a2, c, k)[:, :, k0:k1] = \
                    product.reshape(a2, k1 - k0, c).transpose(0, 2, 1)
            else:
                flat.reshape(a2, k, c)[:, k0:k1] = product.reshape(a2, k1 - k0, c)
        return flat.reshape(a2, c, k) if rotated else flat.reshape(a2, k, c)

    def _convolve(self, u, source, pad, bias, out):
        """out (K', H', W') = the stride-1 3x3 correlation of source (C', H, W) padded by pad
        with the transformed filters u (a*a, K', C'), plus bias."""
        m, a2 = self.tile, self.alpha ** 2
        k, c = u.shape[1], u.shape[2]
        tiles_h, tiles_w = tile_count(out.shape[1], m), tile_count(out.shape[2], m)
        band = self._band_rows(tiles_w, a2 * (c + k), tiles_h)
        for r0 in range(0, tiles_h, band):
            r1 = min(tiles_h, r0 + band)
            n = (r1 - r0) * tiles_w
            buf = self.workspace.get('col', a2 * (c + k) * n)
            v = buf[:a2 * c * n].reshape(a2, c, n)
            products = buf[a2 * c * n:].reshape(a2, k, n)
            _kernels.input_transform(source, m, pad[0], pad[1], r0, r1, tiles_w, v)
            matmul(u, v, products)
            _kernels.output_transform(products, m, bias, r0, r1, tiles_w, out)

    def forward(self, weights, bias, data, top):
        """top (N, K, out_h, out_w) of data (N, C, H, W); bias (K,) or None."""
        u = self._filters(weights, False)
        for n in range(data.shape[0]):
            self._convolve(u, data[n], self.pad, bias, top[n])

    def backward_data(self, weights, top_diff, bottom_diff):
        """bottom_diff (N, C, H, W) = the data gradient of top_diff (N, K, out_h, out_w)
        (overwritten, as Caffe's backward writes bottom diffs)."""
        u = self._filters(weights, True)
        pad = (2 - self.pad[0], 2 - self.pad[1])
        for n in range(top_diff.shape[0]):
            self._convolve(u, top_diff[n], pad, None, bottom_diff[n])

    def backward_weights(self, data, top_diff, weight_diff):
        """weight_diff (K, C, 3, 3) += the weight gradient of top_diff (N, K, out_h, out_w)
        for the input data (N, C, H, W)."""
        k, c = self.num_output, self.channels
        tiles_h, tiles_w = tile_count(top_diff.shape[2], 2), tile_count(top_diff.shape[3], 2)
        band = self._band_rows(tiles_w, 16 * (c + k), tiles_h)
        sums = self.workspace.get('winograd', 16 * k * c).reshape(16, k, c)
        first = True
        for n in range(data.shape[0]):
            for r0 in range(0, tiles_h, band):
                r1 = min(tiles_h, r0 + band)
                count = (r1 - r0) * tiles_w
                buf = self.workspace.get('col', 16 * (c + k) * count)
                x = buf[:16 * c * count].reshape(16, c, count)
                g = buf[16 * c * count:].reshape(16, k, count)
                _kernels.input_transform(data[n], 2, self.pad[0], self.pad[1], r0, r1,
                                         tiles_w, x)
                _kernels.gradient_transform(top_diff[n], r0, r1, tiles_w, g)
                matmul(g, x.transpose(0, 2, 1), sums, accumulate=not first)
                first = False
        if first:
            return
        taps = np.matmul(_GRADIENT_OUTPUT, sums.reshape(16, k * c))
        weight_diff.reshape(k * c, 9)[...] += taps.T
