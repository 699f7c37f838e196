"""Reduction: reduces every axis from reduction_param.axis on (default 0: the whole blob to a
scalar) with SUM, ASUM (sum of absolute values), SUMSQ (sum of squares) or MEAN; the top keeps
the axes before `axis` (a 0-axis blob for axis 0).

Caffe's coeff (ReductionLayer): every result is multiplied by coeff; for MEAN the factor is
coeff / n, n the number of values reduced per output (`coeff_ /= dim_`), computed in float32.
The gradient of output i is top_diff[i] * that factor, times 1 (SUM, MEAN), sign(x) (ASUM, 0
at x = 0) or 2x (SUMSQ)."""
import numpy as np

from .. import gpu
from ..layer import Layer, register
from ..proto import caffe_pb2
from ._checks import canonical_axis, count_between, layer_error, not_built, reshape_by_shapes

try:
    from . import reduction_kernels as kernels
except ImportError as e:  # the package imports every layer; fail only when a Reduction is built
    kernels = None
    _KERNELS_ERROR = e

_OP = caffe_pb2.ReductionParameter
_forward = gpu.Kernel('reduction.cu', 'reduction_forward')
_backward = gpu.Kernel('reduction.cu', 'reduction_backward')
_THREADS = 256  # threads per row on the GPU (REDUCTION_THREADS in reduction.cu)


@register('Reduction')
class ReductionLayer(Layer):
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def setup(self, bottom, top):
        if kernels is None:
            raise not_built(self, 'reduction_kernels', _KERNELS_ERROR)
        self.op = self.layer_param.reduction_param.operation
        if self.op not in (_OP.SUM, _OP.ASUM, _OP.SUMSQ, _OP.MEAN):
            raise layer_error(self, 'unknown reduction_param.operation %d' % self.op)

    @reshape_by_shapes
    def reshape(self, bottom, top):
        p = self.layer_param.reduction_param
        shape = bottom[0].shape
        axis = canonical_axis(self, bottom[0], p.axis, 'reduction_param.axis')
        top[0].reshape(shape[:axis])
        self.num = count_between(shape, 0, axis)
        self.dim = count_between(shape, axis, None)
        coeff = np.float32(p.coeff)
        if self.op == _OP.MEAN:
            coeff = coeff / np.float32(self.dim) if self.dim else np.float32(np.inf)
        self.coeff = np.float32(coeff)

    def forward_cpu(self, bottom, top):
        kernels.reduce_rows(bottom[0].cpu_data().reshape(self.num, self.dim), self.op,
                            self.coeff, top[0].data.reshape(-1))

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        # One float32 factor per output (Caffe's bottom_coeff), applied in one pass.
        factor = (top[0].cpu_diff().reshape(-1) * self.coeff)[:, None]
        dx = bottom[0].diff.reshape(self.num, self.dim)
        if self.op in (_OP.SUM, _OP.MEAN):
            dx[...] = factor
        elif self.op == _OP.ASUM:
            np.sign(bottom[0].cpu_data().reshape(self.num, self.dim), out=dx)
            dx *= factor
        else:
            np.multiply(bottom[0].cpu_data().reshape(self.num, self.dim), 2 * factor, out=dx)

    # GPU: one block per output, the sum in double (kernels/reduction.cu); the gradient
    # element-wise, as on the CPU.
    def forward_gpu(self, bottom, top):
        if self.num:
            _forward.launch((self.num, 1), (_THREADS, 1, 1), np.int32(self.dim),
                            bottom[0].gpu_data(), np.int32(self.op), self.coeff,
                            top[0].mutable_gpu_data())

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = bottom[0].mutable_gpu_diff()
        _backward(dx.size, self.dim, np.int32(self.op), self.coeff, bottom[0].gpu_data(),
                  top[0].gpu_diff(), dx)
