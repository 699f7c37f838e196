"""LRN: local response normalization, Caffe's two regions.

ACROSS_CHANNELS: scale = k + alpha/n * (sum of x^2 over the n channels centred on c, zero beyond
the ends), top = x * scale^-beta.
WITHIN_CHANNEL: Caffe builds it from smaller layers (split, power x^2, AVE pooling over n x n
with pad (n-1)/2, power (1 + alpha*avg)^-beta, product); this layer runs the same float32
operations in the same order, forward and backward, so its numbers are that network's (up to
the last bit of x^-beta: numpy's float32 pow and the C library's powf may round differently).
"""
import numpy as np

from .. import gpu
from ..layer import Layer, register
from ..proto import caffe_pb2
from ._checks import layer_error, not_built, reshape_by_shapes

try:
    from . import lrn_kernels
except ImportError as e:  # the package imports every layer; fail only when an LRN is built
    lrn_kernels = None
    _KERNELS_ERROR = e

ACROSS_CHANNELS = caffe_pb2.LRNParameter.ACROSS_CHANNELS
WITHIN_CHANNEL = caffe_pb2.LRNParameter.WITHIN_CHANNEL


@register('LRN')
class LRNLayer(Layer):
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def setup(self, bottom, top):
        p = self.layer_param.lrn_param
        self.size = p.local_size
        if self.size < 1 or self.size % 2 == 0:
            raise layer_error(self, 'local_size must be odd and positive (got %d)' % self.size)
        if p.norm_region not in (ACROSS_CHANNELS, WITHIN_CHANNEL):
            raise layer_error(self, 'unknown norm_region %d' % p.norm_region)
        if lrn_kernels is None:
            raise not_built(self, 'lrn_kernels', _KERNELS_ERROR)
        self.region = p.norm_region
        self.pre_pad = (self.size - 1) // 2
        self.alpha = np.float32(p.alpha)
        self.beta = np.float32(p.beta)
        self.k = np.float32(p.k)

    @reshape_by_shapes
    def reshape(self, bottom, top):
        if len(bottom[0].shape) != 4:
            raise layer_error(self, 'needs a 4-D bottom (num, channels, height, width); got '
                              'shape %s' % (bottom[0].shape,))
        top[0].reshape(bottom[0].shape)

    # Forward keeps what backward needs, as Caffe's internal blobs do, where the net runs this
    # layer's backward.
    def _kept(self, name, shape):
        return self.kept_array(name, shape) if self.need_backward else None

    def forward_cpu(self, bottom, top):
        if self.region == ACROSS_CHANNELS:
            self._forward_across(bottom[0].cpu_data(), top[0].data)
        else:
            self._forward_within(bottom[0].cpu_data(), top[0].data)

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        args = (top[0].cpu_diff(), top[0].cpu_data(), bottom[0].cpu_data(), bottom[0].diff)
        if self.region == ACROSS_CHANNELS:
            self._backward_across(*args)
        else:
            self._backward_within(*args)

    # ACROSS_CHANNELS ---------------------------------------------------------------------------
    # lrn_kernels slides the window sum along the channels (add the entering channel, subtract
    # the leaving one) as Caffe's loops do, so the float32 rounding is the same, and takes the
    # power scale^-beta in the same pass.
    def _forward_across(self, x, out):
        lrn_kernels.across_forward(x, self.size, self.alpha, self.beta, self.k,
                                   self._kept('scale', x.shape), out)

    def _backward_across(self, top_diff, top_data, x, bottom_diff):
        # d/dx_c = td_c * scale_c^-beta
        #          - 2*alpha*beta/n * x_c * sum over the window around c of td*top/scale
        # Caffe forms this constant in double precision.
        ratio_coeff = np.float32(2.0 * float(self.alpha) * float(self.beta) / self.size)
        lrn_kernels.across_backward(top_diff, top_data, x, self.kept_for_backward('scale'),
                                    self.size, self.beta,
                                    ratio_coeff, bottom_diff)

    # WITHIN_CHANNEL ----------------------------------------------------------------------------
    def _pool_args(self):
        return self.size, self.size, self.pre_pad, self.pre_pad, 1, 1

    def _planes(self, a):
        return a.reshape(-1, a.shape[2], a.shape[3])

    def _forward_within(self, x, out):
        # Only the power is kept: backward forms the pooled values again, as cheap as reading
        # them (a sum of size^2 squares), where Caffe's chain keeps three blobs of x's size.
        power = self._kept('power', x.shape)
        lrn_kernels.within_forward(self._planes(x), self.size, self.alpha, self.beta,
                                   power if power is None else self._planes(power),
                                   self._planes(out))

    def _power_layer_case(self):
        # Caffe's power layer y = (1 + alpha*p)^-beta has dy/dp = (-beta*alpha) * y /
        # (1 + alpha*p), with its special cases: a zero coefficient or exponent 1 (mode 0, a
        # constant), exponent 2 (mode 1, linear in p).
        diff_scale = -self.beta * self.alpha
        power_exp = -self.beta
        if diff_scale == 0 or power_exp == 1:
            mode = 0
        elif power_exp == 2:
            mode = 1
        else:
            mode = 2
        return diff_scale, mode

    def _backward_within(self, top_diff, top_data, x, bottom_diff):
        # The product top = x * power sends td*power to x and td*x to power; the power layer
        # passes it on to the pooled values, the pooling to the squares, d(x^2)/dx = 2x; the
        # split adds both paths. One plane at a time, in scratch planes per thread.
        diff_scale, mode = self._power_layer_case()
        lrn_kernels.within_backward(self._planes(x), self._planes(top_diff),
                                    self._planes(self.kept_for_backward('power')), self.size,
                                    self.alpha, diff_scale, mode, diff_scale != 0,
                                    self._planes(bottom_diff))

    # GPU ---------------------------------------------------------------------------------------
    # ACROSS_CHANNELS: kernels/lrn.cu walks the channels per pixel as the loops above do.
    # WITHIN_CHANNEL: the same chain of operations with element-wise kernels and the GPU AVE
    # pooling. The values kept for backward live in device arrays (scale_gpu, pooled_gpu,
    # power_gpu).
    def _kept_gpu(self, names, shape):
        for name in names:
            kept = getattr(self, name, None)
            if kept is None or kept.shape != shape:
                setattr(self, name, gpu.empty(shape))

    def forward_gpu(self, bottom, top):
        x = bottom[0].gpu_data()
        out = top[0].mutable_gpu_data()
        num, channels, height, width = x.shape
        if self.region == ACROSS_CHANNELS:
            self._kept_gpu(('scale_gpu',), x.shape)
            alpha_over_size = self.alpha / np.float32(self.size)
            _across_forward(num * height * width, x, channels, height * width, self.size,
                            alpha_over_size, self.k, -self.beta, self.scale_gpu, out)
            return
        from ..gpu.pooling import ave_pool_forward as ave_pool_forward_gpu
        self._kept_gpu(('pooled_gpu', 'power_gpu'), x.shape)
        square = gpu.empty(x.shape)
        _multiply(x.size, x, x, square)
        ave_pool_forward_gpu(self._planes(square), *self._pool_args(),
                             self._planes(self.pooled_gpu))
        _within_power(x.size, self.pooled_gpu, self.alpha, -self.beta, self.power_gpu)
        _multiply(x.size, x, self.power_gpu, out)

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        top_diff, top_data = top[0].gpu_diff(), top[0].gpu_data()
        x = bottom[0].gpu_data()
        bottom_diff = bottom[0].mutable_gpu_diff()
        num, channels, height, width = x.shape
        if self.region == ACROSS_CHANNELS:
            ratio_coeff = np.float32(2.0 * float(self.alpha) * float(self.beta) / self.size)
            _across_backward(num * height * width, x, top_data, self.scale_gpu, top_diff,
                             channels, height * width, self.size, -self.beta, ratio_coeff,
                             bottom_diff)
            return
        from ..gpu.pooling import ave_pool_backward as ave_pool_backward_gpu
        diff_scale, mode = self._power_layer_case()
        grad_pooled = gpu.empty(x.shape)
        _within_grad_pooled(x.size, x, top_diff, self.pooled_gpu, self.power_gpu, self.alpha,
                            diff_scale, mode, diff_scale != 0, grad_pooled)
        grad_square = gpu.empty(x.shape)
        ave_pool_backward_gpu(self._planes(grad_pooled), *self._pool_args(),
                              self._planes(grad_square))
        _within_backward(x.size, x, top_diff, self.power_gpu, grad_square, bottom_diff)


_across_forward = gpu.Kernel('lrn.cu', 'lrn_across_forward')
_across_backward = gpu.Kernel('lrn.cu', 'lrn_across_backward')
_within_power = gpu.Kernel('lrn.cu', 'lrn_within_power')
_within_grad_pooled = gpu.Kernel('lrn.cu', 'lrn_within_grad_pooled')
_within_backward = gpu.Kernel('lrn.cu', 'lrn_within_backward')
_multiply = gpu.Kernel('elementwise.cu', 'multiply')
