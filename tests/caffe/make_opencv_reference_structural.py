#!/usr/bin/env python3
"""Writes tests/caffe/data/opencv4_structural.npz: small nets of the structural layer types
that OpenCV 4's Caffe importer runs (Deconvolution, Crop, Flatten, MVN, Slice, N-d
Convolution, Pooling with round_mode FLOOR), random weights and inputs, and the outputs OpenCV
computes for them: the oracle of test_opencv_structural.py.

As make_opencv_reference.py (whose way this follows), OpenCV runs from a Python with
opencv-python(-headless) 4.x, since OpenCV 5 no longer reads Caffe models:

    python3 tests/caffe/make_opencv_reference_structural.py --cv4-python /tmp/venv-cv4/bin/python

Weights files are written with the protobuf classes directly (not the runtime's Net). Each case
is one net; where OpenCV reads a field under another name (its copy of caffe.proto calls
PoolingParameter field 13 `ceil_mode`, a bool, where BVLC has the enum `round_mode`), OpenCV is
given its own prototxt with the same meaning. The types of this group OpenCV cannot run (ArgMax,
BatchReindex, Embed, Filter, Im2col, Parameter, Reduction, SPP, Tile, STOCHASTIC pooling) are
not here.
"""
import argparse
import io
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), 'lib'))

from caffe.io import atomic_write  # noqa: E402
from caffe.proto import caffe_pb2  # noqa: E402

OUT = os.path.join(HERE, 'data', 'opencv4_structural.npz')


def _inputs(**shapes):
    return ''.join('input: "%s" input_shape { %s }\n'
                   % (name, ' '.join('dim: %d' % d for d in shape))
                   for name, shape in shapes.items())


def _bilinear(channels, k):
    """FCN's upsampling weights (Caffe's bilinear filler), one kernel per channel."""
    f = np.ceil(k / 2.0)
    c = (k - 1) / (2.0 * f)
    axis = 1 - np.abs(np.arange(k) / f - c)
    return np.broadcast_to(np.outer(axis, axis), (channels, 1, k, k)).astype(np.float32)


