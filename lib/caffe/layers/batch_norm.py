"""BatchNorm: Caffe's batch normalization (Ioffe & Szegedy, 2015) without the learned scale and
shift, which Caffe nets put in a Scale layer with bias_term after it (Kaiming He's ResNets do).

The bottom is seen as (num, channels, spatial): statistics are per channel, over num and the
axes after the channels. Parameter blobs, as Caffe stores them:
  blobs[0] (C,)  the running sum of batch means,
  blobs[1] (C,)  the running sum of (unbiased) batch variances,
  blobs[2] (1,)  the running sum of weights; the moving averages are blobs[0] / blobs[2] and
                 blobs[1] / blobs[2].
With use_global_stats (the default in TEST) the layer computes
  y = (x - mean) / sqrt(var + eps),  mean = blobs[0] * f,  var = blobs[1] * f,
  f = 1 / blobs[2] (0 when blobs[2] is 0),
subtracting first and then dividing, as Caffe does. Without it (the default in TRAIN) mean and
var are the batch's (the biased variance) and every forward pass updates the sums:
  blobs[2] = blobs[2] * fraction + 1,  blobs[0] = blobs[0] * fraction + mean,
  blobs[1] = blobs[1] * fraction + m / (m - 1) * var      (m = num * spatial).
Backward differentiates through the batch statistics in that mode and treats mean and var as
constants with global statistics. The blobs are statistics, never learned: as Caffe's
BatchNormLayer::LayerSetUp does, setup adds lr_mult 0 ParamSpecs for the blobs the prototxt
gives none for (the Net reads the layer's own LayerParameter after setup, as Caffe's does), and
rejects a spec with another lr_mult. Works in place.
"""
import numpy as np

from .. import gpu
from ..layer import TEST, Layer, register
from ._checks import check_count, count_between, layer_error, not_built

try:
    from .batch_norm_kernels import backward_batch_stats, channel_mean_var, normalize
except ImportError as e:  # the package imports every layer; fail only when a BatchNorm is built
    backward_batch_stats = channel_mean_var = normalize = None
    _KERNELS_ERROR = e


