"""ROIPooling (Fast R-CNN fork): max pooling of each RoI into a fixed pooled_h x pooled_w grid.

Bottoms: features (N, C, H, W) and rois (R, 5) rows [batch_index, x1, y1, x2, y2] in image
coordinates (scaled by spatial_scale onto the features). Top: (R, C, pooled_h, pooled_w).
The loops are in roi_pooling_kernels.pyx; `argmax` (R, C, pooled_h, pooled_w), the flat h * W + w
of each bin's maximum or -1, is kept for backward as the fork's max_idx_ blob."""
import numpy as np

from .. import gpu
from ..layer import Layer, register
from ._checks import check_roi_bottoms, layer_error, not_built, reshape_by_shapes, roi_rows

_forward_kernel = gpu.Kernel('roi_pooling.cu', 'roi_pool_forward')
_backward_kernel = gpu.Kernel('roi_pooling.cu', 'roi_pool_backward')

try:
    from . import roi_pooling_kernels as _kernels
    _IMPORT_ERROR = None
except ImportError as e:  # the Cython extension is not built yet
    _kernels = None
    _IMPORT_ERROR = e


@register('ROIPooling')
class ROIPoolingLayer(Layer):
    non_differentiable_bottoms = (1,)
    exact_num_bottom_blobs = 2
    exact_num_top_blobs = 1

    def setup(self, bottom, top):
        if _kernels is None:
            raise not_built(self, 'roi_pooling_kernels', _IMPORT_ERROR)
        p = self.layer_param.roi_pooling_param
        if p.pooled_h <= 0 or p.pooled_w <= 0:
            raise layer_error(self, 'roi_pooling_param.pooled_h and pooled_w must be > 0, got '
                              '%d x %d' % (p.pooled_h, p.pooled_w))
        self.pooled_h, self.pooled_w = int(p.pooled_h), int(p.pooled_w)
        self.spatial_scale = np.float32(p.spatial_scale)

    @reshape_by_shapes
    def reshape(self, bottom, top):
        features, rois = bottom
        check_roi_bottoms(self, features, rois)
        shape = (rois.shape[0], features.shape[1], self.pooled_h, self.pooled_w)
        top[0].reshape(shape)

    def _rois(self, bottom):
        return roi_rows(self, bottom[0], bottom[1])

    def forward_cpu(self, bottom, top):
        rois = self._rois(bottom)
        argmax = self.kept_array('argmax', top[0].shape, np.int32) if self.need_backward \
            else None
        _kernels.roi_pool_forward(bottom[0].cpu_data(), rois, self.spatial_scale,
                                  top[0].data, argmax)

    def backward_cpu(self, top, propagate_down, bottom):
        if len(propagate_down) > 1 and propagate_down[1]:
            bottom[1].diff[...] = 0
        if not propagate_down[0]:
            return
        diff = bottom[0].diff
        diff[...] = 0
        _kernels.roi_pool_backward(top[0].cpu_diff(), self.kept_for_backward('argmax'),
                                   self._rois(bottom),
                                   self.spatial_scale, diff)

    # GPU: kernels/roi_pooling.cu, the same loops (forward per bin; backward gathering per
    # feature element, in the CPU loop's order). The rois are checked on the host, where the
    # proposal layers make them.
    def forward_gpu(self, bottom, top):
        self._rois(bottom)
        features = bottom[0].gpu_data()
        out = top[0].mutable_gpu_data()
        if getattr(self, 'argmax_gpu', None) is None or self.argmax_gpu.shape != out.shape:
            self.argmax_gpu = gpu.empty(out.shape, np.int32)
        _, channels, height, width = features.shape
        _forward_kernel(out.size, features, channels, height, width, bottom[1].gpu_data(),
                        self.spatial_scale, self.pooled_h, self.pooled_w, out, self.argmax_gpu)

    def backward_gpu(self, top, propagate_down, bottom):
        if len(propagate_down) > 1 and propagate_down[1]:
            gpu.zero(bottom[1].mutable_gpu_diff())
        if not propagate_down[0]:
            return
        self._rois(bottom)
        _, channels, height, width = bottom[0].shape
        diff = bottom[0].mutable_gpu_diff()
        _backward_kernel(diff.size, top[0].gpu_diff(), self.argmax_gpu, bottom[1].shape[0],
                         bottom[1].gpu_data(), self.spatial_scale, channels, height, width,
                         self.pooled_h, self.pooled_w, diff)
