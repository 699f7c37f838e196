#!/usr/bin/env python3
"""Times a ResNet Faster R-CNN test net on the CPU per image, against its bare matrix products.

The net gets random weights (He-normal convs; BatchNorm with unit statistics, Scale 0.5: only the
time is of interest) and a synthetic --height x --width image at scale 1, with
TEST.RPN_POST_NMS_TOP_N proposals (300 by default, the paper's test setting). Each image is timed
as tools/time_net.py splits it (shared convs, proposals, region-wise work with per-class NMS);
the time per layer type is printed too. The floor is the net's bare matrix products: for every
Convolution and InnerProduct layer, np.matmul on preallocated float32 arrays of the shapes its
forward pass multiplies (weights by the im2col matrix, per group and image). total / floor is
what im2col, BatchNorm, Scale, ReLU, Eltwise, pooling, the proposal layer and the bookkeeping cost
on top of BLAS. The first image is a warm-up and not counted. The
products' FLOPs (Winograd's fewer ones where a layer runs it) are also printed against the
machine's measured float32 peak (benchmark_cpu.machine_peak), and the peak memory over the sum
of the net's blobs and parameters, as benchmark_cpu.py reports it.

    python3 tools/benchmark_resnet_cpu.py --num-images 3
    python3 tools/benchmark_resnet_cpu.py \
        --def models/pascal_voc/ResNet-50/faster_rcnn_end2end/test.prototxt
"""
import argparse
import collections
import os
import tempfile
import time

import _init_paths  # noqa: F401  (lib/ on sys.path; before numpy, as caffe/blas_threads.py asks)
import numpy as np

from benchmark_cpu import (forward_products, machine_peak, net_bytes, peak_rss_mb, print_peak,
                           reset_peak_rss, rss_mb)
from time_net import split_layers, time_image
from utils import paths

DEFAULT_NET = os.path.join(paths.MODELS_DIR, 'pascal_voc', 'ResNet-101', 'faster_rcnn_end2end',
                           'test.prototxt')


def randomize(net, seed=0):
    rng = np.random.default_rng(seed)
    for name, blobs in net.params.items():
        kind = net.layer_dict[name].type
        if kind == 'BatchNorm':
            for blob, value in zip(blobs, (0, 1, 1)):
                blob.data[...] = value
        elif kind == 'Scale':
            blobs[0].data[...] = 0.5
            blobs[1].data[...] = 0
        else:
            w = blobs[0].data
            w[...] = rng.standard_normal(w.shape, dtype=np.float32) * np.float32(
                np.sqrt(2.0 / np.prod(w.shape[1:])) * (0.01 if name.endswith(
                    ('cls_score', 'bbox_pred')) else 1))
            for b in blobs[1:]:
                b.data[...] = 0


def synthetic_image(height, width, seed=0):
    import cv2
    rng = np.random.default_rng(seed)
    im = cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (0, 0), 4)
    for _ in range(20):
        x, y = int(rng.integers(0, width - 100)), int(rng.integers(0, height - 100))
        cv2.rectangle(im, (x, y), (x + int(rng.integers(20, 300)), y + int(rng.integers(20, 300))),
                      tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
    return im


def matmul_floor(net, repeat):
    """(seconds, GFLOP) of the bare products of the net's Convolution and InnerProduct forward
    passes at the shapes of the last run, as each layer runs them (im2col's, or Winograd's
    fewer ones), best of repeat. The operands are views of three buffers sized for the largest
    product, so the floor needs no more memory than one layer."""
    shapes = collections.Counter()   # (m, k, n) -> how many times
    for layer, bottom, top in zip(net.layers, net.bottom_vecs, net.top_vecs):
        for m, n, k in forward_products(layer, bottom, top):
            shapes[(m, k, n)] += 1
    shapes = [shape + (count,) for shape, count in shapes.items()]
    rng = np.random.default_rng(1)
    buffers = [rng.standard_normal(max(m * k for m, k, _, _ in shapes), dtype=np.float32),
               rng.standard_normal(max(k * n for _, k, n, _ in shapes), dtype=np.float32),
               np.empty(max(m * n for m, _, n, _ in shapes), np.float32)]
    steps = [(buffers[0][:m * k].reshape(m, k), buffers[1][:k * n].reshape(k, n),
              buffers[2][:m * n].reshape(m, n), count) for m, k, n, count in shapes]
    best = float('inf')
    for _ in range(repeat + 1):
        start = time.perf_counter()
        for a, b, c, count in steps:
            for _ in range(count):
                np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - start)
    return best, sum(2e-9 * m * k * n * count for m, k, n, count in shapes)


