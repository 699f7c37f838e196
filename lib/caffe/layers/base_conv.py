"""What Convolution, Deconvolution and Im2col share (Caffe's BaseConvolutionLayer and the
parameter parsing Im2colLayer repeats): the geometry read from convolution_param, the parameter
blobs, and the general path, which runs any geometry Caffe runs.

Geometry (Caffe's rules): the channel axis is convolution_param.axis (default 1); every axis
before it is a batch axis (num = their product) and every axis after it a spatial axis, so a
blob of N spatial axes is an N-d convolution. kernel_size, pad, stride and dilation are given
once (all axes) or once per spatial axis; kernel_h/kernel_w, pad_h/pad_w and stride_h/stride_w
are the 2-D alternative (Caffe reads both of a pair, an absent one at its proto default).

The general path is Caffe's own: per image, the column matrix of the image (im2col, or the
N-d im2col where there are not 2 spatial axes or force_nd_im2col is set, as Caffe chooses), then
one matrix product per group, and col2im for the data gradient. Deconvolution runs the same
steps with the roles of input and output exchanged (Caffe's reverse_dimensions): its forward is
the convolution's data gradient, its data gradient the convolution's forward. Convolution
keeps its own faster 2-D code (convolution.py) and takes this path for any other geometry.

CPU memory: the layers share one column buffer (WORKSPACE), as Caffe's layers share theirs.
"""
import numpy as np

from .. import gpu
from ..blob import lasting_zeros
from ..gemm import matmul
from ..layer import Layer
from ._checks import (canonical_axis, check_int32, count_between, layer_error, not_built,
                      param_blobs)

try:
    from . import im2col as im2col_2d
    from . import im2col_nd
except ImportError as e:  # the package imports every layer; fail only when one is built
    im2col_2d = im2col_nd = None
    _KERNELS_ERROR = e

_im2col_gpu = gpu.Kernel('im2col_nd.cu', 'im2col_nd')
_col2im_gpu = gpu.Kernel('im2col_nd.cu', 'col2im_nd')
_add_channel_bias = gpu.Kernel('im2col_nd.cu', 'add_channel_bias')
_channel_bias_grad = gpu.Kernel('im2col_nd.cu', 'channel_bias_grad')


class _Workspace:
    """Scratch arrays shared by every convolution layer of the process; they only grow (Faster
    R-CNN changes the image size every iteration, and fresh pages cost more than the im2col
    that fills them)."""

    def __init__(self):
        self.buffers = {}

    def get(self, name, size):
        buf = self.buffers.get(name)
        if buf is None or buf.size < size:
            buf = self.buffers[name] = lasting_zeros(max(int(size), 1))
        return buf[:size]


WORKSPACE = _Workspace()
_GPU_WORKSPACE = {}


def _gpu_col(size):
    ws = _GPU_WORKSPACE.get('col')
    if ws is None or ws[0] != gpu.generation():
        ws = _GPU_WORKSPACE['col'] = (gpu.generation(), gpu.Workspace(np.float32))
    return ws[1].get(size)


def _per_axis(layer, p, field, hw, n, default):
    """A per-spatial-axis value of convolution_param: `field` given once or once per axis
    (`default` where it is not given; None: required), or the 2-D pair <hw>_h / <hw>_w."""
    h_name, w_name = hw + '_h', hw + '_w'
    values = [int(v) for v in getattr(p, field)]
    if p.HasField(h_name) or p.HasField(w_name):
        if n != 2:
            raise layer_error(layer, '%s and %s can only be used for 2-D convolution (the bottom '
                              'has %d spatial axes)' % (h_name, w_name, n))
        if values:
            raise layer_error(layer, 'give either %s or %s/%s, not both'
                              % (field, h_name, w_name))
        return int(getattr(p, h_name)), int(getattr(p, w_name))
    if not values:
        if default is None:
            raise layer_error(layer, 'convolution_param.%s (or %s/%s) is required'
                              % (field, h_name, w_name))
        return (default,) * n
    if len(values) not in (1, n):
        raise layer_error(layer, '%s must be given once or once per spatial axis (%d spatial '
                          'axes, %d values)' % (field, n, len(values)))
    return tuple(values) * n if len(values) == 1 else tuple(values)


