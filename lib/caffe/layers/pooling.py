"""Pooling: Caffe's MAX, AVE and STOCHASTIC pooling with its rounded output size.

out = ceil((in + 2*pad - kernel) / stride) + 1 (floor with round_mode: FLOOR); with padding,
one less if the last window would start at or past in + pad (Caffe applies that correction only
when there is padding). MAX may have a second top, the mask: the index h*width + w of each
maximum in its plane, as a float.

STOCHASTIC (Caffe's GPU kernels; Caffe has no CPU version): in training each output is one
value of its window, drawn with probability proportional to the values (activations are
expected to be non-negative, as after a ReLU), and the gradient goes to the value drawn; at
test time each output is the window's values weighted by themselves, sum(x^2) / sum(x) (0 where
sum(x) <= 0). Windows have no padding (Caffe refuses pad with STOCHASTIC). The uniform draws
come from the runtime's random stream on the host, on either device (as Dropout's masks do).
Caffe's backward in the TEST phase routes the gradient through whatever sample its buffer
holds; here it is the gradient of the weighted average the forward pass gave.
"""
import numpy as np

from .. import gpu
from ..common import rng
from ..layer import TRAIN, Layer, register
from ..proto import caffe_pb2
from ._checks import check_count, layer_error, not_built, reshape_by_shapes, spatial_pair

try:
    from . import pooling_kernels as kernels
except ImportError as e:  # the package imports every layer; fail only when a Pooling is built
    kernels = None
    _KERNELS_ERROR = e

MAX = caffe_pb2.PoolingParameter.MAX
AVE = caffe_pb2.PoolingParameter.AVE
STOCHASTIC = caffe_pb2.PoolingParameter.STOCHASTIC


CEIL = caffe_pb2.PoolingParameter.CEIL
FLOOR = caffe_pb2.PoolingParameter.FLOOR


def pooled_size(size, kernel, pad, stride, round_mode=CEIL):
    """Caffe's pooled output length along one axis."""
    # Caffe divides in float32 before rounding.
    rounding = np.floor if round_mode == FLOOR else np.ceil
    out = int(rounding(np.float32(size + 2 * pad - kernel) / np.float32(stride))) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