# name -> (prototxt, {input: shape}, {layer: [parameter shapes or arrays]}, {blob: OpenCV layer
# producing it}, OpenCV's prototxt where it differs)
CASES = {
    'deconv_k4_s2_p1_bias': (
        'layer { name: "up" type: "Deconvolution" bottom: "x" top: "y" convolution_param { '
        'num_output: 3 kernel_size: 4 stride: 2 pad: 1 } }\n',
        {'x': (2, 4, 5, 6)}, {'up': [(4, 3, 4, 4), (3,)]}, {'y': 'up'}, None),
    'deconv_group_rect_no_bias': (
        'layer { name: "up" type: "Deconvolution" bottom: "x" top: "y" convolution_param { '
        'num_output: 4 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 0 '
        'group: 2 bias_term: false } }\n',
        {'x': (1, 6, 4, 3)}, {'up': [(6, 2, 3, 2)]}, {'y': 'up'}, None),
    'deconv_fcn_bilinear_then_crop': (
        'layer { name: "up" type: "Deconvolution" bottom: "score" top: "up" convolution_param { '
        'num_output: 3 kernel_size: 8 stride: 4 group: 3 bias_term: false } }\n'
        'layer { name: "crop" type: "Crop" bottom: "up" bottom: "image" top: "y" '
        'crop_param { axis: 2 offset: 2 } }\n',
        {'score': (1, 3, 4, 5), 'image': (1, 3, 15, 17)}, {'up': [_bilinear(3, 8)]},
        {'y': 'crop'}, None),
    'deconv_dilation2': (
        # OpenCV ignores Deconvolution's dilation (it runs dilation 1 on a dilated output
        # size); the test checks ours against the brute-force definition instead.
        'layer { name: "up" type: "Deconvolution" bottom: "x" top: "y" convolution_param { '
        'num_output: 3 kernel_size: 3 dilation: 2 stride: 2 } }\n',
        {'x': (1, 2, 3, 4)}, {'up': [(2, 3, 3, 3), (3,)]}, {'y': 'up'}, None),
    'crop_offsets_per_axis': (
        'layer { name: "crop" type: "Crop" bottom: "x" bottom: "ref" top: "y" crop_param { '
        'axis: 1 offset: 1 offset: 2 offset: 0 } }\n',
        {'x': (2, 4, 6, 5), 'ref': (1, 2, 3, 5)}, {}, {'y': 'crop'}, None),
    'flatten_axes': (
        'layer { name: "f1" type: "Flatten" bottom: "x" top: "a" }\n'
        'layer { name: "f2" type: "Flatten" bottom: "x" top: "b" '
        'flatten_param { axis: 2 end_axis: 3 } }\n',
        {'x': (2, 3, 4, 5)}, {}, {'a': 'f1', 'b': 'f2'}, None),
    'mvn_modes': (
        'layer { name: "m1" type: "MVN" bottom: "x" top: "a" }\n'
        'layer { name: "m2" type: "MVN" bottom: "x" top: "b" mvn_param { across_channels: true } }'
        '\nlayer { name: "m3" type: "MVN" bottom: "x" top: "c" '
        'mvn_param { normalize_variance: false } }\n',
        {'x': (2, 3, 4, 5)}, {}, {'a': 'm1', 'b': 'm2', 'c': 'm3'}, None),
    'mvn_large_eps': (
        # Caffe divides by sqrt(var) + eps, OpenCV by sqrt(var + eps): they differ here.
        'layer { name: "m" type: "MVN" bottom: "x" top: "y" mvn_param { eps: 0.5 } }\n',
        {'x': (2, 3, 4, 5)}, {}, {'y': 'm'}, None),
    'slice_points': (
        # OpenCV's importer cannot run a Slice without slice_point (Caffe's even split).
        'layer { name: "s1" type: "Slice" bottom: "x" top: "a" top: "b" top: "c" '
        'slice_param { axis: 2 slice_point: 1 slice_point: 4 } }\n'
        'layer { name: "s2" type: "Slice" bottom: "x" top: "d" top: "e" '
        'slice_param { slice_point: 3 } }\n',
        {'x': (2, 4, 6, 3)}, {}, {'a': 's1', 'b': 's1', 'c': 's1', 'd': 's2', 'e': 's2'}, None),
    'conv_3d': (
        'layer { name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param { '
        'num_output: 3 kernel_size: 2 kernel_size: 2 kernel_size: 2 pad: 1 pad: 1 pad: 1 '
        'stride: 2 stride: 2 stride: 2 } }\n',
        {'x': (1, 2, 5, 4, 3)}, {'c': [(3, 2, 2, 2, 2), (3,)]}, {'y': 'c'}, None),
    'pool_floor': (
        'layer { name: "p1" type: "Pooling" bottom: "x" top: "a" pooling_param { pool: MAX '
        'kernel_size: 3 stride: 2 pad: 1 round_mode: FLOOR } }\n'
        'layer { name: "p2" type: "Pooling" bottom: "x" top: "b" pooling_param { pool: AVE '
        'kernel_size: 3 stride: 2 round_mode: FLOOR } }\n',
        {'x': (2, 3, 8, 9)}, {}, {'a': 'p1', 'b': 'p2'},
        'round_mode: FLOOR=ceil_mode: false'),
}

OPENCV_SCRIPT = r'''
import json, sys
import cv2
import numpy as np
folder, spec = sys.argv[1], json.loads(sys.argv[2])
report = {'version': cv2.__version__, 'failed': {}}
for case, (inputs, outputs) in spec.items():
    try:
        net = cv2.dnn.readNetFromCaffe('%s/%s.prototxt' % (folder, case),
                                       '%s/%s.caffemodel' % (folder, case))
        for name in inputs:
            net.setInput(np.load('%s/%s.%s.npy' % (folder, case, name)), name)
        # Each layer's tops in order (forwardAndRetrieve gives every output of a layer).
        # (OpenCV's new engine, which it takes for 5-D inputs, names a layer by its top.)
        done = {}
        names = set(net.getLayerNames())
        for blob, layer in outputs.items():
            if layer not in done:
                name = layer if layer in names else blob
                done[layer] = list(net.forwardAndRetrieve([name])[0])
            np.save('%s/%s.out.%s.npy' % (folder, case, blob), done[layer].pop(0))
    except Exception as e:
        report['failed'][case] = str(e).strip().splitlines()[-1]
print(json.dumps(report))
'''


