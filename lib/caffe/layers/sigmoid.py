"""Sigmoid: y = 1 / (1 + exp(-x)), computed as Caffe computes it, 0.5 * tanh(0.5 * x) + 0.5 (in
double, rounded to float); the gradient is dy * y * (1 - y). sigmoid_param.engine (CAFFE or
CUDNN) picks Caffe's implementation; both compute this function, and so does this layer."""
from ..layer import register
from ._neuron import NeuronLayer, cuda, flat, kernels

_forward = cuda('sigmoid_forward')
_backward = cuda('sigmoid_backward')


@register('Sigmoid')
class SigmoidLayer(NeuronLayer):
    def forward_cpu(self, bottom, top):
        kernels.sigmoid_forward(flat(bottom[0].cpu_data()), flat(top[0].data))

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            kernels.sigmoid_backward(flat(top[0].cpu_data()), flat(top[0].cpu_diff()),
                                     flat(bottom[0].diff))

    def forward_gpu(self, bottom, top):
        x = bottom[0].gpu_data()
        _forward(x.size, x, top[0].mutable_gpu_data())

    def backward_gpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y = top[0].gpu_data()
            _backward(y.size, y, top[0].gpu_diff(), bottom[0].mutable_gpu_diff())
