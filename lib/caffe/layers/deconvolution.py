"""Deconvolution: Caffe's transposed convolution (FCN's upsampling), the Convolution layer run
backwards.

Caffe's semantics (deconv_layer.cpp, base_conv_layer.cpp with reverse_dimensions() true):
- weights are (channels, num_output / group, *kernel): the layout of the Convolution that maps
  the top back onto the bottom, so a Deconvolution's weight blob has the bottom's channels
  first, not num_output as a Convolution's does; bias (num_output,).
- output size along each spatial axis: stride * (in - 1) + dilation * (kernel - 1) + 1
  - 2 * pad, the size whose convolution with the same kernel, stride, pad and dilation gives the
  input back.
- forward is that convolution's data gradient (W^T @ x, then col2im into the top); the data
  gradient is that convolution's forward (im2col of the top diff, then W @ col); the weight
  gradient is bottom @ im2col(top diff)^T, accumulated over images.

CPU: the general path of base_conv.py (im2col/col2im and one product per group and image). GPU:
2-D over axis 1 through cuDNN as Caffe's CuDNNDeconvolution (forward = cuDNN's backward-data,
data gradient = cuDNN's forward, weight gradient = backward-filter with the roles of input and
output exchanged); any other geometry through the general path's kernels and cuBLAS.
"""
from ..layer import register
from ._checks import reshape_by_shapes
from .base_conv import BaseConvolutionLayer, deconv_output_size


@register('Deconvolution')
class DeconvolutionLayer(BaseConvolutionLayer):
    reverse_dimensions = True
    output_size = staticmethod(deconv_output_size)

    def setup(self, bottom, top):
        self.setup_conv(bottom)

    @reshape_by_shapes
    def reshape(self, bottom, top):
        self.reshape_conv(bottom, top)

    def forward_cpu(self, bottom, top):
        self.forward_general_cpu(bottom, top)

    def backward_cpu(self, top, propagate_down, bottom):
        self.backward_general_cpu(top, propagate_down, bottom)

    def forward_gpu(self, bottom, top):
        self.forward_conv_gpu(bottom, top)

    def backward_gpu(self, top, propagate_down, bottom):
        self.backward_conv_gpu(top, propagate_down, bottom)
