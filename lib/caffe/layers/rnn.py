"""RNN: Caffe's simple recurrent layer (rnn_layer.cpp), computed step by step as its unrolled net
computes it (see _recurrent.py for the recurrent layers' contract).

At step t (1..T), for each stream:
    h_t = tanh(W_hh (cont_t * h_{t-1}) + (W_xh x_t + b_h) [+ W_xh_static x_static])
    o_t = tanh(W_ho h_t + b_o)
and the top is o. Parameters, in the unrolled net's order: W_xh (H x I), b_h (H),
[W_xh_static (H x S)], W_hh (H x H), W_ho (H x H), b_o (H); H = num_output."""
from ..layer import register
from ._recurrent import RecurrentLayer


@register('RNN')
class RNNLayer(RecurrentLayer):
    state_names = ('h_0',)

    def param_shapes(self):
        H = self.hidden
        shapes = [('W_xh', (H, self.input_dim)), ('b_h', (H,))]
        if self.static_input:
            shapes.append(('W_xh_static', (H, self.static_dim)))
        return shapes + [('W_hh', (H, H)), ('W_ho', (H, H)), ('b_o', (H,))]

    def forward_with(self, o, bottom, top):
        T, N, H = self.T, self.N, self.hidden
        nh = N * H
        w_hh, w_ho, b_o = (o.data(b) for b in self.blobs[-3:])
        pre = self._buffer(o, 'pre', T * nh)
        static = self.input_products(o, bottom, self.blobs[0], self.blobs[1], H, pre)
        h = self._buffer(o, 'h', (T + 1) * nh)
        hc = self._buffer(o, 'hc', T * nh)
        out = self._buffer(o, 'o', T * nh)
        (h0,) = self.initial_states(o, bottom)
        o.copy(h[:nh], h0)
        cont = o.data(bottom[1])
        for t in range(T):
            now, nxt = slice(t * nh, (t + 1) * nh), slice((t + 1) * nh, (t + 2) * nh)
            o.scale_rows(N, H, h[now], cont[t * N:(t + 1) * N], hc[now])
            o.gemm(False, True, N, H, H, hc[now], w_hh, 0, h[nxt])
            o.add_to(h[nxt], pre[now])
            if static is not None:
                o.add_to(h[nxt], static)
            o.tanh(h[nxt])
        # the outputs of all steps in one product (the unrolled net's W_ho_h_t, t = 1..T)
        o.gemm(False, True, T * N, H, H, h[nh:], w_ho, 0, out)
        o.add_bias(out, H, b_o)
        o.tanh(out)
        o.copy(o.mutable_data(top[0]), out)
        self.finish_forward(o, top, [h[T * nh:]])

    def backward_with(self, o, top, propagate_down, bottom):
        T, N, H = self.T, self.N, self.hidden
        nh = N * H
        w_hh, w_ho = o.data(self.blobs[-3]), o.data(self.blobs[-2])
        h, hc, out = (self._buffer(o, name, size) for name, size in (
            ('h', (T + 1) * nh), ('hc', T * nh), ('o', T * nh)))
        d_out = self._buffer(o, 'd_out', T * nh)   # before the output tanh
        o.tanh_backward(out, o.diff(top[0]), d_out)
        if self.param_propagate_down[-2]:
            o.gemm(True, False, H, H, T * N, d_out, h[nh:], 1, o.mutable_diff(self.blobs[-2]))
        if self.param_propagate_down[-1]:
            o.sum_rows_accumulate(H, T * N, d_out, o.mutable_diff(self.blobs[-1]))
        dh = self._buffer(o, 'dh', T * nh)         # the diffs of h_1 .. h_T
        o.gemm(False, False, T * N, H, H, d_out, w_ho, 0, dh)
        da = self._buffer(o, 'da', T * nh)         # before the hidden tanh
        dhc = self._buffer(o, 'dhc', nh)
        cont = o.data(bottom[1])
        for t in reversed(range(T)):
            now, nxt = slice(t * nh, (t + 1) * nh), slice((t + 1) * nh, (t + 2) * nh)
            o.tanh_backward(h[nxt], dh[now], da[now])
            if t > 0:
                o.gemm(False, False, N, H, H, da[now], w_hh, 0, dhc)
                o.scale_rows(N, H, dhc, cont[t * N:(t + 1) * N], dh[(t - 1) * nh:t * nh],
                             accumulate=True)
        if self.param_propagate_down[-3]:
            o.gemm(True, False, H, H, T * N, da, hc, 1, o.mutable_diff(self.blobs[-3]))
        self.input_gradients(o, propagate_down, bottom, da, H, self.step_sum(o, da, H))
