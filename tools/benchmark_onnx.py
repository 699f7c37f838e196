#!/usr/bin/env python3
"""im_detect on the CPU through the runtime and through its ONNX export in ONNX Runtime, in one
process on the same image (docs/export.md).

For each net, models/pascal_voc/NET/faster_rcnn_alt_opt/faster_rcnn_test.pt gets random weights
(tools/benchmark_cpu.py's: MSRA-scaled, box regressors near zero, so NMS keeps about
cfg.TEST.RPN_POST_NMS_TOP_N proposals as a trained net does), is exported to a temporary ONNX
file, and fast_rcnn.test.im_detect runs on one HEIGHTxWIDTH image (default 600x1000, scale 1)
through both, alternating, best of --repeat runs after a warm-up each. Both use every core by
default (OMP_NUM_THREADS sets both). The machine may be shared: the load average is recorded,
and the ratio (measured in one process) is the figure to compare. The detections of the two runs
are compared too (largest score and box differences).

    python3 tools/benchmark_onnx.py                         # ZF and VGG16, best of 3
    python3 tools/benchmark_onnx.py --nets ZF --repeat 5 --result onnx_bench.json
"""
import argparse
import json
import os
import sys
import tempfile
import time

import _common  # noqa: F401  (lib/ on sys.path; before numpy, as caffe/blas_threads.py asks)
import numpy as np

from benchmark_cpu import ROOT, TEST_NETS, randomize, thread_settings

NETS = ('ZF', 'VGG16')


def best_time(run, repeat):
    run()  # warm-up: buffers, ONNX Runtime's first-run allocations
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def bench_net(name, args, experiment, workdir):
    import caffe
    from fast_rcnn import test_settings
    from fast_rcnn.onnx_model import export_detector, write_model
    from fast_rcnn.test import im_detect
    from caffe.onnx_export.runner import OnnxNet
    # The net with the run's settings in its prototxt, as tools/test_net.py builds it.
    net = caffe.Net(experiment.net_file(os.path.join(ROOT, TEST_NETS[name]), None, workdir,
                                        caffe.TEST), caffe.TEST)
    randomize(net)
    path = os.path.join(workdir, name + '.onnx')
    start = time.perf_counter()
    write_model(export_detector(net), path)
    export_s = time.perf_counter() - start
    onnx_net = OnnxNet(path)
    settings = test_settings.of_net(net)
    image = np.random.default_rng(1).integers(0, 256, size=(args.height, args.width, 3),
                                              dtype=np.uint8)
    load_before = os.getloadavg()
    runtime_s, (scores, boxes) = best_time(lambda: im_detect(net, image, settings=settings),
                                           args.repeat)
    onnx_s, (onnx_scores, onnx_boxes) = best_time(
        lambda: im_detect(onnx_net, image, settings=settings), args.repeat)
    same_shape = scores.shape == onnx_scores.shape
    return {'net': name, 'prototxt': TEST_NETS[name], 'image': [args.height, args.width],
            'rois': int(net.blobs['rois'].shape[0]),
            'onnx_rois': int(onnx_net.blobs['rois'].data.shape[0]),
            'runtime_s': runtime_s, 'onnx_runtime_s': onnx_s, 'speedup': runtime_s / onnx_s,
            'export_s': export_s, 'onnx_bytes': os.path.getsize(path),
            'max_score_diff': float(np.abs(scores - onnx_scores).max()) if same_shape else None,
            'max_box_diff': float(np.abs(boxes - onnx_boxes).max()) if same_shape else None,
            'load_before_after': [load_before, os.getloadavg()]}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--nets', nargs='+', default=list(NETS), choices=NETS)
    parser.add_argument('--repeat', type=int, default=3, help='timed runs (best kept)')
    parser.add_argument('--height', type=int, default=600)
    parser.add_argument('--width', type=int, default=1000)
    parser.add_argument('--proposals', type=int, default=300,
                        help='TEST.RPN_POST_NMS_TOP_N (default: %(default)s)')
    parser.add_argument('--result', help='write the figures to this JSON file')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import caffe
    import onnxruntime
    caffe.set_mode_cpu()
    # The image goes in at scale 1: its short side is the test scale.
    experiment = _common.load_cfg([], ['TEST.HAS_RPN', 'True', 'TEST.SCALES', '(%d,)' % args.height,
                          'TEST.MAX_SIZE', str(max(args.height, args.width)),
                          'TEST.RPN_POST_NMS_TOP_N', str(args.proposals)])
    print('threads: %s; %d cores; onnxruntime %s' % (
        ', '.join('%s=%s' % kv for kv in thread_settings().items()), os.cpu_count(),
        onnxruntime.__version__), flush=True)
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.nets:
            r = bench_net(name, args, experiment, workdir)
            results.append(r)
            print('%-6s %dx%d, %d rois: runtime %.3f s, ONNX Runtime %.3f s (%.2fx); export '
                  '%.1f s, %.0f MB; max differences: scores %.2g, boxes %.2g px; load %.2f-%.2f'
                  % (name, args.height, args.width, r['rois'], r['runtime_s'],
                     r['onnx_runtime_s'], r['speedup'], r['export_s'], r['onnx_bytes'] / 1e6,
                     r['max_score_diff'], r['max_box_diff'], r['load_before_after'][0][0],
                     r['load_before_after'][1][0]), flush=True)
    if args.result:
        from caffe.io import atomic_write
        atomic_write(args.result, json.dumps({'threads': thread_settings(),
                                              'cores': os.cpu_count(), 'results': results},
                                             indent=1).encode())


if __name__ == '__main__':
    sys.exit(main())
