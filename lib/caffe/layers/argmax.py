"""ArgMax: the indices (and with out_max_val, the values) of the top_k largest entries.

Caffe's output shapes (ArgMaxLayer::Reshape), the part naive code gets wrong:
- without argmax_param.axis the maximum runs over each image's flattened values (all axes but
  the first) and the top is (num, 1, top_k), or (num, 2, top_k) with out_max_val: indices in
  row 0, values in row 1; a bottom of more than 3 axes gives a top of as many axes, the extra
  ones of size 1.
- with an axis the top is the bottom's shape with that axis replaced by top_k, holding the
  indices, or, with out_max_val, the values alone (no indices).
Entries are ordered by value, largest first; equal values put the larger index first (Caffe's
partial_sort of (value, index) pairs with std::greater). Indices are written as floats.

There is no gradient (Caffe's Backward_cpu is NOT_IMPLEMENTED, so a net Caffe runs never asks
for one); here the bottom is declared non-differentiable, so a forced backward gives it 0."""
import numpy as np

from .. import gpu
from ..layer import NoBackwardLayer, register
from ._checks import canonical_axis, count_between, layer_error, not_built, reshape_by_shapes

try:
    from . import argmax_kernels as kernels
except ImportError as e:  # the package imports every layer; fail only when an ArgMax is built
    kernels = None
    _KERNELS_ERROR = e

_top_k = gpu.Kernel('argmax.cu', 'argmax_top_k')


@register('ArgMax')
class ArgMaxLayer(NoBackwardLayer):
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1
    non_differentiable_bottoms = (0,)

    def setup(self, bottom, top):
        if kernels is None:
            raise not_built(self, 'argmax_kernels', _KERNELS_ERROR)
        p = self.layer_param.argmax_param
        self.out_max_val = p.out_max_val
        self.top_k = int(p.top_k)
        if self.top_k < 1:
            raise layer_error(self, 'argmax_param.top_k must be at least 1')
        self.has_axis = p.HasField('axis')
        if self.has_axis:
            axis = canonical_axis(self, bottom[0], p.axis, 'argmax_param.axis')
            if self.top_k > bottom[0].shape[axis]:
                raise layer_error(self, 'top_k %d is larger than axis %d of the bottom %s'
                                  % (self.top_k, axis, bottom[0].shape))
        elif self.top_k > bottom[0].count_from(1):
            raise layer_error(self, 'top_k %d is larger than the %d values of an image of the '
                              'bottom %s' % (self.top_k, bottom[0].count_from(1),
                                             bottom[0].shape))

    @reshape_by_shapes
    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if self.has_axis:
            self.axis = canonical_axis(self, bottom[0], self.layer_param.argmax_param.axis,
                                       'argmax_param.axis')
            self.outer = count_between(shape, 0, self.axis)
            self.dim = shape[self.axis]
            self.inner = count_between(shape, self.axis + 1, None)
            top_shape = list(shape)
            top_shape[self.axis] = self.top_k
            self.layout = kernels.VALUES if self.out_max_val else kernels.INDICES
        else:
            self.outer = shape[0] if shape else 1
            self.dim = count_between(shape, 1, None)
            self.inner = 1
            top_shape = [1] * max(len(shape), 3)
            top_shape[0] = self.outer
            top_shape[1] = 2 if self.out_max_val else 1
            top_shape[2] = self.top_k
            self.layout = kernels.BOTH if self.out_max_val else kernels.INDICES
        if self.top_k > self.dim:
            raise layer_error(self, 'top_k %d is larger than the %d values it selects from'
                              % (self.top_k, self.dim))
        top[0].reshape(top_shape)

    def forward_cpu(self, bottom, top):
        kernels.top_k(bottom[0].cpu_data().reshape(-1), self.outer, self.dim, self.inner,
                      self.top_k, self.layout, top[0].data.reshape(-1))

    # GPU: one thread per row, the same selection (kernels/argmax.cu).
    def forward_gpu(self, bottom, top):
        _top_k(self.outer * self.inner, bottom[0].gpu_data(), self.dim, self.inner, self.top_k,
               self.layout, top[0].mutable_gpu_data())
