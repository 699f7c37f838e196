"""Crop: bottom[0] cut to the shape of bottom[1] from crop_param.axis on (default 2: the spatial
axes of an NCHW blob; axes before it keep bottom[0]'s size).

Caffe's offsets (CropLayer::Reshape): none given: every cropped axis starts at 0; one value:
the same offset on every cropped axis; several: one per cropped axis (their count must be the
number of axes from `axis` on). bottom[1] only gives a shape: it gets no gradient; bottom[0]'s
gradient is the top diff at the cropped positions and 0 elsewhere."""
import numpy as np

from .. import gpu
from ..layer import Layer, register
from ._checks import canonical_axis, layer_error, reshape_by_shapes

_forward = gpu.Kernel('copy_layers.cu', 'crop_forward')
_backward = gpu.Kernel('copy_layers.cu', 'crop_backward')


@register('Crop')
class CropLayer(Layer):
    bottoms, tops = ('data', 'shape'), ('cropped',)
    non_differentiable_bottoms = (1,)

    def setup(self, bottom, top):
        p = self.layer_param.crop_param
        ndim = len(bottom[0].shape)
        start = canonical_axis(self, bottom[0], p.axis, 'crop_param.axis')
        if len(p.offset) > 1 and start + len(p.offset) != ndim:
            raise layer_error(self, '%d crop offsets for the %d axes from axis %d of a %d-D '
                              'bottom; give one, or one per cropped axis'
                              % (len(p.offset), ndim - start, start, ndim))

    @reshape_by_shapes
    def reshape(self, bottom, top):
        p = self.layer_param.crop_param
        shape, reference = bottom[0].shape, bottom[1].shape
        if len(reference) != len(shape):
            raise layer_error(self, 'bottom[1] %s must have as many axes as bottom[0] %s'
                              % (reference, shape))
        start = canonical_axis(self, bottom[0], p.axis, 'crop_param.axis')
        offsets, new = [], []
        for i, size in enumerate(shape):
            offset, new_size = 0, size
            if i >= start:
                new_size = reference[i]
                if len(p.offset) == 1:
                    offset = int(p.offset[0])
                elif len(p.offset) > 1:
                    offset = int(p.offset[i - start])
                if size - offset < new_size:
                    raise layer_error(self, 'the crop of axis %d is out of bounds: size %d from '
                                      'offset %d in an axis of %d' % (i, new_size, offset, size))
            offsets.append(offset)
            new.append(new_size)
        top[0].reshape(new)
        self.window = tuple(slice(o, o + n) for o, n in zip(offsets, new))
        # The GPU kernels' geometry: [axes, bottom shape, top shape, offsets].
        self.geometry = np.array([len(shape)] + list(shape) + new + offsets, np.int32)
        self.geometry_gpu = None

    def forward_cpu(self, bottom, top):
        top[0].data[...] = bottom[0].cpu_data()[self.window]

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = bottom[0].diff
        dx[...] = 0
        dx[self.window] = top[0].cpu_diff()

    def _geometry_gpu(self):
        if self.geometry_gpu is None or self.geometry_gpu[0] != gpu.generation():
            self.geometry_gpu = (gpu.generation(), gpu.to_device(self.geometry))
        return self.geometry_gpu[1]

    def forward_gpu(self, bottom, top):
        y = top[0].mutable_gpu_data()
        _forward(y.size, self._geometry_gpu(), bottom[0].gpu_data(), y)

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = bottom[0].mutable_gpu_diff()
        gpu.zero(dx)
        dy = top[0].gpu_diff()
        _backward(dy.size, self._geometry_gpu(), dy, dx)
