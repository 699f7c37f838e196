"""Dropout, with the Fast R-CNN fork's `scale_train` switch.

scale_train true (Caffe's rule): training keeps each unit with probability 1 - ratio and scales
it by 1/(1 - ratio); testing is the identity. scale_train false (the ZF models): training keeps
without scaling and testing multiplies by 1 - ratio instead. Works in place."""
import numpy as np

from .. import gpu
from ..common import rng
from ..layer import TRAIN, Layer, register
from ._checks import layer_error

_dropout = gpu.Kernel('elementwise.cu', 'dropout')
_scale = gpu.Kernel('elementwise.cu', 'scale')


@register('Dropout')
class DropoutLayer(Layer):
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def setup(self, bottom, top):
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

    def reshape(self, bottom, top):
        top[0].reshape_like(bottom[0])

    def forward_cpu(self, bottom, top):
        x = bottom[0].cpu_data()
        if self.phase == TRAIN:
            # Caffe's rand_vec_: one unsigned int (0 or 1) per unit, kept for backward.
            keep = rng().random_sample(x.shape) < 1.0 - float(self.ratio)
            self.mask = keep.astype(np.uint32)
            y = x * keep.astype(np.float32)
            top[0].data[...] = y * self.scale if self.scale_train else y
        elif self.scale_train:
            top[0].data[...] = x
        else:
            top[0].data[...] = x * self.test_scale

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].cpu_diff()
        if self.phase == TRAIN:
            if self.mask is None or self.mask.shape != dy.shape:
                raise layer_error(self, 'backward called before a training forward pass')
            g = dy * self.mask.astype(np.float32)
            bottom[0].diff[...] = g * self.scale if self.scale_train else g
        elif self.scale_train:
            bottom[0].diff[...] = dy
        else:
            bottom[0].diff[...] = dy * self.test_scale

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
