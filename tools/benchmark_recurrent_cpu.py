#!/usr/bin/env python3
"""Times the CPU LSTM and RNN layers against their bare matrix products (the floor).

For each layer it runs forward + backward (parameter and input gradients) and, separately, the
matrix products of the same shapes on preallocated float32 arrays: the input product over all
T x N rows, one hidden-to-hidden product per step (forward and both backward ones), and the
weight and input gradients over all rows (for RNN also the output layer's). The ratio
layer / products is what the gates, the step loop and the bookkeeping cost on top of BLAS. Runs
alternate and the best of --repeat is kept (tools/benchmark_conv_cpu.py's method). The default
shapes are those of Caffe's LRCN captioning LSTM (1000 units, 20 steps).

    python3 tools/benchmark_recurrent_cpu.py --steps 20 --streams 16 --input 1000 --hidden 1000
"""
import argparse
import os

import _init_paths  # noqa: F401  (lib/ on sys.path; before numpy, as caffe/blas_threads.py asks)
import numpy as np

from benchmark_conv_cpu import best_times
from caffe.testing import build_layer


def layer_step(kind, T, N, I, H, rng):
    text = ('name: "r" type: "%s" bottom: "x" bottom: "c" top: "y" recurrent_param { '
            'num_output: %d weight_filler { type: "uniform" min: -0.08 max: 0.08 } }' % (kind, H))
    cont = np.ones((T, N), np.float32)
    cont[0] = 0
    layer, bottom, top = build_layer(text, [rng.standard_normal((T, N, I), dtype=np.float32),
                                            cont])
    top[0].diff[...] = rng.standard_normal(top[0].shape, dtype=np.float32)

    def step():
        layer.forward(bottom, top)
        layer.backward(top, [True, False], bottom)
    return step


def products_step(kind, T, N, I, H, rng):
    """The layer's matrix products, bare: G = 4H gate rows for LSTM, H for RNN."""
    G = 4 * H if kind == 'LSTM' else H
    x = rng.standard_normal((T * N, I), dtype=np.float32)
    w_x = rng.standard_normal((G, I), dtype=np.float32)
    w_h = rng.standard_normal((G, H), dtype=np.float32)
    pre = np.empty((T * N, G), np.float32)
    h = rng.standard_normal((T * N, H), dtype=np.float32)
    dx = np.empty((T * N, I), np.float32)
    dw_x, dw_h = np.empty((G, I), np.float32), np.empty((G, H), np.float32)
    step_out, step_back = np.empty((N, G), np.float32), np.empty((N, H), np.float32)
    w_o = rng.standard_normal((H, H), dtype=np.float32)
    out, dw_o, dh = (np.empty((T * N, H), np.float32), np.empty((H, H), np.float32),
                     np.empty((T * N, H), np.float32))

    def step():
        np.matmul(x, w_x.T, out=pre)
        for t in range(T):
            np.matmul(h[t * N:(t + 1) * N], w_h.T, out=step_out)
            np.matmul(pre[t * N:(t + 1) * N], w_h, out=step_back)
        np.matmul(pre.T, h, out=dw_h)
        np.matmul(pre.T, x, out=dw_x)
        np.matmul(pre, w_x, out=dx)
        if kind == 'RNN':   # the output layer: forward, weight gradient, back into h
            np.matmul(h, w_o.T, out=out)
            np.matmul(out.T, h, out=dw_o)
            np.matmul(out, w_o, out=dh)
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--steps', type=int, default=20, help='T, the timesteps')
    parser.add_argument('--streams', type=int, default=16, help='N, the independent streams')
    parser.add_argument('--input', type=int, default=1000, help='input size per step')
    parser.add_argument('--hidden', type=int, default=1000, help='num_output')
    parser.add_argument('--repeat', type=int, default=3, help='timed runs (best kept)')
    args = parser.parse_args()
    T, N, I, H = args.steps, args.streams, args.input, args.hidden
    rng = np.random.default_rng(0)
    print('threads: OPENBLAS_NUM_THREADS=%s OMP_NUM_THREADS=%s, %d cores'
          % (os.environ.get('OPENBLAS_NUM_THREADS', '-'), os.environ.get('OMP_NUM_THREADS', '-'),
             os.cpu_count()))
    print('T=%d N=%d input=%d hidden=%d, forward + backward, best of %d' % (T, N, I, H,
                                                                          args.repeat))
    print('%-5s %10s %12s %7s' % ('layer', 'layer ms', 'products ms', 'ratio'))
    for kind in ('LSTM', 'RNN'):
        layer_s, floor_s = best_times([layer_step(kind, T, N, I, H, rng),
                                       products_step(kind, T, N, I, H, rng)], args.repeat)
        print('%-5s %10.1f %12.1f %7.2f' % (kind, 1e3 * layer_s, 1e3 * floor_s,
                                            layer_s / floor_s))


if __name__ == '__main__':
    main()
