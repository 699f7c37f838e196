"""Eltwise: element-wise PROD, SUM (with one coefficient per bottom) or MAX of equal-shape
bottoms."""
import numpy as np

from .. import gpu
from ..layer import Layer, register
from ..proto import caffe_pb2
from ._checks import layer_error

_OP = caffe_pb2.EltwiseParameter


@register('Eltwise')
class EltwiseLayer(Layer):
    min_bottom_blobs = 2
    exact_num_top_blobs = 1

    def setup(self, bottom, top):
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

    def reshape(self, bottom, top):
        for i, b in enumerate(bottom[1:], 1):
            if b.shape != bottom[0].shape:
                raise layer_error(self, 'bottom[%d] has shape %s, bottom[0] has %s'
                                  % (i, b.shape, bottom[0].shape))
        top[0].reshape_like(bottom[0])

    def forward_cpu(self, bottom, top):
        xs = [b.cpu_data() for b in bottom]
        if self.op == _OP.PROD:
            y = xs[0] * xs[1]
            for x in xs[2:]:
                y = y * x
        elif self.op == _OP.SUM:
            y = np.zeros_like(xs[0])
            for c, x in zip(self.coeffs, xs):
                y += c * x
        else:
            # Ties go to bottom[1] in the first comparison and to the earlier bottom after it,
            # as Caffe's loop compares; max_idx records the winner for backward.
            first = xs[0] > xs[1]
            y = np.where(first, xs[0], xs[1])
            idx = np.where(first, 0, 1).astype(np.int32)
            for i, x in enumerate(xs[2:], 2):
                better = x > y
                y = np.where(better, x, y)
                idx[better] = i
            self.max_idx = idx
        top[0].data[...] = y

    def backward_cpu(self, top, propagate_down, bottom):
        dy = top[0].cpu_diff()
        for i, b in enumerate(bottom):
            if not propagate_down[i]:
                continue
            if self.op == _OP.PROD:
                if self.stable_prod_grad:
                    others = [o.cpu_data() for j, o in enumerate(bottom) if j != i]
                    g = others[0].copy()
                    for o in others[1:]:
                        g *= o
                else:
                    g = top[0].cpu_data() / b.cpu_data()
                b.diff[...] = g * dy
            elif self.op == _OP.SUM:
                b.diff[...] = dy if self.coeffs[i] == 1 else self.coeffs[i] * dy
            else:
                b.diff[...] = np.where(self.max_idx == i, dy, np.float32(0))

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
