"""Convolution: Caffe's 2-D convolution, computed as im2col + one matrix product per group, or,
for the shapes it suits, by Winograd's minimal filtering (winograd.py; conv_algorithm.py says
which layers and why: engine CAFFE keeps every layer on im2col).

Weights are (num_output, channels/group, *kernel), bias (num_output,); the output is
floor((in + 2*pad - dilation*(kernel-1) - 1) / stride) + 1 along each axis. Several bottoms may
share one set of weights (each gives the top of the same index), as in Caffe.

This file holds the 2-D convolution of a 4-D blob over axis 1; any other geometry Caffe runs
(N-d kernels, a channel axis other than 1, force_nd_im2col) takes the general path of
base_conv.py, as does Deconvolution.

CPU memory: all Convolution layers share one column buffer (Caffe shares its col buffer too),
held to about COL_BUFFER_FLOATS floats: a large image is convolved in bands of output rows (the
band's columns, products written straight into the top's rows), several small images side by
side in one product. A 1x1, stride 1, unpadded convolution of one image needs no column matrix:
the bottom is one.
"""
import numpy as np

from ..gemm import matmul
from ..layer import register
from . import conv_algorithm
from ._checks import not_built, reshape_by_shapes
from .base_conv import WORKSPACE, BaseConvolutionLayer, _Workspace, conv_output_size  # noqa: F401
from .winograd import Winograd

try:
    from .im2col import col2im, im2col
except ImportError as e:  # the package imports every layer; fail only when a Convolution is built
    col2im = im2col = None
    _IM2COL_ERROR = e

# The column buffer's size in floats (32 MB): images go through one product together while their
# column matrices fit (small feature maps make thin products that BLAS runs far below its peak);
# a larger image goes through in bands of output rows that fit. Each band's product packs the
# weights again, so bands must be wide: with VGG16 at 600x1000 on 2 cores, 8 MB bands made the
# conv layers 10-30% slower than 32 MB ones, and 64 MB ones were no faster.
COL_BUFFER_FLOATS = 1 << 23