def time_by_type(net):
    """Seconds per layer type of one forward pass over the blobs as they are."""
    times = collections.Counter()
    for layer, bottom, top in zip(net.layers, net.bottom_vecs, net.top_vecs):
        start = time.perf_counter()
        layer.reshape(bottom, top)
        layer.forward(bottom, top)
        times[layer.type] += time.perf_counter() - start
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--def', dest='prototxt', default=DEFAULT_NET,
                        help='test prototxt (default: %(default)s)')
    parser.add_argument('--height', type=int, default=600)
    parser.add_argument('--width', type=int, default=1000)
    parser.add_argument('--proposals', type=int, default=300,
                        help='TEST.RPN_POST_NMS_TOP_N (default: %(default)s)')
    parser.add_argument('--num-images', dest='num_images', type=int, default=3,
                        help='images timed after one warm-up (default: %(default)s)')
    args = parser.parse_args()
    import caffe
    from fast_rcnn.config import merge_into_cfg
    from fast_rcnn.experiment import Experiment, test_experiment
    caffe.set_mode_cpu()
    # The image goes in at scale 1: its short side is the test scale.
    merge_into_cfg({'TEST': {'SCALES': [args.height], 'MAX_SIZE': max(args.height, args.width),
                             'RPN_POST_NMS_TOP_N': args.proposals}},
                   source='benchmark_resnet_cpu options')
    before = rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        testing = test_experiment(Experiment.from_cfg(), args.prototxt, None, output_dir=tmp)
    net, settings = testing.net, testing.settings
    randomize(net)
    reset_peak_rss()
    num_classes = net.params['cls_score'][0].data.shape[0]
    conv_end, proposal_end = split_layers(net)
    im = synthetic_image(args.height, args.width)
    print('%s, image %dx%d, threads: OPENBLAS_NUM_THREADS=%s OMP_NUM_THREADS=%s, %d cores'
          % (os.path.relpath(args.prototxt, paths.ROOT_DIR), args.height, args.width,
             os.environ.get('OPENBLAS_NUM_THREADS', '-'), os.environ.get('OMP_NUM_THREADS', '-'),
             os.cpu_count()), flush=True)
    totals = np.zeros(3)
    for i in range(args.num_images + 1):
        parts = time_image(net, im, conv_end, proposal_end, num_classes, settings)
        print('image %d: conv %.0f ms, proposal %.0f ms, region-wise %.0f ms (%d RoIs)%s'
              % (i, *(1e3 * np.array(parts)), net.blobs['rois'].shape[0],
                 ' (warm-up)' if i == 0 else ''), flush=True)
        if i > 0:
            totals += parts
    ms = 1e3 * totals / args.num_images
    # Read before the floor allocates its own arrays; randomize's temporaries are not counted.
    peak_mb, sum_mb = peak_rss_mb(), net_bytes(net, False) / 2.0 ** 20
    by_type = time_by_type(net)
    floor, gflop = matmul_floor(net, repeat=2)
    peak = machine_peak()
    print_peak(peak)
    print('time per layer type (ms, one more pass): ' + ', '.join(
        '%s %.0f' % (kind, 1e3 * t) for kind, t in by_type.most_common() if t >= 5e-4))
    print('Timing (ms/image): conv %.0f proposal %.0f region-wise %.0f total %.0f; '
          'matmul floor %.0f; total / floor %.2f; the products\' %.1f GFLOP at the peak %.0f ms, '
          'total / that %.2f'
          % (ms[0], ms[1], ms[2], ms.sum(), 1e3 * floor, ms.sum() / (1e3 * floor), gflop,
             1e3 * gflop / peak['gflops_cpu'], ms.sum() / (1e3 * gflop / peak['gflops_cpu'])))
    print('memory: peak RSS %.0f MB while the images ran, before the net %.0f MB, blobs+params '
          '%.0f MB, (peak - before) / sum %.2f'
          % (peak_mb, before, sum_mb, (peak_mb - before) / sum_mb))


if __name__ == '__main__':
    main()
