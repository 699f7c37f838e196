"""LSTMUnit: one step of an LSTM (Caffe's lstm_unit_layer.cpp), the unit the LSTM layer's
unrolled net repeats.

Bottoms: c_prev (1 x N x D), gates (1 x N x 4D: pre-activations in the order i, f, o, g), cont
(1 x N). Tops: c and h (1 x N x D):
    i = sigmoid, f = cont * sigmoid (0 where cont is 0), o = sigmoid, g = tanh,
    c = f * c_prev + i * g,   h = o * tanh(c).
Gradients go to c_prev and gates (both written when either is asked for, as Caffe does); none
to cont."""
from ..layer import Layer, register
from ._checks import layer_error, reshape_by_shapes
from ._recurrent import DeviceOps, HostOps, check_built


@register('LSTMUnit')
class LSTMUnitLayer(Layer):
    bottoms = ('c_prev', 'gates', 'cont')
    tops = ('c', 'h')
    non_differentiable_bottoms = (2,)

    def setup(self, bottom, top):
        check_built(self)

    @reshape_by_shapes
    def reshape(self, bottom, top):
        c_prev, gates, cont = (b.shape for b in bottom)
        if len(c_prev) != 3 or c_prev[0] != 1:
            raise layer_error(self, 'c_prev must have shape (1, N, D), got %s' % (c_prev,))
        n, d = c_prev[1], c_prev[2]
        if gates != (1, n, 4 * d):
            raise layer_error(self, 'gates must have shape (1, %d, %d) for c_prev %s, got %s'
                              % (n, 4 * d, c_prev, gates))
        if cont != (1, n):
            raise layer_error(self, 'cont must have shape (1, %d), got %s' % (n, cont))
        self.n, self.d = n, d
        top[0].reshape(c_prev)
        top[1].reshape(c_prev)

    def _forward(self, o, bottom, top):
        o.lstm_unit_forward(self.n, self.d, o.data(bottom[0]), o.data(bottom[1]),
                            o.data(bottom[2]), o.mutable_data(top[0]), o.mutable_data(top[1]))

    def _backward(self, o, top, propagate_down, bottom):
        if not (propagate_down[0] or propagate_down[1]):
            return
        o.lstm_unit_backward(self.n, self.d, o.data(bottom[0]), o.data(bottom[1]),
                             o.data(bottom[2]), o.data(top[0]), o.diff(top[0]), o.diff(top[1]),
                             o.mutable_diff(bottom[0]), o.mutable_diff(bottom[1]))

    def forward_cpu(self, bottom, top):
        self._forward(HostOps, bottom, top)

    def forward_gpu(self, bottom, top):
        self._forward(DeviceOps, bottom, top)

    def backward_cpu(self, top, propagate_down, bottom):
        self._backward(HostOps, top, propagate_down, bottom)

    def backward_gpu(self, top, propagate_down, bottom):
        self._backward(DeviceOps, top, propagate_down, bottom)
