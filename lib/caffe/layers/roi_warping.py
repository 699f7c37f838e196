"""ROIWarping (MNC's RoI warping, Dai, He and Sun): bilinear samples of each RoI on a regular grid,
differentiable in the features AND in the box coordinates (Faster R-CNN Sec. 3.2, non-approximate
joint training). docs/roi_warping.md has the definition, the gradients and the conventions at the
kinks; in short:

Bottoms: features (N, C, H, W) and rois (R, 5) rows [batch_index, x1, y1, x2, y2] in image pixels.
Top: (R, C, pooled_h, pooled_w). With F = samples_per_bin, the box is sampled on a grid of
F * pooled_h rows and F * pooled_w columns; F > 1 max-pools each F x F block (the MNC paper's
warp to twice the size followed by 2 x 2 max pooling is F = 2).

- Extent (the project's +1 pixel convention: pixel i covers [i, i + 1), a box x2 - x1 + 1 wide):
  the box covers [x1, x2 + 1) x [y1, y2 + 1) in image coordinates, [x1 * s, (x2 + 1) * s) on the
  map (s = spatial_scale), where feature cell j covers [j, j + 1) and its value sits at its
  centre j + 0.5. Nothing is rounded; a box with x2 < x1 - 1 is sampled mirrored (the grid is an
  affine function of the corners everywhere).
- Sample k of SW columns: u_k = x1 * s + (k + 0.5) / SW * (x2 - x1 + 1) * s, read at cell-index
  position p = u_k - 0.5 by bilinear interpolation between cells floor(p) and floor(p) + 1;
  cells off the map count as 0 (a sample with p outside [-1, W) is 0).
- Backward: features get each bin's diff times the bilinear weights of its sample (for F > 1 the
  sample the max took); rois get d/d(x1, y1, x2, y2) through the interpolation's slope and
  du_k/dx1 = s * (1 - (k + 0.5) / SW), du_k/dx2 = s * (k + 0.5) / SW; the batch-index column
  gets 0. At a kink (a sample exactly on an integer position, the map border included) the
  slope is the one-sided one towards increasing coordinates; among tied samples of a max-pool
  block the first in row-major order takes the gradient.
- propagate_down[1] false (a prototxt's `propagate_down`, or a net that needs no gradient
  there) skips the coordinate gradient and leaves the rois diff untouched.

The loops are in roi_warping_kernels.pyx (OpenMP) and kernels/roi_warping.cu (the same float32
operations in the same order: CPU and GPU agree bit for bit, and both are deterministic).
"""
import numpy as np

from .. import gpu
from ..layer import Layer, register
from ._checks import check_roi_bottoms, layer_error, not_built, roi_rows

_grid_kernel = gpu.Kernel('roi_warping.cu', 'roi_warp_grid')
_forward_kernel = gpu.Kernel('roi_warping.cu', 'roi_warp_forward')
_features_kernel = gpu.Kernel('roi_warping.cu', 'roi_warp_backward_features')
_partial_kernel = gpu.Kernel('roi_warping.cu', 'roi_warp_backward_coords_partial')
_reduce_kernel = gpu.Kernel('roi_warping.cu', 'roi_warp_backward_coords_reduce')

try:
    from . import roi_warping_kernels as _kernels
    _IMPORT_ERROR = None
except ImportError as e:  # the Cython extension is not built yet
    _kernels = None
    _IMPORT_ERROR = e

# argmax holds i * F + j in a byte.
MAX_SAMPLES_PER_BIN = 15