@register('Convolution')
class ConvolutionLayer(BaseConvolutionLayer):

    output_size = staticmethod(conv_output_size)

    def setup(self, bottom, top):
        if im2col is None:
            raise not_built(self, 'im2col', _IM2COL_ERROR)
        self.setup_conv(bottom)
        self.engine = self.layer_param.convolution_param.engine
        self.winograd = None

    @reshape_by_shapes
    def reshape(self, bottom, top):
        self.reshape_conv(bottom, top)
        if self.general:
            return
        num = self.num
        self.out_h, self.out_w = self.out_shape

        tile = conv_algorithm.winograd_tile(self.engine, self.kernel, self.stride, self.dilation,
                                            self.group, self.channels, self.num_output)
        if not tile:
            self.winograd = None
        elif self.winograd is None or self.winograd.tile != tile:
            self.winograd = Winograd(tile, self.channels, self.num_output, self.pad, WORKSPACE,
                                     COL_BUFFER_FLOATS)

        spatial = self.out_h * self.out_w
        kdim = self.kdim = self.channels * self.kernel[0] * self.kernel[1]
        self.chunk = max(1, min(num, COL_BUFFER_FLOATS // max(kdim * spatial, 1)))
        if self.chunk > 1 or self.is_1x1:
            self.band = self.out_h
        else:
            self.band = max(1, min(self.out_h, COL_BUFFER_FLOATS // max(kdim * self.out_w, 1)))

    # Views shared by forward and backward ------------------------------------------------------
    def _grouped_weights(self):
        g = self.group
        return self.blobs[0].cpu_data().reshape(g, self.num_output // g, -1)

    def _bands(self):
        """(first, last + 1) output rows of each band, the last band first: col2im adds the
        bands into the bottom diff in that order to keep Caffe's summation order."""
        starts = range(0, self.out_h, self.band)
        return [(r, min(r + self.band, self.out_h)) for r in reversed(starts)]

    def _col_matrix(self, columns):
        return WORKSPACE.get('col', self.kdim * columns).reshape(self.kdim, columns)

    def _fill_col(self, data, start, n, rows=None):
        """The column matrix of images start..start+n-1 side by side, or of one image's output
        rows rows[0]..rows[1]-1."""
        spatial = self.out_h * self.out_w
        if self.is_1x1 and n == 1:
            image = data[start].reshape(self.channels, spatial)
            return image if rows is None else image[:, rows[0] * self.out_w:rows[1] * self.out_w]
        args = (self.kernel[0], self.kernel[1], self.pad[0], self.pad[1], self.stride[0],
                self.stride[1], self.dilation[0], self.dilation[1])
        if rows is not None:
            col = self._col_matrix((rows[1] - rows[0]) * self.out_w)
            im2col(data[start], *args, col, self.out_h, self.out_w, rows[0], rows[1])
            return col
        col = self._col_matrix(n * spatial)
        for i in range(n):
            im2col(data[start + i], *args, col[:, i * spatial:(i + 1) * spatial], self.out_h,
                   self.out_w)
        return col

    def _by_group(self, matrix):
        return matrix.reshape(self.group, matrix.shape[0] // self.group, matrix.shape[1])

    def _grouped_rows(self, image, rows):
        """(group, num_output/group, band columns) view of one image's output rows."""
        cols = slice(rows[0] * self.out_w, rows[1] * self.out_w)
        return image.reshape(self.group, self.num_output // self.group, -1)[:, :, cols]

    def _gathered(self, n):
        size = self.num_output * n * self.out_h * self.out_w
        return WORKSPACE.get('gather', size).reshape(self.num_output, -1)

    def _ones(self, size):
        ones = WORKSPACE.buffers.get('ones')
        if ones is None or ones.size < size:
            ones = WORKSPACE.buffers['ones'] = np.ones(size, np.float32)
        return ones[:size]

    # Forward / backward ------------------------------------------------------------------------
    def forward_cpu(self, bottom, top):
        if self.general:
            return self.forward_general_cpu(bottom, top)
        bias = self.blobs[1].cpu_data() if len(self.blobs) > 1 else None
        if self.winograd is not None:
            for b, t in zip(bottom, top):
                self.winograd.forward(self.blobs[0].cpu_data(), bias, b.cpu_data(), t.data)
            return
        weights = self._grouped_weights()
        for b, t in zip(bottom, top):
            data = b.cpu_data()
            out = t.data
            for start in range(0, data.shape[0], self.chunk):
                n = min(self.chunk, data.shape[0] - start)
                if n == 1:
                    self._forward_image(weights, bias, data, start, out[start])
                    continue
                col = self._fill_col(data, start, n)
                product = self._gathered(n)
                matmul(weights, self._by_group(col), self._by_group(product))
                out[start:start + n] = product.reshape(
                    self.num_output, n, self.out_h, self.out_w).transpose(1, 0, 2, 3)
                if bias is not None:
                    out[start:start + n] += bias[:, None, None]

    def _forward_image(self, weights, bias, data, start, out):
        """One image, band by band: each band's product goes straight into its top rows, and
        its bias is added while they are in cache."""
        for rows in self._bands():
            col = self._fill_col(data, start, 1, rows)
            product = self._grouped_rows(out, rows)
            matmul(weights, self._by_group(col), product)
            if bias is not None:
                product += bias.reshape(self.group, -1)[:, :, None]

    def backward_cpu(self, top, propagate_down, bottom):
        if self.general:
            return self.backward_general_cpu(top, propagate_down, bottom)
        want_w = self.param_propagate_down[0]
        want_b = len(self.blobs) > 1 and self.param_propagate_down[1]
        if not (want_w or want_b or any(propagate_down)):
            return
        if self.winograd is None:
            self._backward_im2col(top, propagate_down, bottom, want_w, want_b)
            return
        if want_b:
            self._backward_im2col(top, [False] * len(bottom), bottom, False, want_b)
        weights = self.blobs[0].cpu_data()
        for t, b, down in zip(top, bottom, propagate_down):
            if want_w:
                self.winograd.backward_weights(b.cpu_data(), t.cpu_diff(), self.blobs[0].diff)
            if down:
                self.winograd.backward_data(weights, t.cpu_diff(), b.diff)

    def _backward_im2col(self, top, propagate_down, bottom, want_w, want_b):
        weights = self._grouped_weights()
        spatial = self.out_h * self.out_w
        if want_w:
            weight_diff = self.blobs[0].diff.reshape(weights.shape)
            # dW += each product; the product lands here first (numpy has no beta = 1).
            scratch = np.empty(weights.shape, np.float32)
        for t, b, down in zip(top, bottom, propagate_down):
            top_diff = t.cpu_diff()
            data = b.cpu_data()
            for start in range(0, top_diff.shape[0], self.chunk):
                n = min(self.chunk, top_diff.shape[0] - start)
                if n == 1:
                    grad = top_diff[start].reshape(self.num_output, spatial)
                else:
                    grad = self._gathered(n)
                    grad.reshape(self.num_output, n, spatial)[...] = \
                        top_diff[start:start + n].reshape(n, self.num_output, spatial) \
                        .transpose(1, 0, 2)
                if want_b:
                    self.blobs[1].diff[...] += np.matmul(grad, self._ones(n * spatial))
                if n == 1:
                    self._backward_image(weights, grad, data, start, b.diff if down else None,
                                         weight_diff if want_w else None,
                                         scratch if want_w else None)
                    continue
                if want_w:
                    col = self._fill_col(data, start, n)
                    matmul(self._by_group(grad), self._by_group(col).transpose(0, 2, 1), scratch)
                    weight_diff += scratch
                if down:
                    self._backward_data(weights, grad, b.diff, start, n)

    def _backward_image(self, weights, grad, data, start, bottom_diff, weight_diff, scratch):
        """Weight and bottom gradients of one image, band by band (the last band first)."""
        if bottom_diff is not None and self.is_1x1:
            matmul(weights.transpose(0, 2, 1), self._by_group(grad),
                   self._by_group(bottom_diff[start].reshape(self.channels, -1)))
            bottom_diff = None
        for rows in self._bands():
            band_grad = self._grouped_rows(grad, rows)
            if weight_diff is not None:
                col = self._fill_col(data, start, 1, rows)
                matmul(band_grad, self._by_group(col).transpose(0, 2, 1), scratch)
                weight_diff += scratch
            if bottom_diff is not None:
                col = self._col_matrix((rows[1] - rows[0]) * self.out_w)
                matmul(weights.transpose(0, 2, 1), band_grad, self._by_group(col))
                col2im(col, self.kernel[0], self.kernel[1], self.pad[0], self.pad[1],
                       self.stride[0], self.stride[1], self.dilation[0], self.dilation[1],
                       self.out_h, self.out_w, bottom_diff[start], rows[0], rows[1],
                       rows[1] != self.out_h)

    def _backward_data(self, weights, grad, bottom_diff, start, n):
        spatial = self.out_h * self.out_w
        col = self._col_matrix(n * spatial)
        matmul(weights.transpose(0, 2, 1), self._by_group(grad), self._by_group(col))
        for i in range(n):
            col2im(col[:, i * spatial:(i + 1) * spatial], self.kernel[0], self.kernel[1],
                   self.pad[0], self.pad[1], self.stride[0], self.stride[1], self.dilation[0],
                   self.dilation[1], self.out_h, self.out_w, bottom_diff[start + i])

    # GPU: cuDNN for the 2-D path, the general path's kernels otherwise (base_conv.py).
    def forward_gpu(self, bottom, top):
        self.forward_conv_gpu(bottom, top)

    def backward_gpu(self, top, propagate_down, bottom):
        self.backward_conv_gpu(top, propagate_down, bottom)
