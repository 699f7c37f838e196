"""Sigmoid: y = 1 / (1 + exp(-x)), computed as Caffe computes it, 0.5 * tanh(0.5 * x) + 0.5 (in
double, rounded to float); the gradient is dy * y * (1 - y). sigmoid_param.engine (CAFFE or
CUDNN) picks Caffe's implementation; both compute this function, and so does this layer."""
from ..layer import register
from ._neuron import ElementwiseNeuron


@register('Sigmoid')
class SigmoidLayer(ElementwiseNeuron):
    kernel = 'sigmoid'
    backward_reads = ('y',)
