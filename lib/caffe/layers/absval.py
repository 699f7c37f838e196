"""AbsVal: y = |x|; the gradient is sign(x) * dy, 0 at x = 0 (caffe_cpu_sign). Caffe refuses
to run it in place."""
from ..layer import register
from ._checks import layer_error
from ._neuron import NeuronLayer, cuda, flat, kernels

_forward = cuda('absval_forward')
_backward = cuda('absval_backward')


@register('AbsVal')
class AbsValLayer(NeuronLayer):
    def setup(self, bottom, top):
        super().setup(bottom, top)
        if top[0] is bottom[0]:
            raise layer_error(self, 'does not allow in-place computation (its top must not be '
                              'its bottom)')

    def forward_cpu(self, bottom, top):
        kernels.absval_forward(flat(bottom[0].cpu_data()), flat(top[0].data))

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            kernels.absval_backward(flat(bottom[0].cpu_data()), flat(top[0].cpu_diff()),
                                    flat(bottom[0].diff))

    def forward_gpu(self, bottom, top):
        x = bottom[0].gpu_data()
        _forward(x.size, x, top[0].mutable_gpu_data())

    def backward_gpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            x = bottom[0].gpu_data()
            _backward(x.size, x, top[0].gpu_diff(), bottom[0].mutable_gpu_diff())
