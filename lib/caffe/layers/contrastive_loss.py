"""ContrastiveLoss (Hadsell, Chopra, LeCun 2006): bottoms a and b (N, C, 1, 1) and a similarity
y (N, 1, 1, 1); d^2 = ||a - b||^2 per item; loss = sum over items of d^2 where y (cast to int)
is nonzero, else max(margin - d, 0)^2, divided by 2N (contrastive_loss_param: margin 1).
With legacy_version: true the dissimilar term is max(margin - d^2, 0), the form Caffe first
shipped, whose gradient is -(a - b) wherever margin > d^2 (Caffe keeps it for old models).
The new form's gradient divides by d + 1e-4, as Caffe's does, so that it stays finite at d = 0.
a and b take gradients; y does not."""
import numpy as np

from .. import gpu
from ..layer import register
from . import _partial_sums as sums
from ._checks import layer_error
from ._losses import LossLayer, kernels, loss_weight

_row_distances = gpu.Kernel('losses.cu', 'row_squared_distances')
_scaled_difference = gpu.Kernel('losses.cu', 'scaled_difference')


@register('ContrastiveLoss')
class ContrastiveLossLayer(LossLayer):
    exact_num_bottom_blobs = 3
    non_differentiable_bottoms = (2,)

    def setup(self, bottom, top):
        super().setup(bottom, top)
        p = self.layer_param.contrastive_loss_param
        self.margin = np.float32(p.margin)
        self.legacy = p.legacy_version
        self.dist_sq = None

    def reshape_loss(self, bottom, top):
        super().reshape_loss(bottom, top)
        a, b, y = bottom
        if a.channels != b.channels:
            raise layer_error(self, 'a %s and b %s differ in channels' % (a.shape, b.shape))
        for name, blob in (('a', a), ('b', b)):
            if blob.height != 1 or blob.width != 1 or len(blob.shape) > 4:
                raise layer_error(self, '%s must be (N, C, 1, 1), got %s' % (name, blob.shape))
        if y.channels != 1 or y.height != 1 or y.width != 1 or y.count != a.num:
            raise layer_error(self, 'the similarity must be (N, 1, 1, 1) with N = %d, got %s'
                              % (a.num, y.shape))
        self.num, self.channels = a.num, a.channels

    def _similar(self, bottom):
        # static_cast<int>: 0.5 counts as dissimilar.
        return bottom[2].cpu_data().reshape(-1).astype(np.int32) != 0

    def _loss(self, bottom, top):
        d2 = self.dist_sq
        if self.legacy:
            dissimilar = np.maximum(self.margin - d2, np.float32(0))
        else:
            dist = np.maximum(self.margin - np.sqrt(d2), np.float32(0))
            dissimilar = dist * dist
        terms = np.where(self._similar(bottom), d2, dissimilar)
        top[0].data[...] = (np.float32(sums.total(terms)) / np.float32(self.num)
                            / np.float32(2))

    def _coefficients(self, top, bottom, sign):
        """Per item, what multiplies a - b in the gradient of bottom `sign` (+1 a, -1 b)."""
        alpha = np.float32(sign * loss_weight(top)) / np.float32(self.num)
        d2 = self.dist_sq
        if self.legacy:
            mdist = self.margin - d2
            beta = np.full(d2.shape, -alpha, np.float32)
        else:
            dist = np.sqrt(d2)
            mdist = self.margin - dist
            beta = (-alpha * mdist) / (dist + np.float32(1e-4))
        dissimilar = np.where(mdist > 0, beta, np.float32(0))
        return np.where(self._similar(bottom), alpha, dissimilar).astype(np.float32)

    def forward_cpu(self, bottom, top):
        if self.dist_sq is None or self.dist_sq.size != self.num:
            self.dist_sq = np.empty(self.num, np.float32)
        kernels.row_squared_distances(bottom[0].cpu_data().reshape(-1),
                                      bottom[1].cpu_data().reshape(-1), self.channels,
                                      self.dist_sq)
        self._loss(bottom, top)

    def backward_cpu(self, top, propagate_down, bottom):
        a, b = bottom[0].cpu_data().reshape(-1), bottom[1].cpu_data().reshape(-1)
        for i, sign in ((0, 1), (1, -1)):
            if propagate_down[i] and a.size:
                kernels.scaled_difference(a, b, self.channels, bottom[i].diff.reshape(-1),
                                          coef=self._coefficients(top, bottom, sign))

    def forward_gpu(self, bottom, top):
        distances = gpu.empty(self.num)
        _row_distances(self.num, self.channels, bottom[0].gpu_data(), bottom[1].gpu_data(),
                       distances)
        self.dist_sq = distances.get()
        self._loss(bottom, top)

    def backward_gpu(self, top, propagate_down, bottom):
        a, b = bottom[0].gpu_data(), bottom[1].gpu_data()
        for i, sign in ((0, 1), (1, -1)):
            if propagate_down[i]:
                coef = gpu.to_device(self._coefficients(top, bottom, sign))
                _scaled_difference(a.size, self.channels, a, b, coef, np.float32(0),
                                   bottom[i].mutable_gpu_diff())