def conv_output_size(size, kernel, pad, stride, dilation):
    """Convolution: floor((in + 2*pad - (dilation*(kernel-1) + 1)) / stride) + 1."""
    return (size + 2 * pad - (dilation * (kernel - 1) + 1)) // stride + 1


def deconv_output_size(size, kernel, pad, stride, dilation):
    """Deconvolution, the inverse of the convolution's size (Caffe's
    DeconvolutionLayer::compute_output_shape): stride*(in-1) + dilation*(kernel-1) + 1 - 2*pad."""
    return stride * (size - 1) + dilation * (kernel - 1) + 1 - 2 * pad


def parse_geometry(layer, bottom):
    """Reads convolution_param for a bottom: sets layer.axis, spatial_axes, kernel, pad, stride,
    dilation (tuples, one value per spatial axis), channels and force_nd."""
    p = layer.layer_param.convolution_param
    layer.axis = canonical_axis(layer, bottom[0], p.axis, 'convolution_param.axis')
    n = len(bottom[0].shape) - layer.axis - 1
    if n < 1:
        raise layer_error(layer, 'the bottom %s has no spatial axis after the channel axis %d'
                          % (bottom[0].shape, layer.axis))
    layer.spatial_axes = n
    layer.kernel = _per_axis(layer, p, 'kernel_size', 'kernel', n, None)
    layer.stride = _per_axis(layer, p, 'stride', 'stride', n, 1)
    layer.pad = _per_axis(layer, p, 'pad', 'pad', n, 0)
    dilation = [int(d) for d in p.dilation]
    if len(dilation) not in (0, 1, n):
        raise layer_error(layer, 'dilation must be given once or once per spatial axis (%d '
                          'spatial axes, %d values)' % (n, len(dilation)))
    layer.dilation = tuple(dilation) * n if len(dilation) == 1 else (tuple(dilation) or (1,) * n)
    if min(layer.kernel) < 1 or min(layer.stride) < 1 or min(layer.dilation) < 1:
        raise layer_error(layer, 'kernel %s, stride %s and dilation %s must be positive'
                          % (layer.kernel, layer.stride, layer.dilation))
    check_int32(layer, kernel=layer.kernel, stride=layer.stride, pad=layer.pad,
                dilation=layer.dilation)
    layer.channels = bottom[0].shape[layer.axis]
    layer.force_nd = p.force_nd_im2col


class ColumnOps:
    """im2col / col2im of one image for a geometry, on the CPU (the 2-D kernels where there are
    two spatial axes and force_nd is off, as Caffe picks, else the N-d ones) and on the GPU
    (kernels/im2col_nd.cu: a copy, and a gather that adds each pixel's taps in the CPU's order,
    so both give the CPU's numbers bit for bit).

    The image is (channels, *image_shape); the column matrix (channels * prod(kernel),
    prod(col_shape)), col_shape being the convolution's output size."""

    def __init__(self, channels, image_shape, col_shape, kernel, pad, stride, dilation,
                 force_nd):
        self.channels = channels
        self.image_shape, self.col_shape = tuple(image_shape), tuple(col_shape)
        self.kernel, self.pad, self.stride, self.dilation = kernel, pad, stride, dilation
        self.nd = force_nd or len(kernel) != 2
        self.rows = channels * int(np.prod(kernel))
        self.cols = int(np.prod(col_shape))
        self._geometry = np.array((len(kernel),) + self.image_shape + self.col_shape + kernel +
                                  pad + stride + dilation, np.int32)
        self._geometry_gpu = None

    def _args2d(self):
        k, p, s, d = self.kernel, self.pad, self.stride, self.dilation
        return (k[0], k[1], p[0], p[1], s[0], s[1], d[0], d[1])

    def im2col(self, image, col):
        if self.nd:
            im2col_nd.im2col_nd(image.reshape(self.channels, -1), self._geometry, col)
        else:
            im2col_2d.im2col(image.reshape((self.channels,) + self.image_shape), *self._args2d(),
                             col, self.col_shape[0], self.col_shape[1])

    def col2im(self, col, image):
        """Overwrites image with the adjoint of im2col applied to col."""
        if self.nd:
            im2col_nd.col2im_nd(col, self._geometry, image.reshape(self.channels, -1))
        else:
            im2col_2d.col2im(col, *self._args2d(), self.col_shape[0], self.col_shape[1],
                             image.reshape((self.channels,) + self.image_shape))

    def _geometry_device(self):
        if self._geometry_gpu is None or self._geometry_gpu[0] != gpu.generation():
            self._geometry_gpu = (gpu.generation(), gpu.to_device(self._geometry))
        return self._geometry_gpu[1]

    def im2col_gpu(self, image, col):
        _im2col_gpu(self.rows * self.cols, self._geometry_device(), self.channels, image, col)

    def col2im_gpu(self, col, image):
        _col2im_gpu(image.size, self._geometry_device(), self.channels, col, image)


