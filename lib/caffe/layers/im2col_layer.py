"""Im2col: the column matrix of a convolution as a blob (type "Im2col"; the kernels it runs are
caffe.layers.im2col and im2col_nd, hence this file's name).

convolution_param gives the geometry as for Convolution (axis, N-d kernels, force_nd_im2col;
num_output, group and the fillers are not read). Caffe's top shape: the bottom's, with the
channel axis multiplied by the kernel's size and each spatial axis the convolution's output
size; image n of the top is the (channels * prod(kernel), output positions) column matrix of
image n of the bottom. Backward is col2im."""
import numpy as np

from ..layer import Layer, register
from ._checks import count_between, layer_error, not_built, reshape_by_shapes
from .base_conv import ColumnOps, conv_output_size, parse_geometry

try:
    from . import im2col_nd
except ImportError as e:  # the package imports every layer; fail only when an Im2col is built
    im2col_nd = None
    _KERNELS_ERROR = e


@register('Im2col')
class Im2colLayer(Layer):
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def setup(self, bottom, top):
        if im2col_nd is None:
            raise not_built(self, 'im2col_nd', _KERNELS_ERROR)
        parse_geometry(self, bottom)

    @reshape_by_shapes
    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) != self.axis + 1 + self.spatial_axes:
            raise layer_error(self, 'bottom shape %s; expected %d axes as at setup'
                              % (shape, self.axis + 1 + self.spatial_axes))
        self.num = count_between(shape, 0, self.axis)
        self.channels = shape[self.axis]
        image = tuple(shape[self.axis + 1:])
        out = tuple(conv_output_size(s, k, p, st, d) for s, k, p, st, d in
                    zip(image, self.kernel, self.pad, self.stride, self.dilation))
        if min(out) < 1:
            raise layer_error(self, 'kernel %s (dilation %s) is larger than the padded input %s '
                              '(pad %s)' % (self.kernel, self.dilation, image, self.pad))
        top[0].reshape(tuple(shape[:self.axis]) +
                       (self.channels * int(np.prod(self.kernel)),) + out)
        self.columns = ColumnOps(self.channels, image, out, self.kernel, self.pad, self.stride,
                                 self.dilation, self.force_nd)

    def _views(self, bottom_array, top_array):
        return (bottom_array.reshape(self.num, self.channels, -1),
                top_array.reshape(self.num, self.columns.rows, self.columns.cols))

    def forward_cpu(self, bottom, top):
        x, y = self._views(bottom[0].cpu_data(), top[0].data)
        for n in range(self.num):
            self.columns.im2col(x[n], y[n])

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx, dy = self._views(bottom[0].diff, top[0].cpu_diff())
        for n in range(self.num):
            self.columns.col2im(dy[n], dx[n])

    # GPU: kernels/im2col_nd.cu on each image (the same values and sums as the CPU path).
    def _gpu_images(self, bottom_array, top_array):
        x, y = bottom_array.ravel(), top_array.ravel()
        xs, ys = x.size // max(self.num, 1), y.size // max(self.num, 1)
        return [(x[n * xs:(n + 1) * xs], y[n * ys:(n + 1) * ys]) for n in range(self.num)]

    def forward_gpu(self, bottom, top):
        for x, y in self._gpu_images(bottom[0].gpu_data(), top[0].mutable_gpu_data()):
            self.columns.im2col_gpu(x, y)

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        for dx, dy in self._gpu_images(bottom[0].mutable_gpu_diff(), top[0].gpu_diff()):
            self.columns.col2im_gpu(dy, dx)
