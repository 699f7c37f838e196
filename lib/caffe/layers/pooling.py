"""Pooling: Caffe's MAX and AVE pooling with its ceil-rounded output size.

out = ceil((in + 2*pad - kernel) / stride) + 1; with padding, one less if the last window would
start at or past in + pad (Caffe applies that correction only when there is padding). MAX may
have a second top, the mask: the index h*width + w of each maximum in its plane, as a float.
"""
import numpy as np

from .. import gpu
from ..layer import Layer, register
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


def pooled_size(size, kernel, pad, stride):
    """Caffe's pooled output length along one axis."""
    # Caffe divides in float32 before taking the ceiling.
    out = int(np.ceil(np.float32(size + 2 * pad - kernel) / np.float32(stride))) + 1
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
        if self.method == STOCHASTIC:
            raise layer_error(self, 'STOCHASTIC pooling is not implemented (use MAX or AVE)')
        if self.method not in (MAX, AVE):
            raise layer_error(self, 'unknown pooling method %d' % self.method)
        if self.method == MAX:
            check_count(self, 'top', top, (1, 2))  # the second is the argmax mask
        elif len(top) != 1:
            raise layer_error(self, 'takes 1 top blob with AVE pooling (a mask top only with '
                              'MAX), got %d' % len(top))
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
        if self.kernel is not None and (self.pad[0] >= self.kernel[0] or
                                        self.pad[1] >= self.kernel[1]):
            raise layer_error(self, 'pad %s must be smaller than the kernel %s'
                              % (self.pad, self.kernel))
        self.argmax = None

    @reshape_by_shapes
    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) != 4:
            raise layer_error(self, 'needs a 4-D bottom (num, channels, height, width); got '
                              'shape %s' % (shape,))
        num, channels, height, width = shape
        if self.global_pooling:
            self.kernel = (height, width)
        self.out_h = pooled_size(height, self.kernel[0], self.pad[0], self.stride[0])
        self.out_w = pooled_size(width, self.kernel[1], self.pad[1], self.stride[1])
        if self.out_h < 1 or self.out_w < 1:
            raise layer_error(self, 'kernel %s does not fit the padded input %dx%d (pad %s)'
                              % (self.kernel, height, width, self.pad))
        for t in top:
            t.reshape(num, channels, self.out_h, self.out_w)
        argmax_shape = (num * channels, self.out_h, self.out_w)
        if self.method == MAX and (self.argmax is None or self.argmax.shape != argmax_shape):
            self.argmax = np.empty(argmax_shape, np.int32)

    def _window(self):
        return self.kernel + self.pad + self.stride

    def forward_cpu(self, bottom, top):
        num, channels, height, width = bottom[0].shape
        data = bottom[0].cpu_data().reshape(num * channels, height, width)
        out = top[0].data.reshape(num * channels, self.out_h, self.out_w)
        if self.method == MAX:
            kernels.max_pool_forward(data, *self._window(), out, self.argmax)
            if len(top) > 1:
                top[1].data[...] = self.argmax.reshape(top[1].shape)
        else:
            kernels.ave_pool_forward(data, *self._window(), out)

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        num, channels, height, width = bottom[0].shape
        top_diff = top[0].cpu_diff().reshape(num * channels, self.out_h, self.out_w)
        diff = bottom[0].diff.reshape(num * channels, height, width)
        if self.method == MAX:
            kernels.max_pool_backward(top_diff, self.argmax, diff)
        else:
            kernels.ave_pool_backward(top_diff, *self._window(), diff)

    # GPU: caffe.gpu.pooling, the same window rules; argmax_gpu is argmax's device copy.
    def forward_gpu(self, bottom, top):
        from ..gpu import pooling as gpu_kernels
        num, channels, height, width = bottom[0].shape
        data = bottom[0].gpu_data().reshape(num * channels, height, width)
        out = top[0].mutable_gpu_data().reshape(num * channels, self.out_h, self.out_w)
        if self.method == MAX:
            if getattr(self, 'argmax_gpu', None) is None or self.argmax_gpu.shape != out.shape:
                self.argmax_gpu = gpu.empty(out.shape, np.int32)
            gpu_kernels.max_pool_forward(data, *self._window(), out, self.argmax_gpu)
            if len(top) > 1:
                mask = top[1].mutable_gpu_data()
                _int_to_float(mask.size, self.argmax_gpu, mask)
        else:
            gpu_kernels.ave_pool_forward(data, *self._window(), out)

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        from ..gpu import pooling as gpu_kernels
        num, channels, height, width = bottom[0].shape
        top_diff = top[0].gpu_diff().reshape(num * channels, self.out_h, self.out_w)
        diff = bottom[0].mutable_gpu_diff().reshape(num * channels, height, width)
        if self.method == MAX:
            gpu_kernels.max_pool_backward(top_diff, self.argmax_gpu, *self._window(), diff)
        else:
            gpu_kernels.ave_pool_backward(top_diff, *self._window(), diff)


_int_to_float = gpu.Kernel('elementwise.cu', 'int_to_float')
