"""Anchors (paper Sec. 3.1.1): reference boxes of several scales and aspect ratios, the same at
every sliding-window position.

The reference anchors are made as in the release: start from the base_size x base_size box at
(0, 0); for each ratio keep its area but change its shape, rounding the width and height to whole
pixels; then multiply that box's width and height by each scale, keeping its center.
"""
import numpy as np

# The paper's anchors (Sec. 3.1.1): scales times the 16-pixel base box, 128^2, 256^2 and 512^2
# pixels, and aspect ratios (height / width) 1:2, 1:1, 2:1; the feature stride of its nets.
SCALES = (8, 16, 32)
RATIOS = (0.5, 1.0, 2.0)
BASE_SIZE = 16
FEAT_STRIDE = 16


def generate_anchors(base_size=BASE_SIZE, ratios=RATIOS, scales=SCALES):
    """Returns (len(ratios) * len(scales), 4) anchors x1, y1, x2, y2 (float64), ratio-major.

    ratios are height / width. With the defaults: 9 anchors of areas about 128^2, 256^2, 512^2
    centered on (7.5, 7.5), the center of the first 16 x 16 cell of a stride-16 feature map.
    """
    ratios = np.asarray(ratios, dtype=np.float64).ravel()
    scales = np.asarray(scales, dtype=np.float64).ravel()
    side = float(base_size)
    center = 0.5 * (side - 1)  # the base box spans pixels 0 .. base_size - 1
    # np.round rounds halves to even (11.5 -> 12), which the published table depends on.
    widths = np.round(np.sqrt(side * side / ratios))
    heights = np.round(widths * ratios)
    widths = (widths[:, np.newaxis] * scales).ravel()
    heights = (heights[:, np.newaxis] * scales).ravel()
    return np.stack([center - 0.5 * (widths - 1), center - 0.5 * (heights - 1),
                     center + 0.5 * (widths - 1), center + 0.5 * (heights - 1)], axis=1)


def shifted_anchors(anchors, feat_h, feat_w, feat_stride):
    """Places the A reference anchors at every cell of a feat_h x feat_w feature map.

    Cell (y, x) shifts anchors by (x * feat_stride, y * feat_stride). Returns
    (feat_h * feat_w * A, 4), row (y * feat_w + x) * A + a: positions major in row-major order,
    anchors minor, which is the order of the RPN's (1, A * 4, H, W) outputs once transposed to
    (1, H, W, A * 4) and reshaped to (-1, 4).
    """
    anchors = np.asarray(anchors)
    if anchors.ndim != 2 or anchors.shape[1] != 4:
        raise ValueError('shifted_anchors: anchors must be (A, 4); got shape %s'
                         % (anchors.shape,))
    dtype = anchors.dtype if np.issubdtype(anchors.dtype, np.floating) else np.float64
    xs = np.arange(feat_w, dtype=dtype) * feat_stride
    ys = np.arange(feat_h, dtype=dtype) * feat_stride
    shift_x, shift_y = np.meshgrid(xs, ys)  # (feat_h, feat_w): y major
    shifts = np.stack([shift_x.ravel(), shift_y.ravel()] * 2, axis=1)  # (K, 4)
    out = shifts[:, np.newaxis, :] + anchors.astype(dtype, copy=False)[np.newaxis, :, :]
    return out.reshape(-1, 4)


class AnchorGrids:
    """shifted_anchors(anchors, feat_h, feat_w, feat_stride) for the feature-map sizes a layer
    meets, each made once and kept read-only (training images come in a few sizes, and the
    anchor-target and proposal layers ask for the same grid at every iteration). At most
    max_sizes grids are kept; past that the oldest is dropped."""

    def __init__(self, anchors, feat_stride, max_sizes=32):
        self.anchors = np.asarray(anchors)
        self.feat_stride = feat_stride
        self.max_sizes = max_sizes
        self._grids = {}

    def __call__(self, feat_h, feat_w):
        key = (int(feat_h), int(feat_w))
        grid = self._grids.get(key)
        if grid is None:
            grid = shifted_anchors(self.anchors, feat_h, feat_w, self.feat_stride)
            grid.flags.writeable = False
            if len(self._grids) >= self.max_sizes:
                del self._grids[next(iter(self._grids))]
            self._grids[key] = grid
        return grid
