"""SmoothL1Loss (Fast R-CNN fork): the box-regression loss.

Bottoms: pred, target, and optionally inside and outside weights (all the same shape).
d = inside * (pred - target); per element 0.5 * sigma^2 * d^2 where |d| < 1/sigma^2, else
|d| - 0.5/sigma^2; times outside; summed and divided by the batch size (pred's first axis).

Unlike Caffe's own loss layers, the fork's layer gives its top no loss weight by default; the
release's prototxts always set `loss_weight` on it."""
import numpy as np

from .. import gpu
from ..layer import Layer, register
from ._checks import check_count, layer_error, reshape_by_shapes

_forward = gpu.Kernel('smooth_l1.cu', 'smooth_l1_forward')
_backward = gpu.Kernel('smooth_l1.cu', 'smooth_l1_backward')


def _legacy_shape(blob):
    return blob.num, blob.channels, blob.height, blob.width


@register('SmoothL1Loss')
class SmoothL1LossLayer(Layer):
    non_differentiable_bottoms = (2, 3)
    min_bottom_blobs, max_bottom_blobs = 2, 4
    exact_num_top_blobs = 1

    def setup(self, bottom, top):
        check_count(self, 'bottom', bottom, (2, 4))
        sigma = np.float32(self.layer_param.smooth_l1_loss_param.sigma)
        self.sigma2 = np.float32(sigma * sigma)
        # The fork compares |d| (a float) with 1.0 / sigma2 computed in double.
        self.threshold = 1.0 / float(self.sigma2) if self.sigma2 != 0 else np.inf
        self.has_weights = len(bottom) == 4
        self.d = None

    @reshape_by_shapes
    def reshape(self, bottom, top):
        # Like the fork, compare num/channels/height/width (missing axes count as 1), so a
        # (R, 84) target matches a (R, 84, 1, 1) prediction.
        names = ('target', 'inside weights', 'outside weights')
        for b, name in zip(bottom[1:], names):
            if _legacy_shape(b) != _legacy_shape(bottom[0]) or b.count != bottom[0].count:
                raise layer_error(self, '%s shape %s does not match the prediction shape %s'
                                  % (name, b.shape, bottom[0].shape))
        top[0].reshape(())

    def forward_cpu(self, bottom, top):
        shape = bottom[0].shape
        d = bottom[0].cpu_data() - bottom[1].cpu_data().reshape(shape)
        if self.has_weights:
            d = bottom[2].cpu_data().reshape(shape) * d
        self.d = d
        # The fork's kernel evaluates both branches in double (0.5 is a double literal) and
        # rounds the result to float.
        v = d.astype(np.float64)
        a = np.abs(v)
        s2 = float(self.sigma2)
        errors = np.where(a < self.threshold, 0.5 * v * v * s2, a - 0.5 / s2).astype(np.float32)
        if self.has_weights:
            errors = bottom[3].cpu_data().reshape(shape) * errors
        top[0].data[...] = errors.sum(dtype=np.float32) / np.float32(bottom[0].num)

    def backward_cpu(self, top, propagate_down, bottom):
        for i in (2, 3):
            if i < len(propagate_down) and propagate_down[i]:
                bottom[i].diff[...] = 0
        if not any(propagate_down[:2]):
            return
        d = self.d
        sign = (d > 0).astype(np.float32) - (d < 0).astype(np.float32)
        grad = np.where(np.abs(d).astype(np.float64) < self.threshold, self.sigma2 * d, sign)
        loss_diff = np.float32(top[0].cpu_diff().reshape(-1)[0])
        for i, s in ((0, 1), (1, -1)):
            if not propagate_down[i]:
                continue
            alpha = np.float32(s) * loss_diff / np.float32(bottom[i].num)
            g = alpha * grad
            if self.has_weights:
                inside = bottom[2].cpu_data().reshape(g.shape)
                g = bottom[3].cpu_data().reshape(g.shape) * (inside * g)
            bottom[i].diff[...] = g.reshape(bottom[i].shape)

    # GPU: d and the per-element errors on the device (double branches as above); the errors
    # are summed on the host with the CPU path's numpy sum, so both paths give the same loss.
    def _weights_gpu(self, bottom):
        if not self.has_weights:
            return None, None
        return bottom[2].gpu_data(), bottom[3].gpu_data()

    def forward_gpu(self, bottom, top):
        pred = bottom[0].gpu_data()
        if getattr(self, 'd_gpu', None) is None or self.d_gpu.shape != pred.shape:
            self.d_gpu = gpu.empty(pred.shape)
        errors = gpu.empty(pred.shape)
        inside, outside = self._weights_gpu(bottom)
        _forward(pred.size, pred, bottom[1].gpu_data(), inside, outside, self.sigma2,
                 np.float64(self.threshold), self.d_gpu, errors)
        top[0].data[...] = errors.get().sum(dtype=np.float32) / np.float32(bottom[0].num)

    def backward_gpu(self, top, propagate_down, bottom):
        for i in (2, 3):
            if i < len(propagate_down) and propagate_down[i]:
                gpu.zero(bottom[i].mutable_gpu_diff())
        if not any(propagate_down[:2]):
            return
        loss_diff = np.float32(top[0].cpu_diff().reshape(-1)[0])
        inside, outside = self._weights_gpu(bottom)
        for i, s in ((0, 1), (1, -1)):
            if not propagate_down[i]:
                continue
            alpha = np.float32(s) * loss_diff / np.float32(bottom[i].num)
            dx = bottom[i].mutable_gpu_diff()
            _backward(dx.size, self.d_gpu, inside, outside, self.sigma2,
                      np.float64(self.threshold), alpha, dx)
