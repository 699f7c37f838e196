"""What LSTM and RNN share: Caffe's RecurrentLayer contract, and the few array operations their
recurrences are written in, on the host (numpy, recurrent_kernels) or the device (cuBLAS,
gpu/kernels/recurrent.cu), so each recurrence is written once for both.

Caffe's RecurrentLayer (recurrent_layer.cpp), which these layers follow:
- bottoms: x (T x N x ...: T timesteps of N independent streams), cont (T x N: 0 where a
  sequence starts, else 1), then an optional static input x_static (N x ...) seen at every
  step, then, with recurrent_param.expose_hidden, the initial states (h_0, and c_0 for LSTM,
  each 1 x N x num_output).
- tops: the per-step outputs (T x N x num_output), then, with expose_hidden, the final states.
- Without expose_hidden the initial state of a forward pass is the final state of the previous
  one (zeros at first): a stream continues across batches, and cont says where it restarts.
- T is fixed at setup; N may change (the state is reset to zeros when it does).
- No gradient reaches cont (Caffe refuses), and none flows through the exposed states: Caffe's
  unrolled net shares only their data with the layer's bottoms and tops, not their diffs, so the
  diffs of exposed h_0/c_0 bottoms are left zero here and those of h_T/c_T tops are ignored.
- The parameters are the unrolled net's, in the order they first appear in it.
"""
import numpy as np

from .. import gpu
from ..fillers import fill
from ..gemm import matmul
from ..layer import Layer
from ._checks import layer_error, not_built

try:
    from . import recurrent_kernels as kernels
except ImportError as e:  # the package imports every layer; fail only when one is built
    kernels = None
    _KERNELS_ERROR = e

_K = {name: gpu.Kernel('recurrent.cu', name) for name in (
    'lstm_unit_forward', 'lstm_unit_backward', 'scale_rows', 'add_scaled_rows', 'tanh_forward',
    'tanh_backward_add')}
_add_bias = gpu.Kernel('elementwise.cu', 'add_bias')
_add_scaled = gpu.Kernel('elementwise.cu', 'add_scaled')
_sum_rows_accumulate = gpu.Kernel('elementwise.cu', 'sum_rows_accumulate')


class HostOps:
    """The operations on flat float32 numpy arrays (views, so results land in place)."""
    empty = staticmethod(lambda n: np.empty(n, np.float32))

    @staticmethod
    def data(blob):
        return blob.cpu_data().reshape(-1)

    @staticmethod
    def diff(blob):
        return blob.cpu_diff().reshape(-1)

    @staticmethod
    def mutable_data(blob):
        return blob.data.reshape(-1)

    @staticmethod
    def mutable_diff(blob):
        return blob.diff.reshape(-1)

    @staticmethod
    def gemm(trans_a, trans_b, m, n, k, a, b, beta, c):
        """Row-major c (m x n) = op(a) op(b) + beta * c, beta 0 or 1 (caffe.gemm: the same
        bits at any thread count)."""
        a = a.reshape((k, m) if trans_a else (m, k))
        b = b.reshape((n, k) if trans_b else (k, n))
        matmul(a.T if trans_a else a, b.T if trans_b else b, c.reshape(m, n),
               accumulate=bool(beta))

    @staticmethod
    def add_bias(y, columns, bias):
        y.reshape(-1, columns)[...] += bias

    @staticmethod
    def sum_rows_accumulate(columns, rows, dy, db):
        db += dy.reshape(rows, columns).sum(axis=0, dtype=np.float32)

    @staticmethod
    def copy(dst, src):
        dst[...] = src

    @staticmethod
    def zero(x):
        x[...] = 0

    @staticmethod
    def add_to(y, x):
        y += x

    @staticmethod
    def ones(n):
        return np.ones(n, np.float32)

    @staticmethod
    def scale_rows(n, d, x, scale, y, accumulate=False):
        f = kernels.add_scaled_rows if accumulate else kernels.scale_rows
        f(x.reshape(n, d), scale, y.reshape(n, d))

    @staticmethod
    def lstm_unit_forward(n, d, c_prev, gates, cont, c, h):
        kernels.lstm_unit_forward(c_prev.reshape(n, d), gates.reshape(n, 4 * d), cont,
                                  c.reshape(n, d), h.reshape(n, d))

    @staticmethod
    def lstm_unit_backward(n, d, c_prev, gates, cont, c, c_diff, h_diff, c_prev_diff, gates_diff):
        kernels.lstm_unit_backward(c_prev.reshape(n, d), gates.reshape(n, 4 * d), cont,
                                   c.reshape(n, d), c_diff.reshape(n, d), h_diff.reshape(n, d),
                                   c_prev_diff.reshape(n, d), gates_diff.reshape(n, 4 * d))

    @staticmethod
    def tanh(x):
        kernels.tanh_forward(x)

    @staticmethod
    def tanh_backward(y, dy, dx, accumulate=False):
        kernels.tanh_backward_add(y, dy, dx, accumulate)


