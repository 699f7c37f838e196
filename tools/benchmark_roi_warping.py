#!/usr/bin/env python3
"""Times ROIWarping (one sample per bin, and 2 x 2 samples max-pooled) next to ROIPooling.

The setting of VGG16's RoI layer on a 600 x 1000 image: conv5_3 features 512 x 38 x 63,
spatial_scale 1/16, 7 x 7 output, 300 (test) and 2000 (training proposals) RoIs drawn like
proposals (random boxes of 16 to 600 pixels inside the image). For each layer: forward, then
backward to the features (ROIPooling's rois carry no gradient) and, for ROIWarping, backward
to the features and the box coordinates together. Printed: milliseconds and the ratio to
ROIPooling's forward + backward in the same process.

The machine's cores may be shared with other work: every measurement is the minimum over
--repeat rounds, the layers taking turns within a round, so all see the same load and the
least disturbed run counts. CPU by default, on the cores OpenMP and BLAS are allowed
(OMP_NUM_THREADS limits them); --gpu times the CUDA kernels (device synchronized around each
timed step).

    python3 tools/benchmark_roi_warping.py [--repeat 5] [--rois 300,2000] [--gpu [ID]]
"""
import argparse
import json
import os
import time

import _init_paths  # noqa: F401  (lib/ on sys.path; before numpy, as caffe/blas_threads.py asks)
import numpy as np

import caffe
from caffe.io import atomic_write
from caffe.testing import build_layer

CHANNELS, HEIGHT, WIDTH, SCALE, POOLED = 512, 38, 63, 1.0 / 16, 7
IMAGE_H, IMAGE_W = 600, 1000

LAYERS = [
    ('ROIPooling', 'name: "roi_pool5" type: "ROIPooling" bottom: "conv5_3" bottom: "rois" '
     'top: "pool5" roi_pooling_param { pooled_h: %d pooled_w: %d spatial_scale: %r }'
     % (POOLED, POOLED, SCALE)),
    ('ROIWarping 1x1', 'name: "roi_warp5" type: "ROIWarping" bottom: "conv5_3" bottom: "rois" '
     'top: "pool5" roi_warping_param { pooled_h: %d pooled_w: %d spatial_scale: %r }'
     % (POOLED, POOLED, SCALE)),
    ('ROIWarping 2x2', 'name: "roi_warp5" type: "ROIWarping" bottom: "conv5_3" bottom: "rois" '
     'top: "pool5" roi_warping_param { pooled_h: %d pooled_w: %d spatial_scale: %r '
     'samples_per_bin: 2 }' % (POOLED, POOLED, SCALE)),
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--rois', default='300,2000', help='RoI counts to time (default 300,2000)')
    p.add_argument('--repeat', type=int, default=5, help='timed rounds; the minimum counts')
    p.add_argument('--gpu', nargs='?', const=0, type=int, default=None, metavar='ID',
                   help='time the GPU kernels on device ID (default 0)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--result', help='also write the times (seconds) to this JSON file')
    return p.parse_args(argv)


def proposals(rs, count):
    """Boxes like RPN proposals: inside the image, 16 to 600 pixels a side."""
    w = rs.uniform(16, 600, size=count)
    h = rs.uniform(16, 600, size=count)
    x1 = rs.uniform(0, IMAGE_W - w)
    y1 = rs.uniform(0, IMAGE_H - h)
    return np.stack([np.zeros(count), x1, y1, x1 + w - 1, y1 + h - 1], 1).astype(np.float32)


def steps(text, features, rois, top_diff, sync):
    """The timed steps of one layer: name -> function."""
    layer, bottom, top = build_layer(text, [features, rois])
    top[0].diff[...] = top_diff
    out = {'forward': lambda: layer.forward(bottom, top),
           'backward features': lambda: layer.backward(top, [True, False], bottom)}
    if layer.type == 'ROIWarping':
        out['backward features+coords'] = lambda: layer.backward(top, [True, True], bottom)

    def timed(fn):
        def run():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            return time.perf_counter() - start
        return run
    return {name: timed(fn) for name, fn in out.items()}


def benchmark(count, args, sync):
    rs = np.random.RandomState(args.seed)
    features = rs.randn(1, CHANNELS, HEIGHT, WIDTH).astype(np.float32)
    rois = proposals(rs, count)
    top_diff = rs.randn(count, CHANNELS, POOLED, POOLED).astype(np.float32)
    layers = {name: steps(text, features, rois, top_diff, sync) for name, text in LAYERS}
    for layer in layers.values():      # warm-up: kernel compilation, first-touch page faults
        for run in layer.values():
            run()
    best = {name: {step: float('inf') for step in layer} for name, layer in layers.items()}
    for _ in range(args.repeat):
        for name, layer in layers.items():
            for step, run in layer.items():
                best[name][step] = min(best[name][step], run())
    return best


def report(count, best):
    base = best['ROIPooling']['forward'] + best['ROIPooling']['backward features']
    print('%d RoIs (features 1 x %d x %d x %d, %d x %d bins)'
          % (count, CHANNELS, HEIGHT, WIDTH, POOLED, POOLED))
    print('  %-15s %10s %12s %12s %14s %8s %8s' % ('layer', 'forward', 'bwd feat', 'bwd both',
                                                   'fwd+bwd feat', 'ratio', 'ratio*'))
    for name, t in best.items():
        feat = t['forward'] + t['backward features']
        both = t.get('backward features+coords')
        print('  %-15s %8.1fms %10.1fms %12s %12.1fms %7.2fx %8s'
              % (name, 1e3 * t['forward'], 1e3 * t['backward features'],
                 '%.1fms' % (1e3 * both) if both is not None else '-', 1e3 * feat, feat / base,
                 '%.2fx' % ((t['forward'] + both) / base) if both is not None else '-'))


def main(argv=None):
    args = parse_args(argv)
    if args.gpu is None:
        caffe.set_mode_cpu()
        device = 'CPU, %d core(s) visible, OMP_NUM_THREADS=%s' % (
            os.cpu_count(), os.environ.get('OMP_NUM_THREADS', 'unset'))
        sync = lambda: None  # noqa: E731
    else:
        caffe.set_mode_gpu()
        caffe.set_device(args.gpu)
        from caffe import gpu
        device = 'GPU %d' % args.gpu
        sync = gpu.synchronize
    print('%s; minimum of %d rounds (cores may be shared: the least disturbed run counts)'
          % (device, args.repeat))
    results = {}
    for count in (int(c) for c in args.rois.split(',')):
        best = benchmark(count, args, sync)
        report(count, best)
        results[str(count)] = best
    print('ratio: forward + backward to the features, over ROIPooling\'s; ratio*: ROIWarping '
          'with the coordinate gradient too')
    if args.result:
        atomic_write(args.result, json.dumps({'device': device, 'repeat': args.repeat,
                                              'seconds': results}, indent=1).encode())


if __name__ == '__main__':
    main()
