"""Eltwise: element-wise PROD, SUM (with one coefficient per bottom) or MAX of equal-shape
bottoms."""
import numpy as np

from .. import gpu
from ..layer import Layer, register
from ..proto import caffe_pb2
from ._checks import layer_error, not_built, reshape_by_shapes

try:
    from . import elementwise_kernels as kernels
except ImportError as e:  # the package imports every layer; fail only when a Eltwise is built
    kernels = None
    _KERNELS_ERROR = e

_OP = caffe_pb2.EltwiseParameter


@register('Eltwise')
class EltwiseLayer(Layer):
    min_bottom_blobs = 2
    exact_num_top_blobs = 1

    def setup(self, bottom, top):
        if kernels is None:
            raise not_built(self, 'elementwise_kernels', _KERNELS_ERROR)
        p = self.layer_param.eltwise_param
        self.op = p.operation
        if self.op not in (_OP.PROD, _OP.SUM, _OP.MAX):
            raise layer_error(self, 'unknown eltwise_param.operation %d' % self.op)
        if p.coeff and len(p.coeff) != len(bottom):
            raise layer_error(self, 'eltwise_param.coeff needs one coefficient per bottom (%d), '
                              'got %d' % (len(bottom), len(p.coeff)))
        if p.coeff and self.op != _OP.SUM:
            raise layer_error(self, 'eltwise_param.coeff applies only to operation SUM')
        self.coeffs = [np.float32(c) for c in p.coeff] or [np.float32(1)] * len(bottom)
        self.stable_prod_grad = p.stable_prod_grad
        self.max_idx = None

    @reshape_by_shapes
    def reshape(self, bottom, top):
        for i, b in enumerate(bottom[1:], 1):
            if b.shape != bottom[0].shape:
                raise layer_error(self, 'bottom[%d] has shape %s, bottom[0] has %s'
                                  % (i, b.shape, bottom[0].shape))
        top[0].reshape_like(bottom[0])

    # One pass per bottom into the top (Caffe's loops), the same kernels as the GPU path.
    def forward_cpu(self, bottom, top):
        xs = [b.cpu_data().reshape(-1) for b in bottom]
        y = top[0].data.reshape(-1)
        if self.op == _OP.PROD:
            np.multiply(xs[0], xs[1], out=y)
            for x in xs[2:]:
                np.multiply(y, x, out=y)
        elif self.op == _OP.SUM:
            y[...] = 0
            for c, x in zip(self.coeffs, xs):
                kernels.add_scaled(c, x, y)
        else:
            # Ties go to bottom[1] in the first comparison and to the earlier bottom after it,
            # as Caffe's loop compares; max_idx records the winner for backward.
            if self.max_idx is None or self.max_idx.shape != top[0].shape:
                self.max_idx = np.empty(top[0].shape, np.int32)
            idx = self.max_idx.reshape(-1)
            kernels.eltwise_max_first(xs[0], xs[1], y, idx)
            for i, x in enumerate(xs[2:], 2):
                kernels.eltwise_max_next(x, i, y, idx)

    def backward_cpu(self, top, propagate_down, bottom):
        dy = top[0].cpu_diff().reshape(-1)
        for i, b in enumerate(bottom):
            if not propagate_down[i]:
                continue
            dx = b.diff.reshape(-1)
            if self.op == _OP.PROD:
                if self.stable_prod_grad:
                    others = [o.cpu_data().reshape(-1) for j, o in enumerate(bottom) if j != i]
                    dx[...] = others[0]
                    for o in others[1:]:
                        np.multiply(dx, o, out=dx)
                    np.multiply(dx, dy, out=dx)
                else:
                    kernels.eltwise_prod_backward(top[0].cpu_data().reshape(-1),
                                                  b.cpu_data().reshape(-1), dy, dx)
            elif self.op == _OP.SUM:
                if self.coeffs[i] == 1:
                    dx[...] = dy
                else:
                    np.multiply(dy, self.coeffs[i], out=dx)
            else:
                kernels.eltwise_max_backward(dy, self.max_idx.reshape(-1), i, dx)

    # GPU: the same operations, one element-wise kernel per bottom in the CPU code's order.
    def forward_gpu(self, bottom, top):
        xs = [b.gpu_data() for b in bottom]
        y = top[0].mutable_gpu_data()
        n = y.size
        if self.op == _OP.PROD:
            _multiply(n, xs[0], xs[1], y)
            for x in xs[2:]:
                _multiply(n, y, x, y)
        elif self.op == _OP.SUM:
            gpu.zero(y)
            for c, x in zip(self.coeffs, xs):
                _add_scaled(n, c, x, y)
        else:
            if getattr(self, 'max_idx_gpu', None) is None or self.max_idx_gpu.shape != y.shape:
                self.max_idx_gpu = gpu.empty(y.shape, np.int32)
            _max_first(n, xs[0], xs[1], y, self.max_idx_gpu)
            for i, x in enumerate(xs[2:], 2):
                _max_next(n, x, i, y, self.max_idx_gpu)

    def backward_gpu(self, top, propagate_down, bottom):
        dy = top[0].gpu_diff()
        n = dy.size
        for i, b in enumerate(bottom):
            if not propagate_down[i]:
                continue
            dx = b.mutable_gpu_diff()
            if self.op == _OP.PROD:
                if self.stable_prod_grad:
                    others = [o.gpu_data() for j, o in enumerate(bottom) if j != i]
                    gpu.copy(dx, others[0])
                    for o in others[1:]:
                        _multiply(n, dx, o, dx)
                    _multiply(n, dx, dy, dx)
                else:
                    _prod_backward(n, top[0].gpu_data(), b.gpu_data(), dy, dx)
            elif self.op == _OP.SUM:
                if self.coeffs[i] == 1:
                    gpu.copy(dx, dy)
                else:
                    _scale(n, self.coeffs[i], dy, dx)
            else:
                _max_backward(n, dy, self.max_idx_gpu, i, dx)


_multiply = gpu.Kernel('elementwise.cu', 'multiply')
_add_scaled = gpu.Kernel('elementwise.cu', 'add_scaled')
_scale = gpu.Kernel('elementwise.cu', 'scale')
_max_first = gpu.Kernel('elementwise.cu', 'eltwise_max_first')
_max_next = gpu.Kernel('elementwise.cu', 'eltwise_max_next')
_max_backward = gpu.Kernel('elementwise.cu', 'eltwise_max_backward')
_prod_backward = gpu.Kernel('elementwise.cu', 'eltwise_prod_backward')
