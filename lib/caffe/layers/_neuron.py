"""What the neuron layers share (Caffe's NeuronLayer): one bottom, one top of the bottom's shape,
element-wise CPU kernels (neuron_kernels.pyx) and CUDA kernels (gpu/kernels/neuron.cu).

A neuron layer runs in place (top is bottom) unless its type forbids it; its forward and
backward read the same buffers Caffe's do, so in place they compute what Caffe computes there
(for a backward that reads the bottom data, in place that is the output).

ElementwiseNeuron is a layer whose kernels are <kernel>_forward(x, y, *forward_args()) and
<kernel>_backward(<what backward_reads>, dy, dx, *backward_args()), the same on the CPU and,
with the element count first, on the GPU."""
from .. import gpu
from ..layer import Layer
from ._checks import not_built, reshape_by_shapes

try:
    from . import neuron_kernels as kernels
except ImportError as e:  # the package imports every layer; fail only when one is built
    kernels = None
    _KERNELS_ERROR = e

_CUDA = {}


def cuda(name):
    """A kernel of gpu/kernels/neuron.cu."""
    if name not in _CUDA:
        _CUDA[name] = gpu.Kernel('neuron.cu', name)
    return _CUDA[name]


def flat(array):
    """A blob's host or device array as one axis (its elements in order)."""
    return array.reshape(-1)


class NeuronLayer(Layer):
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def setup(self, bottom, top):
        if kernels is None:
            raise not_built(self, 'neuron_kernels', _KERNELS_ERROR)

    @reshape_by_shapes
    def reshape(self, bottom, top):
        top[0].reshape_like(bottom[0])


class ElementwiseNeuron(NeuronLayer):
    kernel = None             # the kernels' name: <kernel>_forward, <kernel>_backward
    backward_reads = ('x',)   # before the top diff: 'x' the bottom's data, 'y' the top's

    def forward_args(self):
        return ()

    def backward_args(self):
        return ()

    def _read(self, bottom, top, device):
        blobs = {'x': bottom[0], 'y': top[0]}
        if device:
            return [blobs[a].gpu_data() for a in self.backward_reads]
        return [flat(blobs[a].cpu_data()) for a in self.backward_reads]

    def forward_cpu(self, bottom, top):
        getattr(kernels, self.kernel + '_forward')(flat(bottom[0].cpu_data()), flat(top[0].data),
                                                   *self.forward_args())

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            getattr(kernels, self.kernel + '_backward')(
                *self._read(bottom, top, False), flat(top[0].cpu_diff()), flat(bottom[0].diff),
                *self.backward_args())

    def forward_gpu(self, bottom, top):
        x = bottom[0].gpu_data()
        cuda(self.kernel + '_forward')(x.size, x, top[0].mutable_gpu_data(),
                                       *self.forward_args())

    def backward_gpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            dy = top[0].gpu_diff()
            cuda(self.kernel + '_backward')(dy.size, *self._read(bottom, top, True), dy,
                                            bottom[0].mutable_gpu_diff(), *self.backward_args())
