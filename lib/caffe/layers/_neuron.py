"""What the neuron layers share (Caffe's NeuronLayer): one bottom, one top of the bottom's shape,
element-wise CPU kernels (neuron_kernels.pyx) and CUDA kernels (gpu/kernels/neuron.cu).

A neuron layer runs in place (top is bottom) unless its type forbids it; its forward and
backward read the same buffers Caffe's do, so in place they compute what Caffe computes there
(for a backward that reads the bottom data, in place that is the output)."""
from .. import gpu
from ..layer import Layer
from ._checks import not_built, reshape_by_shapes

try:
    from . import neuron_kernels as kernels
except ImportError as e:  # the package imports every layer; fail only when one is built
    kernels = None
    _KERNELS_ERROR = e


def cuda(name):
    """A kernel of gpu/kernels/neuron.cu."""
    return gpu.Kernel('neuron.cu', name)


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