class DeviceOps:
    """The same operations on flat device arrays."""
    empty = staticmethod(lambda n: gpu.empty(n))

    @staticmethod
    def data(blob):
        return blob.gpu_data().reshape(blob.count)

    @staticmethod
    def diff(blob):
        return blob.gpu_diff().reshape(blob.count)

    @staticmethod
    def mutable_data(blob):
        return blob.mutable_gpu_data().reshape(blob.count)

    @staticmethod
    def mutable_diff(blob):
        return blob.mutable_gpu_diff().reshape(blob.count)

    @staticmethod
    def gemm(trans_a, trans_b, m, n, k, a, b, beta, c):
        from ..gpu.cublas import gemm
        gemm(trans_a, trans_b, m, n, k, 1.0, a, b, float(beta), c)

    @staticmethod
    def add_bias(y, columns, bias):
        _add_bias(y.size, columns, bias, y)

    @staticmethod
    def sum_rows_accumulate(columns, rows, dy, db):
        _sum_rows_accumulate(columns, rows, dy, db)

    copy = staticmethod(gpu.copy)
    zero = staticmethod(gpu.zero)

    @staticmethod
    def add_to(y, x):
        _add_scaled(y.size, 1.0, x, y)   # y + 1 * x: exactly y + x

    @staticmethod
    def ones(n):
        return gpu.to_device(np.ones(n, np.float32))

    @staticmethod
    def scale_rows(n, d, x, scale, y, accumulate=False):
        _K['add_scaled_rows' if accumulate else 'scale_rows'](n * d, d, x, scale, y)

    @staticmethod
    def lstm_unit_forward(n, d, c_prev, gates, cont, c, h):
        _K['lstm_unit_forward'](n * d, d, c_prev, gates, cont, c, h)

    @staticmethod
    def lstm_unit_backward(n, d, c_prev, gates, cont, c, c_diff, h_diff, c_prev_diff, gates_diff):
        _K['lstm_unit_backward'](n * d, d, c_prev, gates, cont, c, c_diff, h_diff,
                                 c_prev_diff, gates_diff)

    @staticmethod
    def tanh(x):
        _K['tanh_forward'](x.size, x)

    @staticmethod
    def tanh_backward(y, dy, dx, accumulate=False):
        _K['tanh_backward_add'](y.size, y, dy, dx, int(accumulate))


def check_built(layer):
    if kernels is None:
        raise not_built(layer, 'recurrent_kernels', _KERNELS_ERROR)


