"""TanH: y = tanh(x); the gradient is dy * (1 - y^2). tanh_param.engine (CAFFE or CUDNN) picks
Caffe's implementation; both compute this function, and so does this layer."""
from ..layer import register
from ._neuron import ElementwiseNeuron


@register('TanH')
class TanHLayer(ElementwiseNeuron):
    kernel = 'tanh'
    backward_reads = ('y',)
