"""TanH: y = tanh(x); the gradient is dy * (1 - y^2). tanh_param.engine (CAFFE or CUDNN) picks
Caffe's implementation; both compute this function, and so does this layer."""
from ..layer import register
from ._neuron import NeuronLayer, cuda, flat, kernels

_forward = cuda('tanh_forward')
_backward = cuda('tanh_backward')


@register('TanH')
class TanHLayer(NeuronLayer):
    def forward_cpu(self, bottom, top):
        kernels.tanh_forward(flat(bottom[0].cpu_data()), flat(top[0].data))

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            kernels.tanh_backward(flat(top[0].cpu_data()), flat(top[0].cpu_diff()),
                                  flat(bottom[0].diff))

    def forward_gpu(self, bottom, top):
        x = bottom[0].gpu_data()
        _forward(x.size, x, top[0].mutable_gpu_data())

    def backward_gpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y = top[0].gpu_data()
            _backward(y.size, y, top[0].gpu_diff(), bottom[0].mutable_gpu_diff())
