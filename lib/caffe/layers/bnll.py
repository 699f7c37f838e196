"""BNLL (binomial normal log likelihood): y = log(1 + exp(x)), computed as x + log(1 + exp(-x))
for x > 0 so that it cannot overflow; the gradient exp(x) / (exp(x) + 1) uses exp(min(x, 50))
(Caffe's kBNLL_THRESHOLD), which keeps it 1 rather than inf / inf for large x."""
from ..layer import register
from ._neuron import NeuronLayer, cuda, flat, kernels

_forward = cuda('bnll_forward')
_backward = cuda('bnll_backward')


@register('BNLL')
class BNLLLayer(NeuronLayer):
    def forward_cpu(self, bottom, top):
        kernels.bnll_forward(flat(bottom[0].cpu_data()), flat(top[0].data))

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            kernels.bnll_backward(flat(bottom[0].cpu_data()), flat(top[0].cpu_diff()),
                                  flat(bottom[0].diff))

    def forward_gpu(self, bottom, top):
        x = bottom[0].gpu_data()
        _forward(x.size, x, top[0].mutable_gpu_data())

    def backward_gpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            x = bottom[0].gpu_data()
            _backward(x.size, x, top[0].gpu_diff(), bottom[0].mutable_gpu_diff())