@register('BatchNorm')
class BatchNormLayer(Layer):
    def setup(self, bottom, top):
        check_count(self, 'bottom', bottom, 1)
        check_count(self, 'top', top, 1)
        if normalize is None:
            raise not_built(self, 'batch_norm_kernels', _KERNELS_ERROR)
        p = self.layer_param.batch_norm_param
        self.use_global_stats = (p.use_global_stats if p.HasField('use_global_stats')
                                 else self.phase == TEST)
        self.fraction = np.float32(p.moving_average_fraction)
        self.eps = np.float32(p.eps)
        if len(bottom[0].shape) < 2:
            raise layer_error(self, 'needs a bottom with a channel axis (num, channels, ...); '
                              'got shape %s' % (bottom[0].shape,))
        self.channels = bottom[0].shape[1]
        shapes = [(self.channels,), (self.channels,), (1,)]
        if len(self.blobs) == 0:
            for shape in shapes:
                self.blobs.add_blob(*shape)      # zeros, as Caffe starts them
        elif [b.shape for b in self.blobs] != shapes:
            raise layer_error(self, 'parameter shapes %s do not match the expected %s'
                              % ([b.shape for b in self.blobs], shapes))
        specs = self.layer_param.param
        for i in range(len(self.blobs)):
            if i == len(specs):
                specs.add(lr_mult=0)
            elif specs[i].lr_mult != 0:
                raise layer_error(self, 'param %d has lr_mult %g: BatchNorm statistics cannot be '
                                  'learned parameters (lr_mult must be 0, as Caffe requires)'
                                  % (i, specs[i].lr_mult))
        self.param_propagate_down = [False] * len(self.blobs)
        self.x_norm = None

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) < 2 or shape[1] != self.channels:
            raise layer_error(self, 'bottom shape %s: expected %d channels on axis 1'
                              % (shape, self.channels))
        top[0].reshape(shape)
        self.num = shape[0]
        self.spatial = count_between(shape, 2, len(shape))

    def _view(self, array):
        return array.reshape(self.num, self.channels, self.spatial)

    # CPU -----------------------------------------------------------------------------------------
    def _global_stats(self):
        weight = self.blobs[2].cpu_data()[0]
        factor = np.float32(0) if weight == 0 else np.float32(1) / weight
        mean = factor * self.blobs[0].cpu_data()
        var = factor * self.blobs[1].cpu_data()
        var += self.eps
        return mean, np.sqrt(var)

    def _correction(self):
        # Caffe: Dtype(m) / (m - 1), in float32, for the unbiased variance of m values.
        m = self.num * self.spatial
        return np.float32(m) / np.float32(m - 1) if m > 1 else np.float32(1)

    def _check_batch(self):
        if self.num * self.spatial == 0:
            raise layer_error(self, 'batch statistics of an empty bottom (shape %s)'
                              % ((self.num, self.channels, self.spatial),))

    def forward_cpu(self, bottom, top):
        x = self._view(bottom[0].cpu_data())
        if self.use_global_stats:
            mean, self.std = self._global_stats()
            kept = None
        else:
            self._check_batch()
            mean = np.empty(self.channels, np.float32)
            var = np.empty(self.channels, np.float32)
            channel_mean_var(x, mean, var)
            for blob, value, gain in ((self.blobs[0], mean, np.float32(1)),
                                      (self.blobs[1], var, self._correction())):
                stored = blob.data
                stored *= self.fraction
                stored += gain * value
            weight = self.blobs[2].data
            weight *= self.fraction
            weight += np.float32(1)
            var += self.eps
            self.std = np.sqrt(var)
            # Backward needs y, and a later in-place layer (Scale) overwrites the top.
            kept = self._kept_host(x.shape)
        normalize(x, mean, self.std, self._view(top[0].data), kept)

    def _kept_host(self, shape):
        if self.x_norm is None or self.x_norm.shape != shape:
            self.x_norm = np.empty(shape, np.float32)
        return self.x_norm

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = self._view(top[0].cpu_diff())
        dx = self._view(bottom[0].diff)
        if self.use_global_stats:
            np.divide(dy, self.std[None, :, None], out=dx)
            return
        # Caffe forms -1/m in double, then rounds it to float32.
        neg_inv_m = np.float32(-1.0 / (self.num * self.spatial))
        backward_batch_stats(dy, self.x_norm, self.std, neg_inv_m, dx)

    # GPU: the same steps in kernels/batch_norm.cu; statistics stay on the device. ------------
    def _device_buffers(self):
        if getattr(self, 'mean_gpu', None) is None:
            self.mean_gpu, self.var_gpu, self.std_gpu, self.sum_a_gpu, self.sum_b_gpu = [
                gpu.empty(self.channels) for _ in range(5)]

    def forward_gpu(self, bottom, top):
        self._device_buffers()
        x = bottom[0].gpu_data()
        y = top[0].mutable_gpu_data()
        c = self.channels
        if self.use_global_stats:
            _global_stats(c, self.blobs[0].gpu_data(), self.blobs[1].gpu_data(),
                          self.blobs[2].gpu_data(), self.eps, self.mean_gpu, self.std_gpu)
            kept = None
        else:
            self._check_batch()
            _batch_stats.launch((c, 1), (_THREADS, 1, 1), np.int32(self.num), np.int32(c),
                                np.int32(self.spatial), x, self.eps, self.mean_gpu,
                                self.var_gpu, self.std_gpu)
            _moving_average(c, self.mean_gpu, self.var_gpu, self.fraction, self._correction(),
                            self.blobs[0].mutable_gpu_data(), self.blobs[1].mutable_gpu_data(),
                            self.blobs[2].mutable_gpu_data())
            kept = getattr(self, 'x_norm_gpu', None)
            if kept is None or kept.shape != x.shape:
                kept = self.x_norm_gpu = gpu.empty(x.shape)
        _normalize(x.size, c, self.spatial, x, self.mean_gpu, self.std_gpu, y, kept)

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].gpu_diff()
        dx = bottom[0].mutable_gpu_diff()
        c = self.channels
        if self.use_global_stats:
            _backward_global(dy.size, c, self.spatial, dy, self.std_gpu, dx)
            return
        _backward_sums.launch((c, 1), (_THREADS, 1, 1), np.int32(self.num), np.int32(c),
                              np.int32(self.spatial), dy, self.x_norm_gpu, self.sum_a_gpu,
                              self.sum_b_gpu)
        neg_inv_m = np.float32(-1.0 / (self.num * self.spatial))
        _backward_batch(dy.size, c, self.spatial, dy, self.x_norm_gpu, self.std_gpu,
                        self.sum_a_gpu, self.sum_b_gpu, neg_inv_m, dx)


_THREADS = 256  # BN_THREADS in kernels/batch_norm.cu
_global_stats = gpu.Kernel('batch_norm.cu', 'batch_norm_global_stats')
_batch_stats = gpu.Kernel('batch_norm.cu', 'batch_norm_batch_stats')
_moving_average = gpu.Kernel('batch_norm.cu', 'batch_norm_moving_average')
_normalize = gpu.Kernel('batch_norm.cu', 'batch_norm_normalize')
_backward_global = gpu.Kernel('batch_norm.cu', 'batch_norm_backward_global')
_backward_sums = gpu.Kernel('batch_norm.cu', 'batch_norm_backward_sums')
_backward_batch = gpu.Kernel('batch_norm.cu', 'batch_norm_backward_batch')
