"""Scale: top = bottom[0] * s (+ b), s broadcast over the axes around it (Caffe's ScaleLayer).

s is bottom[1] or, with one bottom, the layer's parameter blobs[0] of bottom[0]'s shape on the
axes [axis, axis + num_axes) (num_axes -1: to the last axis), filled by scale_param.filler
(Caffe's default: constant 1). With bias_term a bias of the same shape follows, as the BiasLayer
Caffe's ScaleLayer runs inside itself: it is the last parameter blob (blobs[1], or blobs[0] with
two bottoms), filled by bias_filler (default constant 0). Kaiming He's ResNets put a Scale with
bias_term after every BatchNorm.

Parameter gradients accumulate; bottom[1]'s is overwritten (Caffe's). Works in place: then, as
Caffe keeps temp_, forward keeps a copy of the input for the gradient of s, but only when that
gradient can be asked for (two bottoms, or a scale parameter with lr_mult != 0 or
force_backward) in a net that runs this layer's backward: fine-tuned ResNets keep their Scale
layers fixed and need no copy, and a test net's Scale layers keep none (1.3 GB of ResNet-101's).
"""
import numpy as np

from .. import gpu
from ..fillers import fill
from ..layer import Layer, register
from ..proto import caffe_pb2
from ._checks import check_count, layer_error
from .bias import (broadcast_geometry, launch_sums, param_shape, require_kernels, scale_bias,
                   sums_over_broadcast)


@register('Scale')
class ScaleLayer(Layer):
    def setup(self, bottom, top):
        check_count(self, 'bottom', bottom, (1, 2))
        check_count(self, 'top', top, 1)
        require_kernels(self)
        p = self.layer_param.scale_param
        shapes = []
        if len(bottom) == 1:
            shapes.append(param_shape(self, bottom[0], p.axis, p.num_axes, 'scale_param'))
        if p.bias_term:
            # Caffe's inner BiasLayer covers as many axes as the scale does.
            num_axes = len(bottom[1].shape) if len(bottom) > 1 else p.num_axes
            shapes.append(param_shape(self, bottom[0], p.axis, num_axes, 'scale_param'))
        if len(self.blobs) == 0:
            for shape in shapes:
                self.blobs.add_blob(*shape)
            if len(bottom) == 1:
                filler = p.filler if p.HasField('filler') else caffe_pb2.FillerParameter(
                    type='constant', value=1)
                fill(self.blobs[0], filler)
            if p.bias_term:
                fill(self.blobs[-1], p.bias_filler)
        elif [b.shape for b in self.blobs] != shapes:
            raise layer_error(self, 'parameter shapes %s do not match the expected %s'
                              % ([b.shape for b in self.blobs], shapes))
        self.has_bias = p.bias_term
        self.bias_index = len(self.blobs) - 1
        self.param_propagate_down = [True] * len(self.blobs)
        self.kept_input = self.kept_input_gpu = None

    def _scale(self, bottom):
        return bottom[1] if len(bottom) > 1 else self.blobs[0]

    def reshape(self, bottom, top):
        self.outer, self.dim, self.inner = broadcast_geometry(
            self, bottom[0], self._scale(bottom).shape, self.layer_param.scale_param.axis,
            'scale_param')
        top[0].reshape(bottom[0].shape)

    def _view(self, array):
        return array.reshape(self.outer, self.dim, self.inner)

    def _keeps_input(self, bottom, top):
        return bottom[0] is top[0] and self.need_backward and (
            len(bottom) > 1 or self.param_propagate_down[0])

    def _scale_gradient_wanted(self, propagate_down, bottom):
        return propagate_down[1] if len(bottom) > 1 else self.param_propagate_down[0]

    def _input(self, bottom, top, device):
        """What the scale's gradient multiplies the top diff by: bottom[0]'s data, or in place
        the copy forward kept."""
        if bottom[0] is not top[0]:
            return bottom[0].gpu_data() if device else bottom[0].cpu_data()
        kept = self.kept_input_gpu if device else self.kept_input
        if kept is None:
            raise layer_error(self, 'in place, the scale gradient needs the input kept by '
                              'forward (kept only when the scale is learned or a bottom)')
        return kept

    # CPU -----------------------------------------------------------------------------------------
    def forward_cpu(self, bottom, top):
        x = bottom[0].cpu_data()
        if self._keeps_input(bottom, top):
            np.copyto(self.kept_array('kept_input', x.shape), x)
        s = self._scale(bottom).cpu_data().reshape(self.dim)
        b = self.blobs[self.bias_index].cpu_data().reshape(self.dim) if self.has_bias else None
        scale_bias(self._view(x), s, b, self._view(top[0].data))

    def backward_cpu(self, top, propagate_down, bottom):
        # Both parameter sums read the top diff before the bottom diff (the same buffer in
        # place) is written, as Caffe orders them.
        dy = self._view(top[0].cpu_diff())
        if self.has_bias and self.param_propagate_down[self.bias_index]:
            bias = self.blobs[self.bias_index]
            bias.diff[...] += sums_over_broadcast(dy, None, self.dim).reshape(bias.shape)
        if self._scale_gradient_wanted(propagate_down, bottom):
            x = self._view(self._input(bottom, top, device=False))
            sums = sums_over_broadcast(dy, x, self.dim)
            if len(bottom) > 1:
                bottom[1].diff[...] = sums.reshape(bottom[1].shape)
            else:
                self.blobs[0].diff[...] += sums.reshape(self.blobs[0].shape)
        if propagate_down[0]:
            s = self._scale(bottom).cpu_data().reshape(self.dim)
            scale_bias(dy, s, None, self._view(bottom[0].diff))

    # GPU: kernels/scale_bias.cu -----------------------------------------------------------------
    def forward_gpu(self, bottom, top):
        x = bottom[0].gpu_data()
        if self._keeps_input(bottom, top):
            if self.kept_input_gpu is None or self.kept_input_gpu.shape != x.shape:
                self.kept_input_gpu = gpu.empty(x.shape)
            gpu.copy(self.kept_input_gpu, x)
        b = self.blobs[self.bias_index].gpu_data() if self.has_bias else None
        _forward(x.size, self.dim, self.inner, x, self._scale(bottom).gpu_data(), b,
                 top[0].mutable_gpu_data())

    def backward_gpu(self, top, propagate_down, bottom):
        dy = top[0].gpu_diff()
        if self.has_bias and self.param_propagate_down[self.bias_index]:
            launch_sums(dy, None, self.dim, self.outer, self.inner, True,
                        self.blobs[self.bias_index].mutable_gpu_diff())
        if self._scale_gradient_wanted(propagate_down, bottom):
            x = self._input(bottom, top, device=True)
            if len(bottom) > 1:
                launch_sums(dy, x, self.dim, self.outer, self.inner, False,
                            bottom[1].mutable_gpu_diff())
            else:
                launch_sums(dy, x, self.dim, self.outer, self.inner, True,
                            self.blobs[0].mutable_gpu_diff())
        if propagate_down[0]:
            _forward(dy.size, self.dim, self.inner, dy, self._scale(bottom).gpu_data(), None,
                     bottom[0].mutable_gpu_diff())


_forward = gpu.Kernel('scale_bias.cu', 'scale_bias_forward')
