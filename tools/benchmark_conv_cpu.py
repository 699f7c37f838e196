#!/usr/bin/env python3
"""Times the CPU Convolution layer on the VGG16 and ZF conv stacks against its bare matrix products.

For every conv layer of the stack (at the feature-map size a --height x --width image gives it),
it runs the layer's forward + backward (weight, bias and bottom gradients) and, separately, the
products of the algorithm the layer runs, through caffe.gemm as the layer computes them, on
preallocated float32 arrays: for im2col, forward W @ col, weight gradient top_diff @ col^T, bottom
gradient W^T @ top_diff; for Winograd (caffe/layers/conv_algorithm.py; --policy picks, as
CAFFE_CPU_CONV does), its a*a products per pass. The ratio layer / matmuls is what im2col and
col2im, or Winograd's transforms, the bias and the bookkeeping cost on top of BLAS. Layer and
matmul runs
alternate, so both see the same machine load; times are the best of --repeat runs after one
warm-up run. The products and the im2col kernels use the threads OMP_NUM_THREADS allows (the
cores the process may use by default).

    python3 tools/benchmark_conv_cpu.py --net both --repeat 3
    python3 tools/benchmark_conv_cpu.py --net VGG16 --policy im2col   # Caffe's algorithm
    python3 tools/benchmark_conv_cpu.py --accuracy --height 300 --width 500

--accuracy measures instead of timing: each layer's float32 forward output, data gradient and
weight gradient under every policy against float64 (the definition, one shifted window per
kernel tap), on inputs like a trained net's (post-ReLU Gaussians, He-scaled weights, Gaussian
top diffs), as the largest error over the largest magnitude of the float64 result: the measure
of the 1e-5 bound that decides the default policy (docs/cpu_performance.md). Writes --result as
JSON when given.
"""
import argparse
import os
import time

import _init_paths  # noqa: F401  (lib/ on sys.path; before numpy, as caffe/blas_threads.py asks)
import numpy as np

from caffe.layers import conv_algorithm
from caffe.layers.pooling import pooled_size
from caffe.testing import build_layer

# (name, num_output, kernel, stride, pad), or ('pool', kernel, stride, pad) between blocks.
VGG16 = [('conv1_1', 64, 3, 1, 1), ('conv1_2', 64, 3, 1, 1), ('pool', 2, 2, 0),
         ('conv2_1', 128, 3, 1, 1), ('conv2_2', 128, 3, 1, 1), ('pool', 2, 2, 0),
         ('conv3_1', 256, 3, 1, 1), ('conv3_2', 256, 3, 1, 1), ('conv3_3', 256, 3, 1, 1),
         ('pool', 2, 2, 0),
         ('conv4_1', 512, 3, 1, 1), ('conv4_2', 512, 3, 1, 1), ('conv4_3', 512, 3, 1, 1),
         ('pool', 2, 2, 0),
         ('conv5_1', 512, 3, 1, 1), ('conv5_2', 512, 3, 1, 1), ('conv5_3', 512, 3, 1, 1)]
# py-faster-rcnn's ZF (models/pascal_voc/ZF): LRN layers sit before the pools and keep the size.
ZF = [('conv1', 96, 7, 2, 3), ('pool', 3, 2, 1),
      ('conv2', 256, 5, 2, 2), ('pool', 3, 2, 1),
      ('conv3', 384, 3, 1, 1), ('conv4', 384, 3, 1, 1), ('conv5', 256, 3, 1, 1)]
NETS = {'VGG16': VGG16, 'ZF': ZF}


def conv_shapes(stack, height, width):
    """(name, channels, num_output, kernel, stride, pad, in_h, in_w) for each conv layer."""
    channels, shapes = 3, []
    for item in stack:
        if item[0] == 'pool':
            _, k, s, p = item
            height, width = pooled_size(height, k, p, s), pooled_size(width, k, p, s)
            continue
        name, out, k, s, p = item
        shapes.append((name, channels, out, k, s, p, height, width))
        channels = out
        height = (height + 2 * p - k) // s + 1
        width = (width + 2 * p - k) // s + 1
    return shapes