class RecurrentLayer(Layer):
    """Subclasses set state_names (the recurrent states, Caffe's RecurrentInputBlobNames order)
    and param_shapes(), and write forward_with/backward_with in terms of ops()."""
    state_names = ()
    min_bottom_blobs = 2
    min_top_blobs = 1

    def setup(self, bottom, top):
        check_built(self)
        p = self.layer_param.recurrent_param
        if p.num_output <= 0:
            raise layer_error(self, 'recurrent_param.num_output must be positive')
        self.hidden = int(p.num_output)
        self.expose_hidden = p.expose_hidden
        n_states = len(self.state_names)
        exposed = n_states if self.expose_hidden else 0
        if len(bottom) > 3 + exposed or len(bottom) < 2 + exposed:
            raise layer_error(self, 'takes x, cont, an optional static input%s: %d to %d '
                              'bottoms, got %d' % (
                                  ' and the initial %s' % ', '.join(self.state_names)
                                  if exposed else '', 2 + exposed, 3 + exposed, len(bottom)))
        if len(top) != 1 + exposed:
            raise layer_error(self, 'takes %d top(s)%s, got %d' % (
                1 + exposed, ' (the outputs and the final %s)' % ', '.join(self.state_names)
                if exposed else '', len(top)))
        self.static_input = len(bottom) > 2 + exposed
        self._check_shapes(bottom)
        self.T = bottom[0].shape[0]
        self.input_dim = bottom[0].count_from(2)
        self.static_dim = bottom[2].count_from(1) if self.static_input else 0
        # Only the data bottoms carry gradients.
        self.non_differentiable_bottoms = tuple(
            [1] + list(range(2 + self.static_input, len(bottom))))
        shapes = self.param_shapes()
        if len(self.blobs) == 0:
            for name, shape in shapes:
                self.blobs.add_blob(*shape)
                fill(self.blobs[-1], p.bias_filler if name.startswith('b_') else p.weight_filler)
        elif [b.shape for b in self.blobs] != [s for _, s in shapes]:
            raise layer_error(self, 'parameter shapes %s do not match the expected %s (%s)' % (
                [b.shape for b in self.blobs], [s for _, s in shapes],
                ', '.join(n for n, _ in shapes)))
        self.param_propagate_down = [True] * len(self.blobs)
        self.N = None

    def _check_shapes(self, bottom):
        x, cont = bottom[0], bottom[1]
        if len(x.shape) < 2:
            raise layer_error(self, 'bottom[0] must have at least 2 axes (#timesteps, #streams, '
                              '...), got %s' % (x.shape,))
        if len(cont.shape) != 2 or cont.shape != x.shape[:2]:
            raise layer_error(self, 'bottom[1] (cont) must have shape (#timesteps, #streams) = '
                              '%s, got %s' % (x.shape[:2], cont.shape))
        if self.static_input and (len(bottom[2].shape) < 1 or bottom[2].shape[0] != x.shape[1]):
            raise layer_error(self, 'bottom[2] (the static input) must have shape (#streams, '
                              '...) with %d streams, got %s' % (x.shape[1], bottom[2].shape))

    def reshape(self, bottom, top):
        self._check_shapes(bottom)
        if bottom[0].shape[0] != self.T:
            raise layer_error(self, 'the number of timesteps changed from %d to %d (fixed at '
                              'setup, as in Caffe)' % (self.T, bottom[0].shape[0]))
        if bottom[0].count_from(2) != self.input_dim or (
                self.static_input and bottom[2].count_from(1) != self.static_dim):
            raise layer_error(self, 'input size changed since setup')
        n = bottom[0].shape[1]
        state_shape = (1, n, self.hidden)
        if self.expose_hidden:
            first = 2 + self.static_input
            for k, name in enumerate(self.state_names):
                if bottom[first + k].shape != state_shape:
                    raise layer_error(self, 'bottom %s must have shape %s, got %s'
                                      % (name, state_shape, bottom[first + k].shape))
        if n != self.N:
            self.N = n
            # the carried-over state, per mode (kept where the passes run)
            self._carry = {}
        top[0].reshape((self.T, n) + self.output_tail())
        for t in top[1:]:
            t.reshape(state_shape)

    def output_tail(self):
        return (self.hidden,)

    def _buffer(self, o, name, size):
        """A scratch array of the layer, per mode and size, kept between passes (the forward
        pass's activations are the backward pass's inputs)."""
        cache = self.__dict__.setdefault('_buffers', {})
        key = (o, name)
        if key not in cache or cache[key].size != size:
            cache[key] = o.empty(size)
        return cache[key]

    def initial_states(self, o, bottom):
        """The flat (N x hidden) initial states: the exposed bottoms, or the carried-over final
        states of the previous pass (zeros at first)."""
        size = self.N * self.hidden
        if self.expose_hidden:
            first = 2 + self.static_input
            return [o.data(bottom[first + k]) for k in range(len(self.state_names))]
        carry = self._carry.get(o)
        if carry is None:
            carry = [o.empty(size) for _ in self.state_names]
            for c in carry:
                o.zero(c)
            self._carry[o] = carry
        return carry

    def finish_forward(self, o, top, final_states):
        """Keeps the final states for the next pass (or gives them as the exposed tops)."""
        if self.expose_hidden:
            for t, state in zip(top[1:], final_states):
                o.copy(o.mutable_data(t), state)
        else:
            for carry, state in zip(self._carry[o], final_states):
                o.copy(carry, state)

    def forward_cpu(self, bottom, top):
        self.forward_with(HostOps, bottom, top)

    def forward_gpu(self, bottom, top):
        self.forward_with(DeviceOps, bottom, top)

    def backward_cpu(self, top, propagate_down, bottom):
        self.backward_with(HostOps, top, propagate_down, bottom)

    def backward_gpu(self, top, propagate_down, bottom):
        self.backward_with(DeviceOps, top, propagate_down, bottom)

    def input_products(self, o, bottom, weight, bias, width, out):
        """out (T*N x width) = x W^T + b, and the static input's product (N x width) or None."""
        tn = self.T * self.N
        o.gemm(False, True, tn, width, self.input_dim, o.data(bottom[0]), o.data(weight), 0, out)
        o.add_bias(out, width, o.data(bias))
        if not self.static_input:
            return None
        static = self._buffer(o, 'static', self.N * width)
        o.gemm(False, True, self.N, width, self.static_dim, o.data(bottom[2]),
               o.data(self.blobs[2]), 0, static)
        return static

    def step_sum(self, o, d_pre, width):
        """d_pre (T x N*width) summed over the steps (what reaches the static input's product,
        which every step adds), or None without a static input."""
        if not self.static_input:
            return None
        cache = self.__dict__.setdefault('_ones', {})
        if o not in cache:
            cache[o] = o.ones(self.T)
        ones = cache[o]
        out = self._buffer(o, 'static_diff', self.N * width)
        o.gemm(False, False, 1, self.N * width, self.T, ones, d_pre, 0, out)
        return out

    def input_gradients(self, o, propagate_down, bottom, d_pre, width, d_static_sum):
        """Gradients of input_products from d_pre (T*N x width): W, b, x and the static input's
        (d_static_sum: d_pre summed over the steps, N x width)."""
        tn = self.T * self.N
        if self.param_propagate_down[0]:
            o.gemm(True, False, width, self.input_dim, tn, d_pre, o.data(bottom[0]), 1,
                   o.mutable_diff(self.blobs[0]))
        if self.param_propagate_down[1]:
            o.sum_rows_accumulate(width, tn, d_pre, o.mutable_diff(self.blobs[1]))
        if propagate_down[0]:
            o.gemm(False, False, tn, self.input_dim, width, d_pre, o.data(self.blobs[0]), 0,
                   o.mutable_diff(bottom[0]))
        if self.static_input:
            if self.param_propagate_down[2]:
                o.gemm(True, False, width, self.static_dim, self.N, d_static_sum,
                       o.data(bottom[2]), 1, o.mutable_diff(self.blobs[2]))
            if propagate_down[2]:
                o.gemm(False, False, self.N, self.static_dim, width, d_static_sum,
                       o.data(self.blobs[2]), 0, o.mutable_diff(bottom[2]))
