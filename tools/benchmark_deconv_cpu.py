#!/usr/bin/env python3
"""Times the CPU Deconvolution layer against its bare matrix products (its floor).

For FCN-8s's upsampling layers (PASCAL VOC, 21 classes, at the sizes a --height x --width image
gives them) and two decoder-style layers (many channels, stride 2), it runs the layer's
forward + backward (weight and bottom gradients) and, separately, the three np.matmul products
of the same shapes on preallocated float32 arrays, per image as the layer does them: forward
W^T @ x, weight gradient x @ col^T, bottom gradient W @ col, where col is the column matrix of
the top (kernel_dim x bottom positions). The ratio layer / matmuls is what col2im, im2col, the
bias and the bookkeeping cost on top of BLAS. Runs alternate, best of --repeat after one
warm-up (tools/benchmark_conv_cpu.py's best_times). Threads as there.

    python3 tools/benchmark_deconv_cpu.py --repeat 3
"""
import argparse
import json
import os

import _init_paths  # noqa: F401  (lib/ on sys.path; before numpy, as caffe/blas_threads.py asks)
import numpy as np

from benchmark_conv_cpu import best_times
from caffe.testing import build_layer

# (name, channels, num_output, kernel, stride, input size as a fraction of the image side).
# FCN-8s (Long et al.): upscore2 and upscore_pool4 double 1/32 and 1/16 score maps, upscore8
# takes the 1/8 map to the image size; then two decoder layers.
LAYERS = [('upscore2', 21, 21, 4, 2, 1 / 32), ('upscore_pool4', 21, 21, 4, 2, 1 / 16),
          ('upscore8', 21, 21, 16, 8, 1 / 8),
          ('dec256_128', 256, 128, 4, 2, 1 / 16), ('dec128_64', 128, 64, 4, 2, 1 / 8)]


def layer_step(channels, out, k, s, h, w, rng):
    text = ('name: "up" type: "Deconvolution" bottom: "x" top: "y" convolution_param { '
            'num_output: %d kernel_size: %d stride: %d bias_term: false '
            'weight_filler { type: "gaussian" std: 0.01 } }' % (out, k, s))
    layer, bottom, top = build_layer(text, [rng.standard_normal((1, channels, h, w),
                                                                dtype=np.float32)])
    top[0].diff[...] = rng.standard_normal(top[0].shape, dtype=np.float32)

    def step():
        layer.forward(bottom, top)
        layer.backward(top, [True], bottom)
    return step, top[0].shape[2:]


def matmul_step(channels, out, k, h, w, rng):
    """The layer's three products on arrays of its shapes: kernel_dim = out * k * k rows of the
    column matrix, one column per bottom position."""
    kdim, positions = out * k * k, h * w
    weights = rng.standard_normal((channels, kdim), dtype=np.float32)
    x = rng.standard_normal((channels, positions), dtype=np.float32)
    col = np.empty((kdim, positions), np.float32)
    weight_diff = np.empty((channels, kdim), np.float32)
    x_diff = np.empty((channels, positions), np.float32)

    def step():
        np.matmul(weights.T, x, out=col)
        np.matmul(x, col.T, out=weight_diff)
        np.matmul(weights, col, out=x_diff)
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeat', type=int, default=3, help='timed runs per layer (best kept)')
    parser.add_argument('--height', type=int, default=512)
    parser.add_argument('--width', type=int, default=512)
    parser.add_argument('--result', help='also write the figures as JSON to this file')
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print('threads: OPENBLAS_NUM_THREADS=%s OMP_NUM_THREADS=%s, %d cores'
          % (os.environ.get('OPENBLAS_NUM_THREADS', '-'), os.environ.get('OMP_NUM_THREADS', '-'),
             os.cpu_count()))
    print('Deconvolution, image %dx%d, forward + backward, best of %d'
          % (args.height, args.width, args.repeat))
    print('%-14s %5s %5s %3s %3s %9s %11s %10s %10s %7s'
          % ('layer', 'in', 'out', 'k', 's', 'input', 'output', 'layer ms', 'matmul ms', 'ratio'))
    rows = []
    for name, channels, out, k, s, fraction in LAYERS:
        h, w = max(1, round(args.height * fraction)), max(1, round(args.width * fraction))
        layer, out_hw = layer_step(channels, out, k, s, h, w, rng)
        layer_s, matmul_s = best_times([layer, matmul_step(channels, out, k, h, w, rng)],
                                       args.repeat)
        rows.append(dict(layer=name, channels=channels, num_output=out, kernel=k, stride=s,
                         input=[h, w], output=list(out_hw), layer_ms=1e3 * layer_s,
                         matmul_ms=1e3 * matmul_s, ratio=layer_s / matmul_s))
        print('%-14s %5d %5d %3d %3d %9s %11s %10.1f %10.1f %7.2f'
              % (name, channels, out, k, s, '%dx%d' % (h, w), '%dx%d' % tuple(out_hw),
                 1e3 * layer_s, 1e3 * matmul_s, layer_s / matmul_s))
    total = sum(r['layer_ms'] for r in rows) / sum(r['matmul_ms'] for r in rows)
    print('layer / matmul time, all layers: %.2f' % total)
    if args.result:
        from caffe.io import atomic_write
        atomic_write(args.result, json.dumps(dict(image=[args.height, args.width], layers=rows,
                                                  ratio=total), indent=1).encode())


if __name__ == '__main__':
    main()
