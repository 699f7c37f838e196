"""Dropout, with the Fast R-CNN fork's `scale_train` switch.

scale_train true (Caffe's rule): training keeps each unit with probability 1 - ratio and scales
it by 1/(1 - ratio); testing is the identity. scale_train false (the ZF models): training keeps
without scaling and testing multiplies by 1 - ratio instead. Works in place."""
import numpy as np

from .. import gpu
from ..common import rng
from ..layer import TRAIN, Layer, register
from ._checks import layer_error, not_built, reshape_by_shapes

try:
    from . import elementwise_kernels as kernels
except ImportError as e:  # the package imports every layer; fail only when a Dropout is built
    kernels = None
    _KERNELS_ERROR = e

_dropout = gpu.Kernel('elementwise.cu', 'dropout')
_scale = gpu.Kernel('elementwise.cu', 'scale')


@register('Dropout')
class DropoutLayer(Layer):
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def setup(self, bottom, top):
        if kernels is None:
            raise not_built(self, 'elementwise_kernels', _KERNELS_ERROR)
        p = self.layer_param.dropout_param
        self.ratio = np.float32(p.dropout_ratio)
        if not 0.0 <= self.ratio < 1.0:
            raise layer_error(self, 'dropout_ratio must be in [0, 1), got %g' % self.ratio)
        self.scale_train = p.scale_train
        # Caffe keeps scale_ as a float computed in double, and scales at test time by
        # 1. / scale_ rounded back to float; both roundings are kept here.
        self.scale = np.float32(1.0 / (1.0 - float(self.ratio)))
        self.test_scale = np.float32(1.0 / float(self.scale))
        self.mask = None

    @reshape_by_shapes
    def reshape(self, bottom, top):
        top[0].reshape_like(bottom[0])

    # One pass each way, in place when the Net runs the layer in place (top is bottom).
    def forward_cpu(self, bottom, top):
        x = bottom[0].cpu_data().reshape(-1)
        y = top[0].data.reshape(-1)
        if self.phase == TRAIN:
            # Caffe's rand_vec_: one unsigned int (0 or 1) per unit, kept for backward.
            keep = rng().random_sample(bottom[0].shape) < 1.0 - float(self.ratio)
            self.mask = keep.astype(np.uint32)
            kernels.dropout(x, self.mask.reshape(-1), self.scale if self.scale_train else 1.0, y)
        elif self.scale_train:
            if not np.may_share_memory(x, y):
                y[...] = x
        else:
            np.multiply(x, self.test_scale, out=y)

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].cpu_diff().reshape(-1)
        dx = bottom[0].diff.reshape(-1)
        if self.phase == TRAIN:
            if self.mask is None or self.mask.shape != top[0].shape:
                raise layer_error(self, 'backward called before a training forward pass')
            kernels.dropout(dy, self.mask.reshape(-1), self.scale if self.scale_train else 1.0,
                            dx)
        elif self.scale_train:
            if not np.may_share_memory(dx, dy):
                dx[...] = dy
        else:
            np.multiply(dy, self.test_scale, out=dx)

    # GPU: the keep mask is drawn on the host from the runtime's RNG, exactly as forward_cpu
    # draws it, and uploaded; so a seeded run drops the same units on either device.
    def forward_gpu(self, bottom, top):
        x = bottom[0].gpu_data()
        y = top[0].mutable_gpu_data()
        if self.phase == TRAIN:
            keep = rng().random_sample(x.shape) < 1.0 - float(self.ratio)
            self.mask = keep.astype(np.uint32)
            self.mask_gpu = gpu.to_device(self.mask)
            _dropout(x.size, x, self.mask_gpu, self.scale if self.scale_train else 1.0, y)
        elif self.scale_train:
            gpu.copy(y, x)
        else:
            _scale(x.size, self.test_scale, x, y)

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].gpu_diff()
        dx = bottom[0].mutable_gpu_diff()
        if self.phase == TRAIN:
            if getattr(self, 'mask_gpu', None) is None or self.mask_gpu.shape != dy.shape:
                raise layer_error(self, 'backward called before a training forward pass')
            _dropout(dy.size, dy, self.mask_gpu, self.scale if self.scale_train else 1.0, dx)
        elif self.scale_train:
            gpu.copy(dx, dy)
        else:
            _scale(dy.size, self.test_scale, dy, dx)