class BaseConvolutionLayer(Layer):
    """Convolution and Deconvolution: setup_conv/reshape_conv hold the common rules; the
    subclass says whether it is the reverse (reverse_dimensions) and how output sizes follow
    from input sizes (output_size)."""
    min_bottom_blobs = 1
    equal_num_bottom_top_blobs = True
    reverse_dimensions = False

    @staticmethod
    def output_size(size, kernel, pad, stride, dilation):
        raise NotImplementedError

    def setup_conv(self, bottom):
        if im2col_nd is None:
            raise not_built(self, 'im2col_nd', _KERNELS_ERROR)
        parse_geometry(self, bottom)
        p = self.layer_param.convolution_param
        self.num_output = int(p.num_output)
        self.group = int(p.group)
        if self.num_output < 1:
            raise layer_error(self, 'convolution_param.num_output must be set (> 0)')
        if self.group < 1 or self.channels % self.group or self.num_output % self.group:
            raise layer_error(self, 'group %d must divide both the input channels (%d) and '
                              'num_output (%d)' % (self.group, self.channels, self.num_output))
        # Caffe's conv_out_channels_ / conv_in_channels_: the channels of the convolution's
        # output and input, which Deconvolution exchanges.
        if self.reverse_dimensions:
            self.conv_out_channels, self.conv_in_channels = self.channels, self.num_output
        else:
            self.conv_out_channels, self.conv_in_channels = self.num_output, self.channels
        # Caffe's weight layout: (conv_out_channels, conv_in_channels / group, *kernel), so a
        # Deconvolution's weights are (channels, num_output / group, *kernel).
        shapes = [(self.conv_out_channels, self.conv_in_channels // self.group) + self.kernel]
        if p.bias_term:
            shapes.append((self.num_output,))
        param_blobs(self, shapes, (p.weight_filler, p.bias_filler))
        self.kernel_dim = self.conv_in_channels // self.group * int(np.prod(self.kernel))
        self.is_1x1 = all(k == 1 for k in self.kernel) and all(s == 1 for s in self.stride) \
            and all(q == 0 for q in self.pad)
        # The 2-D shape convolution.py's own code handles; everything else is general.
        self.general = self.force_nd or len(bottom[0].shape) != 4 or self.axis != 1

    def reshape_conv(self, bottom, top):
        """Checks the bottoms, shapes the tops; sets num, in_shape, out_shape and, for the
        general path, its column operations."""
        shape = bottom[0].shape
        for i, b in enumerate(bottom[1:], 1):
            if b.shape != shape:
                raise layer_error(self, 'all bottoms must have the same shape (bottom[0] %s, '
                                  'bottom[%d] %s)' % (shape, i, b.shape))
        if len(shape) != self.axis + 1 + self.spatial_axes or shape[self.axis] != self.channels:
            raise layer_error(self, 'bottom shape %s; expected %d axes with %d channels at axis '
                              '%d, as at setup' % (shape, self.axis + 1 + self.spatial_axes,
                                                   self.channels, self.axis))
        self.num = count_between(shape, 0, self.axis)
        self.in_shape = tuple(shape[self.axis + 1:])
        out = []
        for size, k, pad, s, d in zip(self.in_shape, self.kernel, self.pad, self.stride,
                                      self.dilation):
            o = self.output_size(size, k, pad, s, d)
            if o < 1 and not self.reverse_dimensions:
                raise layer_error(self, 'kernel extent %d is larger than the padded input '
                                  '(%d + 2*%d)' % (d * (k - 1) + 1, size, pad))
            if o < 1:
                raise layer_error(self, 'pad %d crops away the whole output (%d before '
                                  'cropping)' % (pad, o + 2 * pad))
            out.append(o)
        self.out_shape = tuple(out)
        top_shape = tuple(shape[:self.axis]) + (self.num_output,) + self.out_shape
        for t in top:
            t.reshape(top_shape)
        # Caffe's conv input is the bottom, its output the top (exchanged when reversed).
        conv_in, conv_out = ((self.out_shape, self.in_shape) if self.reverse_dimensions
                             else (self.in_shape, self.out_shape))
        self.conv_out_spatial = int(np.prod(conv_out))
        self.columns = ColumnOps(self.conv_in_channels, conv_in, conv_out, self.kernel,
                                 self.pad, self.stride, self.dilation, self.force_nd)

    # The general path on the CPU: Caffe's per-image steps ------------------------------------
    def _images(self, array, channels, spatial):
        return array.reshape(self.num, self.group, channels // self.group, spatial)

    def _col(self):
        size = self.kernel_dim * self.group * self.conv_out_spatial
        return WORKSPACE.get('col', size).reshape(self.group, self.kernel_dim,
                                                  self.conv_out_spatial)

    def _weights(self):
        return self.blobs[0].cpu_data().reshape(self.group, self.conv_out_channels // self.group,
                                                self.kernel_dim)

    def _columns(self, image):
        """The (group, kernel_dim, S) column matrix of an image (the image itself for 1x1)."""
        if self.is_1x1:
            return image.reshape(self.group, self.kernel_dim, -1)
        col = self._col()
        self.columns.im2col(image, col.reshape(-1, self.conv_out_spatial))
        return col

    def _conv_forward(self, image, weights, out):
        """out (group, conv_out/g, S) = W_g @ im2col(image): Caffe's forward_cpu_gemm."""
        matmul(weights, self._columns(image), out)

    def _conv_backward(self, grad, weights, image):
        """image = col2im(W_g^T @ grad): Caffe's backward_cpu_gemm."""
        if self.is_1x1:
            matmul(weights.transpose(0, 2, 1), grad,
                   image.reshape(self.group, self.kernel_dim, -1))
            return
        col = self._col()
        matmul(weights.transpose(0, 2, 1), grad, col)
        self.columns.col2im(col.reshape(-1, self.conv_out_spatial), image)

    def _weight_grad(self, image, grad, weight_diff):
        """weight_diff += grad @ im2col(image)^T: Caffe's weight_cpu_gemm."""
        matmul(grad, self._columns(image).transpose(0, 2, 1), weight_diff, accumulate=True)

    def _sizes(self):
        in_spatial, out_spatial = int(np.prod(self.in_shape)), int(np.prod(self.out_shape))
        return in_spatial, out_spatial

    def forward_general_cpu(self, bottom, top):
        weights = self._weights()
        bias = self.blobs[1].cpu_data() if len(self.blobs) > 1 else None
        in_spatial, out_spatial = self._sizes()
        for b, t in zip(bottom, top):
            x = self._images(b.cpu_data(), self.channels, in_spatial)
            y = self._images(t.data, self.num_output, out_spatial)
            for n in range(self.num):
                if self.reverse_dimensions:
                    self._conv_backward(x[n], weights, y[n])
                else:
                    self._conv_forward(x[n], weights, y[n])
                if bias is not None:
                    y[n] += bias.reshape(self.group, -1, 1)

    def backward_general_cpu(self, top, propagate_down, bottom):
        want_w = self.param_propagate_down[0]
        want_b = len(self.blobs) > 1 and self.param_propagate_down[1]
        if not (want_w or want_b or any(propagate_down)):
            return
        weights = self._weights()
        in_spatial, out_spatial = self._sizes()
        if want_w:
            weight_diff = self.blobs[0].diff.reshape(weights.shape)
        if want_b:
            ones = np.ones(out_spatial, np.float32)
        for t, b, down in zip(top, bottom, propagate_down):
            dy = self._images(t.cpu_diff(), self.num_output, out_spatial)
            x = self._images(b.cpu_data(), self.channels, in_spatial)
            dx = self._images(b.diff, self.channels, in_spatial) if down else None
            for n in range(self.num):
                if want_b:
                    self.blobs[1].diff[...] += np.matmul(dy[n].reshape(self.num_output, -1),
                                                         ones)
                if self.reverse_dimensions:
                    # Deconvolution: the weight gradient is bottom @ im2col(top_diff)^T, and the
                    # data gradient the convolution of the top diff (Caffe reuses the column
                    # matrix between the two; here each builds its own).
                    if want_w:
                        self._weight_grad(dy[n], x[n], weight_diff)
                    if down:
                        self._conv_forward(dy[n], weights, dx[n])
                else:
                    if want_w:
                        self._weight_grad(x[n], dy[n], weight_diff)
                    if down:
                        self._conv_backward(dy[n], weights, dx[n])

    # The general path on the GPU: the same steps with kernels/im2col_nd.cu and cuBLAS --------
    def _gpu_views(self):
        in_spatial, out_spatial = self._sizes()
        g = self.group
        return (self.channels // g * in_spatial, self.num_output // g * out_spatial,
                self.conv_out_channels // g * self.kernel_dim)

    def _gemm_groups(self, trans_a, trans_b, a, a_step, b, b_step, c, c_step, m, n, k, beta):
        from ..gpu.cublas import gemm
        for g in range(self.group):
            gemm(trans_a, trans_b, m, n, k, 1.0, a[g * a_step:(g + 1) * a_step],
                 b[g * b_step:(g + 1) * b_step], beta, c[g * c_step:(g + 1) * c_step])

    def _gpu_columns(self, image):
        if self.is_1x1:
            return image
        col = _gpu_col(self.kernel_dim * self.group * self.conv_out_spatial)
        self.columns.im2col_gpu(image, col)
        return col

    def _gpu_conv_forward(self, image, weights, out):
        k, s = self.kernel_dim, self.conv_out_spatial
        m = self.conv_out_channels // self.group
        self._gemm_groups(False, False, weights, m * k, self._gpu_columns(image), k * s, out,
                          m * s, m, s, k, 0.0)

    def _gpu_conv_backward(self, grad, weights, image):
        k, s = self.kernel_dim, self.conv_out_spatial
        m = self.conv_out_channels // self.group
        col = image if self.is_1x1 else _gpu_col(k * self.group * s)
        self._gemm_groups(True, False, weights, m * k, grad, m * s, col, k * s, k, s, m, 0.0)
        if not self.is_1x1:
            self.columns.col2im_gpu(col, image)

    def _gpu_weight_grad(self, image, grad, weight_diff):
        k, s = self.kernel_dim, self.conv_out_spatial
        m = self.conv_out_channels // self.group
        self._gemm_groups(False, True, grad, m * s, self._gpu_columns(image), k * s, weight_diff,
                          m * k, m, k, s, 1.0)

    def forward_general_gpu(self, bottom, top):
        weights = self.blobs[0].gpu_data().ravel()
        bias = self.blobs[1].gpu_data() if len(self.blobs) > 1 else None
        in_spatial, out_spatial = self._sizes()
        x_step, y_step = self.channels * in_spatial, self.num_output * out_spatial
        for b, t in zip(bottom, top):
            x, y = b.gpu_data().ravel(), t.mutable_gpu_data().ravel()
            for n in range(self.num):
                xn, yn = x[n * x_step:(n + 1) * x_step], y[n * y_step:(n + 1) * y_step]
                if self.reverse_dimensions:
                    self._gpu_conv_backward(xn, weights, yn)
                else:
                    self._gpu_conv_forward(xn, weights, yn)
            if bias is not None:
                _add_channel_bias(y.size, out_spatial, self.num_output, bias, y)

    def backward_general_gpu(self, top, propagate_down, bottom):
        want_w = self.param_propagate_down[0]
        want_b = len(self.blobs) > 1 and self.param_propagate_down[1]
        if not (want_w or want_b or any(propagate_down)):
            return
        weights = self.blobs[0].gpu_data().ravel()
        in_spatial, out_spatial = self._sizes()
        x_step, y_step = self.channels * in_spatial, self.num_output * out_spatial
        for t, b, down in zip(top, bottom, propagate_down):
            dy = t.gpu_diff().ravel()
            if want_b:
                _channel_bias_grad(self.num_output, self.num, out_spatial, dy,
                                   self.blobs[1].mutable_gpu_diff())
            if not (want_w or down):
                continue
            x = b.gpu_data().ravel()
            dx = b.mutable_gpu_diff().ravel() if down else None
            weight_diff = self.blobs[0].mutable_gpu_diff().ravel() if want_w else None
            for n in range(self.num):
                xn, dyn = x[n * x_step:(n + 1) * x_step], dy[n * y_step:(n + 1) * y_step]
                if self.reverse_dimensions:
                    if want_w:
                        self._gpu_weight_grad(dyn, xn, weight_diff)
                    if down:
                        self._gpu_conv_forward(dyn, weights, dx[n * x_step:(n + 1) * x_step])
                else:
                    if want_w:
                        self._gpu_weight_grad(xn, dyn, weight_diff)
                    if down:
                        self._gpu_conv_backward(dyn, weights, dx[n * x_step:(n + 1) * x_step])

    # The GPU: the 2-D path on cuDNN (caffe.gpu.cudnn: Convolution, or Deconvolution as Caffe's
    # CuDNNDeconvolution runs it), a whole batch per call, groups included; any other geometry
    # on the general path. Weight and bias gradients accumulate.
    def _cudnn(self, bottom, top):
        op = getattr(self, '_cudnn_op', None)
        if op is None:
            from ..gpu import cudnn
            kind = cudnn.Deconvolution if self.reverse_dimensions else cudnn.Convolution
            op = self._cudnn_op = kind(self.num_output, self.channels, self.kernel, self.pad,
                                       self.stride, self.dilation, self.group)
        op.reshape(bottom[0].shape, top[0].shape)
        return op

    def forward_conv_gpu(self, bottom, top):
        if self.general:
            return self.forward_general_gpu(bottom, top)
        if bottom[0].count == 0:
            return
        op = self._cudnn(bottom, top)
        weights = self.blobs[0].gpu_data()
        bias = self.blobs[1].gpu_data() if len(self.blobs) > 1 else None
        for b, t in zip(bottom, top):
            out = t.mutable_gpu_data()
            op.forward(b.gpu_data(), weights, out)
            if bias is not None:
                op.add_bias(bias, out)

    def backward_conv_gpu(self, top, propagate_down, bottom):
        if self.general:
            return self.backward_general_gpu(top, propagate_down, bottom)
        want_w = self.param_propagate_down[0]
        want_b = len(self.blobs) > 1 and self.param_propagate_down[1]
        if not (want_w or want_b or any(propagate_down)) or bottom[0].count == 0:
            return
        op = self._cudnn(bottom, top)
        weights = self.blobs[0].gpu_data()
        for t, b, down in zip(top, bottom, propagate_down):
            top_diff = t.gpu_diff()
            if want_b:
                op.backward_bias(top_diff, self.blobs[1].mutable_gpu_diff())
            if want_w:
                op.backward_filter(b.gpu_data(), top_diff, self.blobs[0].mutable_gpu_diff())
            if down:
                op.backward_data(weights, top_diff, b.mutable_gpu_diff())
