"""LSTM: Caffe's long short-term memory layer (lstm_layer.cpp), computed step by step as its
unrolled net computes it (see _recurrent.py for the recurrent layers' contract).

At step t (1..T), for each stream: the gate pre-activations
    gates_t = W_hc (cont_t * h_{t-1}) + (W_xc x_t + b_c) [+ W_xc_static x_static]
(added in that order, as the unrolled net's Eltwise sums them), then LSTMUnit (lstm_unit.py)
gives c_t and h_t from c_{t-1}: gate order i, f, o, g, with the forget gate 0 where cont_t is 0.
Parameters, in the unrolled net's order: W_xc (4H x I), b_c (4H), [W_xc_static (4H x S)],
W_hc (4H x H); H = num_output."""
from ..layer import register
from ._recurrent import RecurrentLayer


@register('LSTM')
class LSTMLayer(RecurrentLayer):
    state_names = ('h_0', 'c_0')

    def param_shapes(self):
        g = 4 * self.hidden
        shapes = [('W_xc', (g, self.input_dim)), ('b_c', (g,))]
        if self.static_input:
            shapes.append(('W_xc_static', (g, self.static_dim)))
        return shapes + [('W_hc', (g, self.hidden))]

    def forward_with(self, o, bottom, top):
        T, N, H = self.T, self.N, self.hidden
        G, nh, ng = 4 * H, N * H, N * 4 * H
        w_hc = o.data(self.blobs[-1])
        pre = self._buffer(o, 'pre', T * ng)
        static = self.input_products(o, bottom, self.blobs[0], self.blobs[1], G, pre)
        gates = self._buffer(o, 'gates', T * ng)
        h = self._buffer(o, 'h', (T + 1) * nh)     # h_0 .. h_T
        c = self._buffer(o, 'c', (T + 1) * nh)
        hc = self._buffer(o, 'hc', T * nh)         # cont_t * h_{t-1}
        h0, c0 = self.initial_states(o, bottom)
        o.copy(h[:nh], h0)
        o.copy(c[:nh], c0)
        cont = o.data(bottom[1])
        for t in range(T):
            now, nxt, gt = slice(t * nh, (t + 1) * nh), slice((t + 1) * nh, (t + 2) * nh), \
                slice(t * ng, (t + 1) * ng)
            cont_t = cont[t * N:(t + 1) * N]
            o.scale_rows(N, H, h[now], cont_t, hc[now])
            o.gemm(False, True, N, G, H, hc[now], w_hc, 0, gates[gt])
            o.add_to(gates[gt], pre[gt])
            if static is not None:
                o.add_to(gates[gt], static)
            o.lstm_unit_forward(N, H, c[now], gates[gt], cont_t, c[nxt], h[nxt])
        o.copy(o.mutable_data(top[0]), h[nh:])
        self.finish_forward(o, top, [h[T * nh:], c[T * nh:]])

    def backward_with(self, o, top, propagate_down, bottom):
        T, N, H = self.T, self.N, self.hidden
        G, nh, ng = 4 * H, N * H, N * 4 * H
        w_hc = o.data(self.blobs[-1])
        gates, h, c, hc = (self._buffer(o, name, size) for name, size in (
            ('gates', T * ng), ('h', (T + 1) * nh), ('c', (T + 1) * nh), ('hc', T * nh)))
        dh = self._buffer(o, 'dh', T * nh)         # the diffs of h_1 .. h_T
        o.copy(dh, o.diff(top[0]))
        dgates = self._buffer(o, 'dgates', T * ng)
        dc, dc_prev = self._buffer(o, 'dc', nh), self._buffer(o, 'dc_prev', nh)
        dhc = self._buffer(o, 'dhc', nh)
        o.zero(dc)    # c_T's own diff is not propagated (see _recurrent.py)
        cont = o.data(bottom[1])
        for t in reversed(range(T)):
            now, nxt, gt = slice(t * nh, (t + 1) * nh), slice((t + 1) * nh, (t + 2) * nh), \
                slice(t * ng, (t + 1) * ng)
            cont_t = cont[t * N:(t + 1) * N]
            o.lstm_unit_backward(N, H, c[now], gates[gt], cont_t, c[nxt], dc, dh[now], dc_prev,
                                 dgates[gt])
            dc, dc_prev = dc_prev, dc
            if t > 0:   # through W_hc and the cont scaling into h_{t-1}'s diff
                o.gemm(False, False, N, H, G, dgates[gt], w_hc, 0, dhc)
                o.scale_rows(N, H, dhc, cont_t, dh[(t - 1) * nh:t * nh], accumulate=True)
        if self.param_propagate_down[-1]:
            o.gemm(True, False, G, H, T * N, dgates, hc, 1, o.mutable_diff(self.blobs[-1]))
        self.input_gradients(o, propagate_down, bottom, dgates, G, self.step_sum(o, dgates, G))
