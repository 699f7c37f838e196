"""SPP: spatial pyramid pooling (He et al., "Spatial Pyramid Pooling in Deep Convolutional
Networks"), built as Caffe's SPPLayer builds it: for each pyramid level l < pyramid_height a
Pooling layer with 2^l bins per side, flattened, the levels concatenated along axis 1; with
pyramid_height 1, the one Pooling layer's output as it is (not flattened).

Caffe's pyramid levels (SPPLayer::GetPoolingParam), per side of size s and bins b = 2^l:
kernel = ceil(s / b), stride = kernel, pad = (kernel * b - s + 1) / 2 (integer division). The
Pooling layer's own output rule then applies, so a level may have fewer than b bins per side,
and a level whose pad reaches its kernel is an error, as in Caffe. The inner Pooling layers are
made from a fresh LayerParameter, whose phase is TRAIN: STOCHASTIC pooling inside SPP samples
in either phase, as in Caffe.

The levels' gradients are added into the bottom diff in level order (Caffe's Split layer)."""
import math

import numpy as np

from .. import common, gpu
from ..blob import Blob
from ..layer import TRAIN, Layer, register
from ..proto import caffe_pb2
from .concat import ConcatLayer
from .flatten import FlattenLayer
from .pooling import PoolingLayer
from ._checks import layer_error

_add_scaled = gpu.Kernel('elementwise.cu', 'add_scaled')

_METHODS = {caffe_pb2.SPPParameter.MAX: caffe_pb2.PoolingParameter.MAX,
            caffe_pb2.SPPParameter.AVE: caffe_pb2.PoolingParameter.AVE,
            caffe_pb2.SPPParameter.STOCHASTIC: caffe_pb2.PoolingParameter.STOCHASTIC}


def level_pooling(level, height, width, method):
    """The PoolingParameter of one pyramid level for a bottom of height x width."""
    bins = 2 ** level
    p = caffe_pb2.PoolingParameter(pool=method)
    for side, size in (('h', height), ('w', width)):
        kernel = int(math.ceil(size / bins))
        setattr(p, 'kernel_' + side, kernel)
        setattr(p, 'stride_' + side, kernel)
        setattr(p, 'pad_' + side, (kernel * bins - size + 1) // 2)
    return p


@register('SPP')
class SPPLayer(Layer):
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def setup(self, bottom, top):
        p = self.layer_param.spp_param
        self.height = int(p.pyramid_height)
        if self.height < 1:
            raise layer_error(self, 'spp_param.pyramid_height must be at least 1')
        if p.pool not in _METHODS:
            raise layer_error(self, 'unknown spp_param.pool %d' % p.pool)
        self.method = _METHODS[p.pool]
        self.pooled = [Blob() for _ in range(self.height)]
        self.flat = [Blob() for _ in range(self.height)]
        self.scratch = Blob()
        self.shape = None

    def _inner(self, kind, cls, name, message):
        param = caffe_pb2.LayerParameter(name='%s_%s' % (self.name, name), type=kind)
        param.MergeFrom(message)
        return cls(param, TRAIN)

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) != 4:
            raise layer_error(self, 'needs a 4-D bottom (num, channels, height, width); got %s'
                              % (shape,))
        if min(shape[2:]) < 1:
            raise layer_error(self, 'input height and width must be positive, got %s' % (shape,))
        if self.shape is None or shape[2:] != self.shape[2:]:
            # New pooling layers for a new image size, as Caffe's Reshape makes them.
            self.pools = []
            for level in range(self.height):
                pooling = caffe_pb2.LayerParameter(
                    pooling_param=level_pooling(level, shape[2], shape[3], self.method))
                self.pools.append(self._inner('Pooling', PoolingLayer, 'pool%d' % level,
                                              pooling))
            tops = [top[0]] if self.height == 1 else self.pooled
            for i, pool in enumerate(self.pools):
                pool.setup(bottom, [tops[i]])
            self.flatten = [self._inner('Flatten', FlattenLayer, 'flatten%d' % i,
                                        caffe_pb2.LayerParameter()) for i in range(self.height)]
            self.concat = self._inner('Concat', ConcatLayer, 'concat',
                                      caffe_pb2.LayerParameter())
            if self.height > 1:
                self.concat.setup(self.flat, top)
        self.shape = shape
        if self.height == 1:
            self.pools[0].reshape(bottom, top)
            return
        for pool, pooled, flat, f in zip(self.pools, self.pooled, self.flat, self.flatten):
            pool.reshape(bottom, [pooled])
            f.reshape([pooled], [flat])
        self.concat.reshape(self.flat, top)
        self.scratch.reshape(shape)

    # The inner layers pick their CPU or GPU code by the mode, as Caffe's SPPLayer's do.
    def forward_cpu(self, bottom, top):
        for pool in self.pools:     # what the net said of this layer holds for its parts
            pool.need_backward = self.need_backward
        if self.height == 1:
            self.pools[0].forward(bottom, top)
            return
        for pool, pooled in zip(self.pools, self.pooled):
            pool.forward(bottom, [pooled])
        self.concat.forward(self.flat, top)

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if self.height == 1:
            self.pools[0].backward(top, propagate_down, bottom)
            return
        self.concat.backward(top, [True] * self.height, self.flat)
        self.pools[0].backward([self.pooled[0]], [True], bottom)
        # Caffe's Split: bottom diff = level 0's + level 1's + ..., added in level order.
        for pool, pooled in zip(self.pools[1:], self.pooled[1:]):
            pool.backward([pooled], [True], [self.scratch])
            if common.mode() == common.GPU:
                dx = bottom[0].mutable_gpu_diff()
                _add_scaled(dx.size, np.float32(1), self.scratch.gpu_diff(), dx)
            else:
                bottom[0].diff[...] += self.scratch.cpu_diff()

    forward_gpu = forward_cpu
    backward_gpu = backward_cpu
