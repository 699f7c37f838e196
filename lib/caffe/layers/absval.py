"""AbsVal: y = |x|; the gradient is sign(x) * dy, 0 at x = 0 (caffe_cpu_sign). Caffe refuses
to run it in place."""
from ..layer import register
from ._checks import layer_error
from ._neuron import ElementwiseNeuron


@register('AbsVal')
class AbsValLayer(ElementwiseNeuron):
    kernel = 'absval'

    def setup(self, bottom, top):
        super().setup(bottom, top)
        if top[0] is bottom[0]:
            raise layer_error(self, 'does not allow in-place computation (its top must not be '
                              'its bottom)')
