#!/usr/bin/env python3
"""Writes tests/caffe/data/opencv4_batch_norm_scale.npz: a small net of BatchNorm, Scale and
Eltwise layers with random weights, its inputs, and the outputs OpenCV 4.x computes for them.

OpenCV's dnn module reads Caffe models (cv2.dnn.readNetFromCaffe, gone in OpenCV 5) and
implements Caffe's inference independently of this project, so its outputs are an oracle for
test_opencv_reference.py. The project pins OpenCV 5, so this script runs OpenCV 4 from another
Python (a separate virtual environment):

    python3 -m venv /tmp/venv-cv4
    /tmp/venv-cv4/bin/pip install "opencv-python-headless<5" numpy
    python3 tests/caffe/make_opencv_reference.py --cv4-python /tmp/venv-cv4/bin/python

The weights file is written here with the protobuf classes directly (not the runtime's Net), and
the net covers: BatchNorm with global statistics and blobs[2] = 2.5 (eps 0.001) and blobs[2] = 0
(default eps); BatchNorm with batch statistics (OpenCV computes them only for one image); Scale
with a bias in place, without one, with a second bottom, and over axes 2-3 with a bias; ReLU and
an Eltwise sum.
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

OUT = os.path.join(HERE, 'data', 'opencv4_batch_norm_scale.npz')

PROTOTXT = '''name: "opencv_oracle"
input: "data"
input_shape { dim: 2 dim: 4 dim: 5 dim: 6 }
input: "single"
input_shape { dim: 1 dim: 4 dim: 5 dim: 6 }
input: "gain"
input_shape { dim: 4 dim: 5 }
layer { name: "bn1" type: "BatchNorm" bottom: "data" top: "bn1"
        batch_norm_param { use_global_stats: true eps: 0.001 } }
layer { name: "sc1" type: "Scale" bottom: "bn1" top: "bn1" scale_param { bias_term: true } }
layer { name: "relu1" type: "ReLU" bottom: "bn1" top: "bn1" }
layer { name: "bn2" type: "BatchNorm" bottom: "data" top: "bn2"
        batch_norm_param { use_global_stats: true } }
layer { name: "sc2" type: "Scale" bottom: "bn2" top: "bn2" }
layer { name: "sum" type: "Eltwise" bottom: "bn1" bottom: "bn2" top: "sum" }
layer { name: "sc4" type: "Scale" bottom: "sum" bottom: "gain" top: "prod" }
layer { name: "sc6" type: "Scale" bottom: "prod" top: "out6"
        scale_param { axis: 2 num_axes: 2 bias_term: true } }
layer { name: "bn3" type: "BatchNorm" bottom: "single" top: "bn3"
        batch_norm_param { use_global_stats: false } }
'''

# Parameter blob shapes by layer (what Caffe's layers create for the net above).
PARAMS = {
    'bn1': [(4,), (4,), (1,)], 'sc1': [(4,), (4,)],
    'bn2': [(4,), (4,), (1,)], 'sc2': [(4,)],
    'sc6': [(5, 6), (5, 6)],
    'bn3': [(4,), (4,), (1,)],
}
TYPES = {'bn': 'BatchNorm', 'sc': 'Scale'}
# The blob each compared output is, and the OpenCV layer that produces it last.
OUTPUTS = {'bn1': 'relu1', 'bn2': 'sc2', 'sum': 'sum', 'prod': 'sc4', 'out6': 'sc6',
           'bn3': 'bn3'}

OPENCV_SCRIPT = r'''
import json, sys
import cv2
import numpy as np
folder = sys.argv[1]
outputs = json.loads(sys.argv[2])
net = cv2.dnn.readNetFromCaffe(folder + '/net.prototxt', folder + '/net.caffemodel')
for name in ('data', 'single', 'gain'):
    net.setInput(np.load('%s/%s.npy' % (folder, name)), name)
blobs = list(outputs)
results = net.forward([outputs[b] for b in blobs])
for blob, value in zip(blobs, results):
    np.save('%s/out_%s.npy' % (folder, blob), value)
print(cv2.__version__)
'''


def make_params(rs):
    params = {}
    for layer, shapes in PARAMS.items():
        blobs = [rs.uniform(0.5, 2, shape).astype(np.float32) for shape in shapes]
        if layer.startswith('bn'):
            blobs[0] = rs.uniform(-3, 3, shapes[0]).astype(np.float32)    # mean sum
        if layer.startswith('sc') and len(shapes) == 2:
            blobs[1] = rs.uniform(-1, 1, shapes[1]).astype(np.float32)    # bias
        params[layer] = blobs
    params['bn1'][2][...] = 2.5     # statistics summed with weight 2.5
    params['bn2'][2][...] = 0       # no statistics yet: Caffe scales them by 0
    return params


def weights_file(params):
    net = caffe_pb2.NetParameter(name='opencv_oracle')
    for layer, blobs in params.items():
        lp = net.layer.add(name=layer, type=TYPES[layer[:2]])
        for value in blobs:
            bp = lp.blobs.add()
            bp.shape.dim.extend(value.shape)
            bp.data.extend(value.ravel().tolist())
    return net.SerializeToString()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cv4-python', required=True,
                        help='a Python with opencv-python(-headless) 4.x')
    args = parser.parse_args()
    rs = np.random.RandomState(2015)
    inputs = {'data': (rs.randn(2, 4, 5, 6) * 3 + 1).astype(np.float32),
              'single': (rs.randn(1, 4, 5, 6) * 2 - 1).astype(np.float32),
              'gain': rs.uniform(-1, 1, (4, 5)).astype(np.float32)}
    params = make_params(rs)
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, 'net.prototxt'), 'w') as f:
            f.write(PROTOTXT)
        with open(os.path.join(folder, 'net.caffemodel'), 'wb') as f:
            f.write(weights_file(params))
        for name, value in inputs.items():
            np.save(os.path.join(folder, name + '.npy'), value)
        done = subprocess.run([args.cv4_python, '-c', OPENCV_SCRIPT, folder,
                               json.dumps(OUTPUTS)], check=True, capture_output=True, text=True)
        version = done.stdout.strip().splitlines()[-1]
        if not version.startswith('4.'):
            sys.exit('error: %s has OpenCV %s; readNetFromCaffe needs 4.x'
                     % (args.cv4_python, version))
        arrays = {'prototxt': np.array(PROTOTXT), 'opencv_version': np.array(version)}
        arrays.update(('input/' + k, v) for k, v in inputs.items())
        for layer, blobs in params.items():
            arrays.update(('param/%s/%d' % (layer, i), v) for i, v in enumerate(blobs))
        for blob in OUTPUTS:
            arrays['output/' + blob] = np.load(os.path.join(folder, 'out_%s.npy' % blob))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write(OUT, buffer.getvalue())
    print('wrote %s (OpenCV %s)' % (OUT, version))


if __name__ == '__main__':
    main()
