"""The neuron layers against an independent implementation of Caffe inference: OpenCV 4's dnn
module (cv2.dnn.readNetFromCaffe), whose outputs for small nets with random inputs and weights
are stored in data/opencv4_neurons.npz by make_opencv_reference_neurons.py.

OpenCV 4.14 runs AbsVal, BNLL, ELU, Exp, Log, Power, PReLU, Sigmoid, Swish and TanH. It cannot
create Clip, Threshold or any loss layer (ContrastiveLoss, EuclideanLoss, HingeLoss,
InfogainLoss, MultinomialLogisticLoss, SigmoidCrossEntropyLoss): OpenCV cannot run them, and
their tests check them against float64 formulas instead. Where OpenCV is not Caffe, Caffe's
source is the truth: OpenCV ignores Log's base, scale and shift (it takes log(x)) and Swish's
beta (it takes x * sigmoid(x)); for those cases the test checks that OpenCV computed exactly
that, and that this runtime computes Caffe's formula."""
import math
import os

import numpy as np
import pytest
from google.protobuf import text_format

import caffe
from caffe.proto import caffe_pb2

REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data',
                         'opencv4_neurons.npz')
# Cases where OpenCV departs from Caffe: what OpenCV computes instead, and Caffe's formula.
NOT_CAFFE = {
    'log_base2_scale_shift': (np.log, lambda x: np.log(3 + 0.5 * x) / math.log(2)),
    'swish_beta': (lambda x: x / (1 + np.exp(-x)), lambda x: x / (1 + np.exp(-2 * x))),
}


@pytest.fixture(scope='module')
def reference():
    with np.load(REFERENCE) as f:
        return {k: f[k] for k in f.files}


def cases(reference):
    return sorted({key.split('/')[0] for key in reference if key.endswith('/output')})


def run(reference, name):
    param = text_format.Parse(str(reference[name + '/prototxt']), caffe_pb2.NetParameter())
    net = caffe.Net(param, caffe.TEST)
    prefix = name + '/param/'
    for key, value in reference.items():
        if key.startswith(prefix):
            layer, index = key[len(prefix):].split('/')
            target = net.params[layer][int(index)].data
            target[...] = value.reshape(target.shape)
    return net.forward(data=reference[name + '/input'])['out'].copy()


def test_reference_holds_every_type_opencv_runs(reference):
    assert str(reference['opencv_version']).startswith('4.')
    types = set()
    for name in cases(reference):
        param = text_format.Parse(str(reference[name + '/prototxt']), caffe_pb2.NetParameter())
        types.update(layer.type for layer in param.layer)
    assert {'AbsVal', 'BNLL', 'ELU', 'Exp', 'Log', 'Power', 'PReLU', 'Sigmoid', 'Swish',
            'TanH'} <= types


def test_outputs_match_opencv(reference):
    compared = 0
    for name in cases(reference):
        if name in NOT_CAFFE:
            continue
        ours, expected = run(reference, name), reference[name + '/output']
        assert ours.shape == expected.shape, name
        # 1e-4 relative. Values near 0 are held to 1e-6 of the blob's scale instead: Caffe's
        # log(1. + exp(x)) (BNLL) and 0.5 * tanh(0.5 * x) + 0.5 (Sigmoid) keep absolute, not
        # relative, accuracy in their far negative tails (OpenCV's float formulas differ there
        # by up to 5e-7), and so do e^x - 1 (ELU) and a convolution's sums.
        atol = 1e-6 * max(1.0, float(np.abs(expected).max()))
        np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=atol, err_msg=name)
        compared += 1
    assert compared == 18


@pytest.mark.parametrize('name', sorted(NOT_CAFFE))
def test_where_opencv_is_not_caffe(reference, name):
    opencv_formula, caffe_formula = NOT_CAFFE[name]
    x = reference[name + '/input'].astype(np.float64)
    np.testing.assert_allclose(reference[name + '/output'], opencv_formula(x), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(run(reference, name), caffe_formula(x), rtol=1e-5, atol=1e-6)
