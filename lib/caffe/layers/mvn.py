"""MVN: mean-variance normalization of each image's channels (or, with across_channels, of each
whole image).

Caffe's eps placement (MVNLayer::Forward_cpu: powx(variance, 0.5), then add_scalar(eps)): the
values are divided by sqrt(var) + eps, not by sqrt(var + eps) as BatchNorm (and OpenCV's MVN)
do; var is the biased variance (the mean of squared deviations). The gradient is Caffe's too:
dx = (dy - (y * sum(y dy) + sum(dy)) / n) / (sqrt(var) + eps), which is the exact gradient only
for eps = 0 (its default is 1e-9).

Rows follow Caffe's legacy num/channels view: num * channels rows of the remaining values, or
num rows with across_channels; a blob of fewer than four axes counts its missing axes as 1."""
import numpy as np

from .. import gpu
from ..layer import Layer, register
from ._checks import layer_error, not_built, reshape_by_shapes

try:
    from . import mvn_kernels as kernels
except ImportError as e:  # the package imports every layer; fail only when an MVN is built
    kernels = None
    _KERNELS_ERROR = e

_forward = gpu.Kernel('mvn.cu', 'mvn_forward')
_backward = gpu.Kernel('mvn.cu', 'mvn_backward')
_THREADS = 256  # threads per row on the GPU (MVN_THREADS in mvn.cu)


@register('MVN')
class MVNLayer(Layer):
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def setup(self, bottom, top):
        if kernels is None:
            raise not_built(self, 'mvn_kernels', _KERNELS_ERROR)
        p = self.layer_param.mvn_param
        self.normalize_variance = p.normalize_variance
        self.across_channels = p.across_channels
        self.eps = np.float32(p.eps)

    @reshape_by_shapes
    def reshape(self, bottom, top):
        b = bottom[0]
        if len(b.shape) > 4:
            raise layer_error(self, 'takes blobs of at most 4 axes (Caffe reads num, channels, '
                              'height, width), got %s' % (b.shape,))
        top[0].reshape_like(b)
        self.rows = b.num if self.across_channels else b.num * b.channels
        self.dim = b.count // self.rows if self.rows else 0
        self.scale = np.empty(self.rows, np.float32)
        self.scale_gpu = None

    def _rows(self, array):
        return array.reshape(self.rows, self.dim)

    def forward_cpu(self, bottom, top):
        kernels.forward(self._rows(bottom[0].cpu_data()), self.eps, self.normalize_variance,
                        self._rows(top[0].data), self.scale)

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        kernels.backward(self._rows(top[0].cpu_data()), self._rows(top[0].cpu_diff()),
                         self.scale, self.normalize_variance, self._rows(bottom[0].diff))

    # GPU: one block per row, sums in double (kernels/mvn.cu); the element-wise steps as on the
    # CPU.
    def forward_gpu(self, bottom, top):
        if self.scale_gpu is None or self.scale_gpu.size != self.rows:
            self.scale_gpu = gpu.empty(max(self.rows, 1), np.float32)
        if self.rows and self.dim:
            _forward.launch((self.rows, 1), (_THREADS, 1, 1), np.int32(self.dim),
                            bottom[0].gpu_data(), self.eps, np.int32(self.normalize_variance),
                            top[0].mutable_gpu_data(), self.scale_gpu)

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0] or not (self.rows and self.dim):
            return
        _backward.launch((self.rows, 1), (_THREADS, 1, 1), np.int32(self.dim),
                         top[0].gpu_data(), top[0].gpu_diff(), self.scale_gpu,
                         np.int32(self.normalize_variance), bottom[0].mutable_gpu_diff())