def best_times(steps, repeat):
    """Best time of each step, the steps run in turn after one warm-up round (first-touch page
    faults of fresh buffers are not what we measure)."""
    for step in steps:
        step()
    best = [float('inf')] * len(steps)
    for _ in range(repeat):
        for i, step in enumerate(steps):
            start = time.perf_counter()
            step()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def layer_step(channels, out, k, s, p, h, w, rng):
    """forward + backward of a Convolution layer, the layer, its bottom and its top."""
    text = ('name: "conv" type: "Convolution" bottom: "x" top: "y" convolution_param { '
            'num_output: %d kernel_size: %d stride: %d pad: %d '
            'weight_filler { type: "gaussian" std: 0.01 } }' % (out, k, s, p))
    layer, bottom, top = build_layer(text, [rng.standard_normal((1, channels, h, w),
                                                                dtype=np.float32)])
    top[0].diff[...] = rng.standard_normal(top[0].shape, dtype=np.float32)

    def step():
        layer.forward(bottom, top)
        layer.backward(top, [True], bottom)
    return step, layer, bottom[0], top[0]


def winograd_step(layer, bottom, top, rng):
    """The products of a Winograd layer's three passes, bare (one buffer per operand role)."""
    p = layer.winograd.products(bottom.shape[0], bottom.shape[2:], top.shape[2:])
    shapes = [(m, n, k, False) for m, n, k in p['forward'] + p['data']] + \
        [(m, n, k, True) for m, n, k in p['weights']]
    a = rng.standard_normal(max(m * k for m, n, k, _ in shapes), dtype=np.float32)
    b = rng.standard_normal(max(k * n for m, n, k, _ in shapes), dtype=np.float32)
    c = np.empty(max(m * n for m, n, k, _ in shapes), np.float32)
    steps = [(a[:m * k].reshape(m, k), b[:k * n].reshape(n, k).T if t else
              b[:k * n].reshape(k, n), c[:m * n].reshape(m, n)) for m, n, k, t in shapes]

    from caffe.gemm import matmul  # as the layer does (numpy's OpenBLAS is held at one thread)

    def step():
        for x, y, z in steps:
            matmul(x, y, z)
    return step


def matmul_step(channels, out, k, out_hw, rng):
    """The layer's three products, bare, on arrays of the same shapes."""
    kdim, spatial = channels * k * k, out_hw[0] * out_hw[1]
    weights = rng.standard_normal((out, kdim), dtype=np.float32)
    col = rng.standard_normal((kdim, spatial), dtype=np.float32)
    top = np.empty((out, spatial), np.float32)
    weight_diff = np.empty((out, kdim), np.float32)
    col_diff = np.empty((kdim, spatial), np.float32)

    from caffe.gemm import matmul  # as the layer does (numpy's OpenBLAS is held at one thread)

    def step():
        matmul(weights, col, top)
        matmul(top, col.T, weight_diff)
        matmul(weights.T, top, col_diff)
    return step


def run_net(net, height, width, repeat):
    rng = np.random.default_rng(0)
    print('%s conv stack, image %dx%d, forward + backward, best of %d'
          % (net, height, width, repeat))
    print('%-8s %5s %5s %3s %3s %11s %7s %-20s %10s %10s %7s'
          % ('layer', 'in', 'out', 'k', 's', 'output', 'K', 'algorithm', 'layer ms', 'matmul ms',
             'ratio'))
    total_layer = total_matmul = 0.0
    for name, channels, out, k, s, p, h, w in conv_shapes(NETS[net], height, width):
        step, layer, bottom, top = layer_step(channels, out, k, s, p, h, w, rng)
        out_hw = top.shape[2:]
        if layer.winograd is not None:
            products, algorithm = winograd_step(layer, bottom, top, rng), layer.winograd.name
        else:
            products, algorithm = matmul_step(channels, out, k, out_hw, rng), 'im2col'
        layer_s, matmul_s = best_times([step, products], repeat)
        del layer, step  # its column buffer can be a gigabyte
        total_layer += layer_s
        total_matmul += matmul_s
        print('%-8s %5d %5d %3d %3d %11s %7d %-20s %10.1f %10.1f %7.2f'
              % (name, channels, out, k, s, '%dx%d' % tuple(out_hw), channels * k * k,
                 algorithm, 1e3 * layer_s, 1e3 * matmul_s, layer_s / matmul_s))
    print('%-8s %74s %10.1f %10.1f %7.2f\n'
          % ('total', '', 1e3 * total_layer, 1e3 * total_matmul, total_layer / total_matmul))
    return total_layer / total_matmul


