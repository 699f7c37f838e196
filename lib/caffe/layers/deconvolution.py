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

    def _cudnn(self, bottom, top):
        deconv = getattr(self, '_cudnn_deconv', None)
        if deconv is None:
            from ..gpu.cudnn import Deconvolution
            deconv = self._cudnn_deconv = Deconvolution(self.num_output, self.channels,
                                                        self.kernel, self.pad, self.stride,
                                                        self.dilation, self.group)
        deconv.reshape(bottom[0].shape, top[0].shape)
        return deconv

    def forward_gpu(self, bottom, top):
        if self.general:
            return self.forward_general_gpu(bottom, top)
        if bottom[0].count == 0:
            return
        deconv = self._cudnn(bottom, top)
        weights = self.blobs[0].gpu_data()
        bias = self.blobs[1].gpu_data() if len(self.blobs) > 1 else None
        for b, t in zip(bottom, top):
            out = t.mutable_gpu_data()
            deconv.forward(b.gpu_data(), weights, out)
            if bias is not None:
                deconv.add_bias(bias, out)

    def backward_gpu(self, top, propagate_down, bottom):
        if self.general:
            return self.backward_general_gpu(top, propagate_down, bottom)
        want_w = self.param_propagate_down[0]
        want_b = len(self.blobs) > 1 and self.param_propagate_down[1]
        if not (want_w or want_b or any(propagate_down)) or bottom[0].count == 0:
            return
        deconv = self._cudnn(bottom, top)
        weights = self.blobs[0].gpu_data()
        for t, b, down in zip(top, bottom, propagate_down):
            top_diff = t.gpu_diff()
            if want_b:
                deconv.backward_bias(top_diff, self.blobs[1].mutable_gpu_diff())
            if want_w:
                deconv.backward_filter(b.gpu_data(), top_diff, self.blobs[0].mutable_gpu_diff())
            if down:
                deconv.backward_data(weights, top_diff, b.mutable_gpu_diff())