@register('ROIWarping')
class ROIWarpingLayer(Layer):
    # Both bottoms are differentiable: the rois get their coordinate gradient.
    non_differentiable_bottoms = ()
    exact_num_bottom_blobs = 2
    exact_num_top_blobs = 1

    def setup(self, bottom, top):
        if _kernels is None:
            raise not_built(self, 'roi_warping_kernels', _IMPORT_ERROR)
        p = self.layer_param.roi_warping_param
        if p.pooled_h <= 0 or p.pooled_w <= 0:
            raise layer_error(self, 'roi_warping_param.pooled_h and pooled_w must be > 0, got '
                              '%d x %d' % (p.pooled_h, p.pooled_w))
        if not 1 <= p.samples_per_bin <= MAX_SAMPLES_PER_BIN:
            raise layer_error(self, 'roi_warping_param.samples_per_bin must be 1 to %d, got %d'
                              % (MAX_SAMPLES_PER_BIN, p.samples_per_bin))
        if not (np.isfinite(p.spatial_scale) and p.spatial_scale > 0):
            raise layer_error(self, 'roi_warping_param.spatial_scale must be a positive number, '
                              'got %g' % p.spatial_scale)
        self.pooled_h, self.pooled_w = int(p.pooled_h), int(p.pooled_w)
        self.samples = int(p.samples_per_bin)
        self.spatial_scale = np.float32(p.spatial_scale)
        self.argmax = None
        self.argmax_gpu = None
        self._grid_gpu = gpu.Workspace(np.float32)
        self._partial_gpu = gpu.Workspace(np.float64)
        self._partial = np.empty((0, 0, 4))

    @property
    def _grid_rows(self):
        """Sample rows and columns per RoI."""
        return self.samples * self.pooled_h, self.samples * self.pooled_w

    def reshape(self, bottom, top):
        features, rois = bottom
        check_roi_bottoms(self, features, rois)
        shape = (rois.shape[0], features.shape[1], self.pooled_h, self.pooled_w)
        top[0].reshape(shape)
        if self.samples > 1 and (self.argmax is None or self.argmax.shape != shape):
            self.argmax = np.zeros(shape, dtype=np.uint8)

    def _grid(self, features, rois):
        """Per RoI, the sample columns then rows as (cell, fraction), see the .pyx."""
        sh, sw = self._grid_rows
        cells = np.empty((rois.shape[0], sw + sh), dtype=np.int32)
        fracs = np.empty((rois.shape[0], sw + sh), dtype=np.float32)
        _kernels.sample_grid(rois, self.spatial_scale, sh, sw, features.shape[2],
                             features.shape[3], cells, fracs)
        return cells, fracs

    def forward_cpu(self, bottom, top):
        rois = roi_rows(self, bottom[0], bottom[1])
        _kernels.warp_forward(bottom[0].cpu_data(), rois, *self._grid(bottom[0], rois),
                              self.samples, top[0].data, self.argmax)

    def backward_cpu(self, top, propagate_down, bottom):
        features_down = propagate_down[0]
        coords_down = len(propagate_down) > 1 and propagate_down[1]
        if not (features_down or coords_down):
            return
        rois = roi_rows(self, bottom[0], bottom[1])
        cells, fracs = self._grid(bottom[0], rois)
        top_diff = top[0].cpu_diff()
        if features_down:
            diff = bottom[0].diff
            diff[...] = 0
            _kernels.warp_backward_features(top_diff, rois, cells, fracs, self.samples,
                                            self.argmax, diff)
        if coords_down:
            shape = (rois.shape[0], bottom[0].shape[1], 4)
            if self._partial.shape != shape:
                self._partial = np.empty(shape, dtype=np.float64)
            _kernels.warp_backward_coords(bottom[0].cpu_data(), top_diff, rois, cells, fracs,
                                          self.samples, self.argmax, self.spatial_scale,
                                          self._partial, bottom[1].diff.reshape(-1, 5))

    # GPU: kernels/roi_warping.cu. The rois are checked on the host, where the proposal layers
    # make them; the sample grid is computed on the device from the device copy.
    def _grid_on_device(self, bottom):
        roi_rows(self, bottom[0], bottom[1])
        sh, sw = self._grid_rows
        count = bottom[1].shape[0]
        rois = bottom[1].gpu_data()
        grid = self._grid_gpu.get(count * (sw + sh))
        _grid_kernel(grid.size, rois, self.spatial_scale, sh, sw, grid)
        return rois, grid

    def forward_gpu(self, bottom, top):
        rois, grid = self._grid_on_device(bottom)
        features = bottom[0].gpu_data()
        out = top[0].mutable_gpu_data()
        argmax = None
        if self.samples > 1:
            if self.argmax_gpu is None or self.argmax_gpu.shape != out.shape:
                self.argmax_gpu = gpu.empty(out.shape, np.uint8)
            argmax = self.argmax_gpu
        _, channels, height, width = features.shape
        _forward_kernel(out.size, features, channels, height, width, rois, grid, self.samples,
                        self.pooled_h, self.pooled_w, out, argmax)

    def backward_gpu(self, top, propagate_down, bottom):
        features_down = propagate_down[0]
        coords_down = len(propagate_down) > 1 and propagate_down[1]
        if not (features_down or coords_down):
            return
        rois, grid = self._grid_on_device(bottom)
        argmax = self.argmax_gpu if self.samples > 1 else None
        top_diff = top[0].gpu_diff()
        count = bottom[1].shape[0]
        _, channels, height, width = bottom[0].shape
        if features_down:
            diff = bottom[0].mutable_gpu_diff()
            _features_kernel(diff.size, top_diff, count, rois, grid, self.samples, argmax,
                             channels, height, width, self.pooled_h, self.pooled_w, diff)
        if coords_down:
            partial = self._partial_gpu.get(count * channels * 4)
            _partial_kernel(count * channels, bottom[0].gpu_data(), top_diff, rois, grid,
                            self.samples, argmax, channels, height, width, self.pooled_h,
                            self.pooled_w, partial)
            _reduce_kernel(count * 5, partial, channels, self.spatial_scale,
                           bottom[1].mutable_gpu_diff())
