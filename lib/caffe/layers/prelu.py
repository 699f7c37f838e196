"""PReLU: y = max(x, 0) + a_c * min(x, 0), with a learned slope a_c per channel (axis 1), or one
slope for all channels with prelu_param.channel_shared (then the parameter blob has no axes).
The slopes start from prelu_param.filler, by default the constant 0.25 (Caffe's).

Backward: the slope gradient is the sum over every element of its channel of
dy * x * (x <= 0), accumulated onto the slope diff (as Caffe, before the bottom diff is written:
in place they are one buffer); the bottom gradient is dy * ((x > 0) + a_c * (x <= 0)). In place
the layer keeps a copy of its input for backward (Caffe's bottom_memory_)."""
import numpy as np

from .. import gpu
from ..fillers import fill
from ..layer import register
from ..proto import caffe_pb2
from . import _partial_sums as sums
from ._checks import count_between, layer_error
from ._neuron import NeuronLayer, cuda, flat, kernels

_forward = cuda('prelu_forward')
_backward = cuda('prelu_backward')
_slope_partials = cuda('prelu_slope_partials')
_add_scaled = gpu.Kernel('elementwise.cu', 'add_scaled')


@register('PReLU')
class PReLULayer(NeuronLayer):
    def setup(self, bottom, top):
        super().setup(bottom, top)
        self._check_axes(bottom[0])
        p = self.layer_param.prelu_param
        self.shared = p.channel_shared
        channels = bottom[0].shape[1]
        shape = () if self.shared else (channels,)
        if len(self.blobs) == 0:
            self.blobs.add_blob(*shape)
            filler = p.filler if p.HasField('filler') else caffe_pb2.FillerParameter(
                type='constant', value=0.25)
            fill(self.blobs[0], filler)
        elif self.blobs[0].count != (1 if self.shared else channels):
            raise layer_error(self, 'negative slope size %d is inconsistent with prototxt config '
                              '(%s)' % (self.blobs[0].count, 'channel_shared' if self.shared
                                        else '%d channels' % channels))
        self.param_propagate_down = [True]
        self.kept = self.kept_gpu = None

    def _check_axes(self, blob):
        if len(blob.shape) < 2:
            raise layer_error(self, 'the bottom needs at least 2 axes (num, channels, ...), got '
                              'shape %s' % (blob.shape,))

    def reshape(self, bottom, top):
        self._check_axes(bottom[0])
        channels = bottom[0].shape[1]
        if not self.shared and self.blobs[0].count != channels:
            raise layer_error(self, 'bottom has %d channels, the slopes are %d'
                              % (channels, self.blobs[0].count))
        self.channels = channels
        self.dim = count_between(bottom[0].shape, 2, None)
        top[0].reshape_like(bottom[0])

    def _geometry(self):
        return self.channels, self.dim, self.shared

    def _slope_sums(self, partials):
        """The slope gradient: per channel (or in all) the sums of the partial sums."""
        rows = partials.size // sums.runs(self.dim)
        per_row = partials.reshape(rows // self.channels, self.channels, -1)
        if self.shared:
            return np.float32([sums.total(per_row)])
        return np.float32([sums.total(per_row[:, c]) for c in range(self.channels)])

    def _partials_size(self, count):
        return (count // max(self.dim, 1)) * sums.runs(self.dim)

    # CPU -------------------------------------------------------------------------------------
    def forward_cpu(self, bottom, top):
        x = bottom[0].cpu_data()
        kept = None
        if top[0] is bottom[0]:
            if self.kept is None or self.kept.shape != x.shape:
                self.kept = np.empty(x.shape, np.float32)
            kept = flat(self.kept)
        kernels.prelu_forward(flat(x), flat(top[0].data), flat(self.blobs[0].cpu_data()),
                              *self._geometry(), kept=kept)

    def backward_cpu(self, top, propagate_down, bottom):
        x = flat(self.kept if top[0] is bottom[0] else bottom[0].cpu_data())
        dy = flat(top[0].cpu_diff())
        if self.param_propagate_down[0] and x.size:
            partials = np.empty(self._partials_size(x.size), np.float64)
            kernels.prelu_slope_partials(x, dy, self.dim, sums.CHUNK, partials)
            self.blobs[0].diff[...] += self._slope_sums(partials).reshape(self.blobs[0].shape)
        if propagate_down[0]:
            kernels.prelu_backward(x, dy, flat(bottom[0].diff), flat(self.blobs[0].cpu_data()),
                                   *self._geometry())

    # GPU -------------------------------------------------------------------------------------
    def forward_gpu(self, bottom, top):
        x = bottom[0].gpu_data()
        kept = None
        if top[0] is bottom[0]:
            if self.kept_gpu is None or self.kept_gpu.shape != x.shape:
                self.kept_gpu = gpu.empty(x.shape)
            kept = self.kept_gpu
        _forward(x.size, self.channels, self.dim, self.shared, x, top[0].mutable_gpu_data(),
                 self.blobs[0].gpu_data(), kept)

    def backward_gpu(self, top, propagate_down, bottom):
        x = self.kept_gpu if top[0] is bottom[0] else bottom[0].gpu_data()
        dy = top[0].gpu_diff()
        if self.param_propagate_down[0] and x.size:
            n = self._partials_size(x.size)
            partials = gpu.empty(n, np.float64)
            _slope_partials(n, self.dim, sums.CHUNK, sums.runs(self.dim), x, dy, partials)
            slope_sums = gpu.to_device(self._slope_sums(partials.get()))
            _add_scaled(slope_sums.size, np.float32(1), slope_sums,
                        self.blobs[0].mutable_gpu_diff())
        if propagate_down[0]:
            _backward(x.size, self.channels, self.dim, self.shared, x, dy,
                      bottom[0].mutable_gpu_diff(), self.blobs[0].gpu_data())