def make_params(rs, layers):
    params = {}
    for layer, blobs in layers.items():
        params[layer] = [b if isinstance(b, np.ndarray) else
                         rs.uniform(-1, 1, b).astype(np.float32) for b in blobs]
    return params


def weights_file(params, types):
    net = caffe_pb2.NetParameter(name='opencv_oracle')
    for layer, blobs in params.items():
        lp = net.layer.add(name=layer, type=types[layer])
        for value in blobs:
            bp = lp.blobs.add()
            bp.shape.dim.extend(value.shape)
            bp.data.extend(value.ravel().tolist())
    return net.SerializeToString()


def layer_types(prototxt):
    from google.protobuf import text_format
    net = text_format.Parse(prototxt, caffe_pb2.NetParameter())
    return {lp.name: lp.type for lp in net.layer}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cv4-python', required=True,
                        help='a Python with opencv-python(-headless) 4.x')
    args = parser.parse_args()
    rs = np.random.RandomState(2027)
    arrays, spec = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        for case, (layers, inputs, param_shapes, outputs, opencv_change) in CASES.items():
            prototxt = 'name: "%s"\n' % case + _inputs(**inputs) + layers
            opencv_prototxt = prototxt
            if opencv_change:
                old, new = opencv_change.split('=')
                opencv_prototxt = prototxt.replace(old, new)
            values = {name: rs.randn(*shape).astype(np.float32) for name, shape in inputs.items()}
            params = make_params(rs, param_shapes)
            with open(os.path.join(folder, case + '.prototxt'), 'w') as f:
                f.write(opencv_prototxt)
            with open(os.path.join(folder, case + '.caffemodel'), 'wb') as f:
                f.write(weights_file(params, layer_types(prototxt)))
            for name, value in values.items():
                np.save(os.path.join(folder, '%s.%s.npy' % (case, name)), value)
            spec[case] = (list(inputs), outputs)
            arrays['prototxt/' + case] = np.array(prototxt)
            if opencv_prototxt != prototxt:
                arrays['opencv_prototxt/' + case] = np.array(opencv_prototxt)
            arrays.update(('input/%s/%s' % (case, k), v) for k, v in values.items())
            for layer, blobs in params.items():
                arrays.update(('param/%s/%s/%d' % (case, layer, i), v)
                              for i, v in enumerate(blobs))
        # One OpenCV process per case: a case OpenCV cannot run may crash it (SIGFPE).
        report = {'failed': {}}
        for case in spec:
            done = subprocess.run([args.cv4_python, '-c', OPENCV_SCRIPT, folder,
                                   json.dumps({case: spec[case]})], capture_output=True,
                                  text=True)
            if done.returncode:
                report['failed'][case] = 'OpenCV exited with status %d' % done.returncode
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            report['version'] = result['version']
            report['failed'].update(result['failed'])
        if not report['version'].startswith('4.'):
            sys.exit('error: %s has OpenCV %s; readNetFromCaffe needs 4.x'
                     % (args.cv4_python, report['version']))
        if report['failed']:
            sys.exit('error: OpenCV failed on %s' % json.dumps(report['failed'], indent=1))
        for case, (_, outputs) in spec.items():
            for blob in outputs:
                arrays['output/%s/%s' % (case, blob)] = np.load(
                    os.path.join(folder, '%s.out.%s.npy' % (case, blob)))
    arrays['opencv_version'] = np.array(report['version'])
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write(OUT, buffer.getvalue())
    print('wrote %s (OpenCV %s, %d cases)' % (OUT, report['version'], len(spec)))


if __name__ == '__main__':
    main()