def float64_passes(layer, x, dy):
    """The layer's forward output (no bias), data gradient and weight gradient in float64, one
    shifted window of the zero-padded input per kernel tap."""
    (kh, kw), (ph, pw), (sh, sw) = layer.kernel, layer.pad, layer.stride
    w = layer.blobs[0].data.astype(np.float64)
    _, c, h, width = x.shape
    oh, ow = dy.shape[2:]
    xp = np.zeros((c, h + 2 * ph, width + 2 * pw))
    xp[:, ph:ph + h, pw:pw + width] = x[0]
    dxp = np.zeros_like(xp)
    y = np.zeros(dy.shape[1:])
    dw = np.zeros(w.shape)
    g = dy[0].astype(np.float64).reshape(dy.shape[1], -1)
    for i in range(kh):
        for j in range(kw):
            rows, cols = slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw)
            window = np.ascontiguousarray(xp[:, rows, cols]).reshape(c, -1)
            y += (w[:, :, i, j] @ window).reshape(y.shape)
            dw[:, :, i, j] = g @ window.T
            dxp[:, rows, cols] += (w[:, :, i, j].T @ g).reshape(c, oh, ow)
    return y, dxp[:, ph:ph + h, pw:pw + width], dw


def relative_error(value, reference):
    return float(np.abs(value - reference).max() / np.abs(reference).max())


def accuracy(net, height, width):
    """{layer: {policy: [forward, data, weights] errors}} of the net's conv layers."""
    rng = np.random.default_rng(0)
    print('%s conv stack, image %dx%d: largest error / largest magnitude against float64'
          % (net, height, width))
    print('%-8s %-10s %-22s %10s %10s %10s'
          % ('layer', 'policy', 'algorithm', 'forward', 'data grad', 'weight grad'))
    results = {}
    for name, channels, out, k, s, p, h, w in conv_shapes(NETS[net], height, width):
        x = np.maximum(rng.standard_normal((1, channels, h, w), dtype=np.float32), 0)
        text = ('name: "%s" type: "Convolution" bottom: "x" top: "y" convolution_param { '
                'num_output: %d kernel_size: %d stride: %d pad: %d bias_term: false '
                'weight_filler { type: "msra" } }' % (name, out, k, s, p))
        weights = dy = reference = None
        for policy in conv_algorithm.POLICIES:
            conv_algorithm.set_policy(policy)
            layer, bottom, top = build_layer(text, [x])
            if weights is None:
                weights = layer.blobs[0].data.copy()
                dy = rng.standard_normal(top[0].shape, dtype=np.float32)
                reference = float64_passes(layer, x, dy)
            layer.blobs[0].data[...] = weights
            layer.forward(bottom, top)
            top[0].diff[...] = dy
            layer.blobs[0].diff[...] = 0
            layer.backward(top, [True], bottom)
            errors = [relative_error(v, r) for v, r in zip(
                (top[0].data[0], bottom[0].diff[0], layer.blobs[0].diff), reference)]
            algorithm = layer.winograd.name if layer.winograd is not None else 'im2col'
            results.setdefault(name, {})[policy] = dict(algorithm=algorithm, errors=errors)
            print('%-8s %-10s %-22s %10.2e %10.2e %10.2e' % (name, policy, algorithm, *errors),
                  flush=True)
            del layer, bottom, top
    print()
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--net', choices=['VGG16', 'ZF', 'both'], default='both')
    parser.add_argument('--repeat', type=int, default=3, help='timed runs per layer (best kept)')
    parser.add_argument('--height', type=int, default=600)
    parser.add_argument('--width', type=int, default=1000)
    parser.add_argument('--policy', choices=conv_algorithm.POLICIES, default=None,
                        help='the convolution policy (default: CAFFE_CPU_CONV, else auto)')
    parser.add_argument('--accuracy', action='store_true',
                        help='measure every policy\'s error against float64 instead of timing')
    parser.add_argument('--result', help='with --accuracy: write the errors to this JSON file')
    args = parser.parse_args()
    nets = ['VGG16', 'ZF'] if args.net == 'both' else [args.net]
    if args.accuracy:
        errors = {net: accuracy(net, args.height, args.width) for net in nets}
        if args.result:
            import json
            from caffe.io import atomic_write
            atomic_write(args.result, json.dumps({'height': args.height, 'width': args.width,
                                                  'errors': errors}, indent=1).encode())
        return
    if args.policy:
        conv_algorithm.set_policy(args.policy)
    print('threads: OPENBLAS_NUM_THREADS=%s OMP_NUM_THREADS=%s, %d cores; convolution policy %s'
          % (os.environ.get('OPENBLAS_NUM_THREADS', '-'), os.environ.get('OMP_NUM_THREADS', '-'),
             os.cpu_count(), conv_algorithm.policy()))
    ratios = {net: run_net(net, args.height, args.width, args.repeat) for net in nets}
    print('layer / matmul time: ' + ', '.join('%s %.2f' % item for item in ratios.items()))


if __name__ == '__main__':
    main()