@register('Pooling')
class PoolingLayer(Layer):
    exact_num_bottom_blobs = 1
    min_top_blobs, max_top_blobs = 1, 2  # a mask top only with MAX

    def setup(self, bottom, top):
        if kernels is None:
            raise not_built(self, 'pooling_kernels', _KERNELS_ERROR)
        p = self.layer_param.pooling_param
        self.method = p.pool
        if self.method not in (MAX, AVE, STOCHASTIC):
            raise layer_error(self, 'unknown pooling method %d' % self.method)
        if p.round_mode not in (CEIL, FLOOR):
            raise layer_error(self, 'unknown pooling_param.round_mode %d' % p.round_mode)
        self.round_mode = p.round_mode
        if self.method == MAX:
            check_count(self, 'top', top, (1, 2))  # the second is the argmax mask
        elif len(top) != 1:
            raise layer_error(self, 'takes 1 top blob with %s pooling (a mask top only with '
                              'MAX), got %d' % ('AVE' if self.method == AVE else 'STOCHASTIC',
                                                len(top)))
        self.global_pooling = p.global_pooling
        if self.global_pooling:
            if p.HasField('kernel_size') or p.HasField('kernel_h') or p.HasField('kernel_w'):
                raise layer_error(self, 'global_pooling takes its kernel from the bottom; do not '
                                  'give kernel_size')
            self.kernel = None
        else:
            self.kernel = spatial_pair(self, p, 'kernel_size', 'kernel', None)
            if min(self.kernel) < 1:
                raise layer_error(self, 'kernel %s must be positive' % (self.kernel,))
        self.pad = spatial_pair(self, p, 'pad', 'pad', p.pad)
        self.stride = spatial_pair(self, p, 'stride', 'stride', p.stride)
        if min(self.stride) < 1:
            raise layer_error(self, 'stride %s must be positive' % (self.stride,))
        if self.global_pooling and (self.pad != (0, 0) or self.stride != (1, 1)):
            raise layer_error(self, 'global_pooling needs pad 0 and stride 1 (got pad %s, '
                              'stride %s)' % (self.pad, self.stride))
        if self.method == STOCHASTIC and self.pad != (0, 0):
            raise layer_error(self, 'STOCHASTIC pooling takes no padding (Caffe: "Padding '
                              'implemented only for average and max pooling"), got pad %s'
                              % (self.pad,))
        if self.kernel is not None and (self.pad[0] >= self.kernel[0] or
                                        self.pad[1] >= self.kernel[1]):
            raise layer_error(self, 'pad %s must be smaller than the kernel %s'
                              % (self.pad, self.kernel))

    @reshape_by_shapes
    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) != 4:
            raise layer_error(self, 'needs a 4-D bottom (num, channels, height, width); got '
                              'shape %s' % (shape,))
        num, channels, height, width = shape
        if self.global_pooling:
            self.kernel = (height, width)
        self.out_h = pooled_size(height, self.kernel[0], self.pad[0], self.stride[0],
                                 self.round_mode)
        self.out_w = pooled_size(width, self.kernel[1], self.pad[1], self.stride[1],
                                 self.round_mode)
        if self.out_h < 1 or self.out_w < 1:
            raise layer_error(self, 'kernel %s does not fit the padded input %dx%d (pad %s)'
                              % (self.kernel, height, width, self.pad))
        for t in top:
            t.reshape(num, channels, self.out_h, self.out_w)

    def _window(self):
        return self.kernel + self.pad + self.stride

    def _uniforms(self, shape):
        """STOCHASTIC's draws in [0, 1), one per output (Caffe's caffe_rng_uniform)."""
        return rng().random_sample(shape).astype(np.float32)

    def forward_cpu(self, bottom, top):
        num, channels, height, width = bottom[0].shape
        data = bottom[0].cpu_data().reshape(num * channels, height, width)
        out = top[0].data.reshape(num * channels, self.out_h, self.out_w)
        if self.method == MAX:
            # The argmax is kept for backward and for the mask top only.
            argmax = self.kept_array('argmax', out.shape, np.int32) \
                if self.need_backward or len(top) > 1 else None
            kernels.max_pool_forward(data, *self._window(), out, argmax)
            if len(top) > 1:
                top[1].data[...] = argmax.reshape(top[1].shape)
        elif self.method == AVE:
            kernels.ave_pool_forward(data, *self._window(), out)
        elif self.phase == TRAIN:
            # STOCHASTIC's drawn positions (training) or window sums (test).
            kernels.stochastic_pool_forward_train(
                data, *self.kernel, *self.stride, self._uniforms(out.shape), out,
                self.kept_array('argmax', out.shape, np.int32))
        else:
            kernels.stochastic_pool_forward_test(
                data, *self.kernel, *self.stride, out,
                self.kept_array('window_sum', out.shape, np.float32))

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        num, channels, height, width = bottom[0].shape
        top_diff = top[0].cpu_diff().reshape(num * channels, self.out_h, self.out_w)
        diff = bottom[0].diff.reshape(num * channels, height, width)
        if self.method == MAX or (self.method == STOCHASTIC and self.phase == TRAIN):
            kernels.max_pool_backward(top_diff, self.kept_for_backward('argmax'), diff)
        elif self.method == AVE:
            kernels.ave_pool_backward(top_diff, *self._window(), diff)
        else:
            kernels.stochastic_pool_backward_test(
                top_diff, bottom[0].cpu_data().reshape(diff.shape),
                top[0].cpu_data().reshape(top_diff.shape), self.kept_for_backward('window_sum'),
                *self.kernel, *self.stride, diff)

    # GPU: caffe.gpu.pooling, the same window rules; argmax_gpu is argmax's device copy.
    def forward_gpu(self, bottom, top):
        from ..gpu import pooling as gpu_kernels
        num, channels, height, width = bottom[0].shape
        data = bottom[0].gpu_data().reshape(num * channels, height, width)
        out = top[0].mutable_gpu_data().reshape(num * channels, self.out_h, self.out_w)
        if self.method != AVE and (getattr(self, 'argmax_gpu', None) is None or
                                   self.argmax_gpu.shape != out.shape):
            self.argmax_gpu = gpu.empty(out.shape, np.int32)
            self.window_sum_gpu = gpu.empty(out.shape, np.float32)
        if self.method == MAX:
            gpu_kernels.max_pool_forward(data, *self._window(), out, self.argmax_gpu)
            if len(top) > 1:
                mask = top[1].mutable_gpu_data()
                _int_to_float(mask.size, self.argmax_gpu, mask)
        elif self.method == AVE:
            gpu_kernels.ave_pool_forward(data, *self._window(), out)
        elif self.phase == TRAIN:
            gpu_kernels.stochastic_pool_forward_train(
                data, *self.kernel, *self.stride, gpu.to_device(self._uniforms(out.shape)), out,
                self.argmax_gpu)
        else:
            gpu_kernels.stochastic_pool_forward_test(data, *self.kernel, *self.stride, out,
                                                     self.window_sum_gpu)

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        from ..gpu import pooling as gpu_kernels
        num, channels, height, width = bottom[0].shape
        top_diff = top[0].gpu_diff().reshape(num * channels, self.out_h, self.out_w)
        diff = bottom[0].mutable_gpu_diff().reshape(num * channels, height, width)
        if self.method == MAX or (self.method == STOCHASTIC and self.phase == TRAIN):
            gpu_kernels.max_pool_backward(top_diff, self.argmax_gpu, *self._window(), diff)
        elif self.method == AVE:
            gpu_kernels.ave_pool_backward(top_diff, *self._window(), diff)
        else:
            gpu_kernels.stochastic_pool_backward_test(
                top_diff, bottom[0].gpu_data().reshape(diff.shape),
                top[0].gpu_data().reshape(top_diff.shape), self.window_sum_gpu, *self.kernel,
                *self.stride, diff)


_int_to_float = gpu.Kernel('elementwise.cu', 'int_to_float')
