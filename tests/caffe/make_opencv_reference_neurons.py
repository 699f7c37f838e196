#!/usr/bin/env python3
"""Writes tests/caffe/data/opencv4_neurons.npz: small nets of the neuron layers OpenCV 4's Caffe
importer runs (AbsVal, BNLL, ELU, Exp, Log, Power, PReLU, Sigmoid, Swish, TanH), with random
inputs and weights, and the outputs OpenCV computes for them, for test_opencv_neurons.py.

OpenCV's dnn module (cv2.dnn.readNetFromCaffe, gone in OpenCV 5) implements Caffe inference
independently of this project. The project pins OpenCV 5, so this script runs OpenCV 4 from
another Python, as make_opencv_reference.py does:

    python3 tests/caffe/make_opencv_reference_neurons.py --cv4-python /path/to/venv-cv4/bin/python

Each case is its own net (input "data" -> the layers -> the compared blob), its weights written
with the protobuf classes directly (not the runtime's Net). OpenCV 4.14 cannot create Clip,
Threshold or any loss layer, and it ignores Log's base/scale/shift and Swish's beta: the cases
log_base2_scale_shift and swish_beta record what it computes instead (the test says so).
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

OUT = os.path.join(HERE, 'data', 'opencv4_neurons.npz')
SHAPE = (2, 3, 4, 5)


def neuron(kind, params='', bottom='data', top='out', name='n'):
    return ('layer { name: "%s" type: "%s" bottom: "%s" top: "%s" %s }\n'
            % (name, kind, bottom, top, params))


# name: (layers, {layer: [parameter blob shapes]}, input: 'gaussian' scale or 'positive',
#        the OpenCV layer whose output is the compared blob "out")
CASES = {
    'absval': (neuron('AbsVal'), {}, 2.0, 'n'),
    'bnll': (neuron('BNLL'), {}, 5.0, 'n'),
    'elu': (neuron('ELU'), {}, 2.0, 'n'),
    'elu_alpha': (neuron('ELU', 'elu_param { alpha: 0.3 }'), {}, 2.0, 'n'),
    'exp': (neuron('Exp'), {}, 1.0, 'n'),
    'exp_base2_scale_shift': (neuron('Exp', 'exp_param { base: 2 scale: 0.5 shift: 0.1 }'), {},
                              2.0, 'n'),
    'log': (neuron('Log'), {}, 'positive', 'n'),
    'log_base2_scale_shift': (neuron('Log', 'log_param { base: 2 scale: 0.5 shift: 3 }'), {},
                              'positive', 'n'),
    'power_general': (neuron('Power', 'power_param { power: 1.7 scale: 0.5 shift: 3 }'), {},
                      'positive', 'n'),
    'power_square': (neuron('Power', 'power_param { power: 2 scale: -0.5 shift: 1 }'), {}, 2.0,
                     'n'),
    'power_cube': (neuron('Power', 'power_param { power: 3 scale: 0.5 }'), {}, 1.0, 'n'),
    'prelu': (neuron('PReLU'), {'n': [(3,)]}, 2.0, 'n'),
    # Caffe keeps a shared slope in a blob with no axes, which OpenCV cannot read: here it is
    # given as one value of one axis (the test loads it into the runtime's 0-axis blob).
    'prelu_shared': (neuron('PReLU', 'prelu_param { channel_shared: true }'), {'n': [(1,)]},
                     2.0, 'n'),
    'sigmoid': (neuron('Sigmoid'), {}, 4.0, 'n'),
    'swish': (neuron('Swish'), {}, 3.0, 'n'),
    'swish_beta': (neuron('Swish', 'swish_param { beta: 2 }'), {}, 3.0, 'n'),
    'tanh': (neuron('TanH'), {}, 2.0, 'n'),
    # Neurons after layers with random weights, in place as nets use them.
    'conv_prelu_in_place': (
        'layer { name: "conv" type: "Convolution" bottom: "data" top: "out" '
        'convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }\n'
        + neuron('PReLU', bottom='out', name='act'), {'conv': [(4, 3, 3, 3), (4,)],
                                                     'act': [(4,)]}, 1.0, 'act'),
    'ip_tanh_power': (
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
        'inner_product_param { num_output: 6 } }\n'
        + neuron('TanH', bottom='ip', top='t', name='tanh')
        + neuron('Power', 'power_param { power: 2 scale: 1.5 shift: 0.5 }', bottom='t',
                 name='pow'), {'ip': [(6, 60), (6,)]}, 1.0, 'pow'),
    'conv_elu_sigmoid': (
        'layer { name: "conv" type: "Convolution" bottom: "data" top: "c" '
        'convolution_param { num_output: 2 kernel_size: 2 } }\n'
        + neuron('ELU', 'elu_param { alpha: 0.7 }', bottom='c', top='c', name='elu')
        + neuron('Sigmoid', bottom='c', name='sig'), {'conv': [(2, 3, 2, 2), (2,)]}, 1.0,
        'sig'),
}

TYPES = {'conv': 'Convolution', 'ip': 'InnerProduct', 'n': 'PReLU', 'act': 'PReLU'}

OPENCV_SCRIPT = r'''
import json, sys
import cv2
import numpy as np
folder = sys.argv[1]
for name, output in json.loads(sys.argv[2]).items():
    base = '%s/%s' % (folder, name)
    net = cv2.dnn.readNetFromCaffe(base + '.prototxt', base + '.caffemodel')
    net.setInput(np.load(base + '.npy'), 'data')
    np.save(base + '.out.npy', net.forward(output))
print(cv2.__version__)
'''


def prototxt(layers):
    return ('name: "opencv_neuron_oracle"\ninput: "data"\n'
            'input_shape { dim: %d dim: %d dim: %d dim: %d }\n' % SHAPE) + layers


def weights_file(params):
    net = caffe_pb2.NetParameter(name='opencv_neuron_oracle')
    for layer, blobs in params.items():
        lp = net.layer.add(name=layer, type=TYPES[layer])
        for value in blobs:
            bp = lp.blobs.add()
            bp.shape.dim.extend(value.shape)
            bp.data.extend(value.ravel().tolist())
    return net.SerializeToString()


def make_case(rs, shapes, scale):
    if scale == 'positive':
        x = (np.abs(rs.randn(*SHAPE)) * 2 + 0.05).astype(np.float32)
    else:
        x = (rs.randn(*SHAPE) * scale).astype(np.float32)
    params = {layer: [np.asarray(rs.randn(*shape) * 0.5, np.float32) for shape in blob_shapes]
              for layer, blob_shapes in shapes.items()}
    return x, params


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cv4-python', required=True,
                        help='a Python with opencv-python(-headless) 4.x')
    args = parser.parse_args()
    rs = np.random.RandomState(2024)
    arrays = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, (layers, shapes, scale, _) in CASES.items():
            x, params = make_case(rs, shapes, scale)
            base = os.path.join(folder, name)
            with open(base + '.prototxt', 'w') as f:
                f.write(prototxt(layers))
            with open(base + '.caffemodel', 'wb') as f:
                f.write(weights_file(params))
            np.save(base + '.npy', x)
            arrays['%s/prototxt' % name] = np.array(prototxt(layers))
            arrays['%s/input' % name] = x
            for layer, blobs in params.items():
                arrays.update(('%s/param/%s/%d' % (name, layer, i), v)
                              for i, v in enumerate(blobs))
        outputs = {name: case[3] for name, case in CASES.items()}
        done = subprocess.run([args.cv4_python, '-c', OPENCV_SCRIPT, folder, json.dumps(outputs)],
                              check=True, capture_output=True, text=True)
        version = done.stdout.strip().splitlines()[-1]
        if not version.startswith('4.'):
            sys.exit('error: %s has OpenCV %s; readNetFromCaffe needs 4.x'
                     % (args.cv4_python, version))
        for name in CASES:
            arrays['%s/output' % name] = np.load(os.path.join(folder, name + '.out.npy'))
    arrays['opencv_version'] = np.array(version)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write(OUT, buffer.getvalue())
    print('wrote %s (OpenCV %s, %d cases)' % (OUT, version, len(CASES)))


if __name__ == '__main__':
    main()
