"""Deconvolution, Crop, Flatten, MVN, Slice, 3-D Convolution and FLOOR-rounded Pooling against
an independent implementation of Caffe inference: OpenCV 4's Caffe importer, whose outputs for
small nets with random weights are stored in data/opencv4_structural.npz by
make_opencv_reference_structural.py. Agreement is to 1e-4 of each output's largest value.

Where OpenCV is not Caffe, Caffe's source is the truth and the test says how they differ:
OpenCV ignores Deconvolution's dilation, and its MVN divides by sqrt(var + eps) where Caffe
divides by sqrt(var) + eps. The group's other types (ArgMax, BatchReindex, Embed, Filter,
Im2col, Parameter, Reduction, SPP, Tile, STOCHASTIC pooling) OpenCV cannot run, nor a Slice
without slice_point."""
import os

import numpy as np
import pytest
from google.protobuf import text_format

import caffe
from caffe.proto import caffe_pb2

REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data',
                         'opencv4_structural.npz')
DIFFERENT = {'deconv_dilation2', 'mvn_large_eps'}


@pytest.fixture(scope='module')
def reference():
    with np.load(REFERENCE) as f:
        return {k: f[k] for k in f.files}


def _cases(reference):
    return sorted(k.split('/')[1] for k in reference if k.startswith('prototxt/'))


def _net(prototxt, reference, case):
    net = caffe.Net(text_format.Parse(prototxt, caffe_pb2.NetParameter()), caffe.TEST)
    for key, value in reference.items():
        if key.startswith('param/%s/' % case):
            _, _, layer, index = key.split('/')
            net.params[layer][int(index)].data[...] = value
    return net


def _run(reference, case, prototxt=None):
    net = _net(prototxt or str(reference['prototxt/' + case]), reference, case)
    inputs = {k.split('/')[2]: v for k, v in reference.items()
              if k.startswith('input/%s/' % case)}
    outputs = [k.split('/')[2] for k in reference if k.startswith('output/%s/' % case)]
    result = net.forward(blobs=outputs, **inputs)
    return {name: result[name].copy() for name in outputs}, inputs


def test_reference_covers_the_cases(reference):
    assert str(reference['opencv_version']).startswith('4.')
    assert _cases(reference) == sorted(
        ['conv_3d', 'crop_offsets_per_axis', 'deconv_dilation2', 'deconv_fcn_bilinear_then_crop',
         'deconv_group_rect_no_bias', 'deconv_k4_s2_p1_bias', 'flatten_axes', 'mvn_large_eps',
         'mvn_modes', 'pool_floor', 'slice_points'])


@pytest.mark.parametrize('case', [
    'conv_3d', 'crop_offsets_per_axis', 'deconv_fcn_bilinear_then_crop',
    'deconv_group_rect_no_bias', 'deconv_k4_s2_p1_bias', 'flatten_axes', 'mvn_modes',
    'pool_floor', 'slice_points'])
def test_forward_matches_opencv(reference, case):
    ours, _ = _run(reference, case)
    for name, value in ours.items():
        expected = reference['output/%s/%s' % (case, name)]
        assert value.shape == expected.shape, name
        scale = max(float(np.abs(expected).max()), 1e-6)
        np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-4 * scale,
                                   err_msg='%s %s' % (case, name))


def test_opencv_runs_floor_pooling_under_its_own_field_name(reference):
    # OpenCV's caffe.proto has `ceil_mode: false` where BVLC's has `round_mode: FLOOR`.
    theirs = str(reference['opencv_prototxt/pool_floor'])
    assert 'ceil_mode: false' in theirs and 'round_mode' not in theirs


def test_deconvolution_dilation_opencv_ignores(reference):
    case = 'deconv_dilation2'
    ours, inputs = _run(reference, case)
    theirs = reference['output/%s/y' % case]
    # Caffe: stride * (in - 1) + dilation * (k - 1) + 1 = 2 * 2 + 5 = 9 rows, 11 columns;
    # OpenCV computes the undilated deconvolution (7 x 9) instead.
    assert ours['y'].shape == (1, 3, 9, 11)
    assert theirs.shape == (1, 3, 7, 9)
    undilated, _ = _run(reference, case, str(reference['prototxt/' + case]).replace(
        'dilation: 2', 'dilation: 1'))
    np.testing.assert_allclose(undilated['y'], theirs, rtol=1e-4, atol=1e-5)
    from test_deconvolution_layer import brute_deconv
    w, b = (reference['param/%s/up/%d' % (case, i)] for i in range(2))
    expected = brute_deconv(inputs['x'], w, b, (0, 0), (2, 2), (2, 2), 1)
    np.testing.assert_allclose(ours['y'], expected, rtol=1e-5, atol=1e-5)


def test_mvn_eps_placement_differs_from_opencv(reference):
    case = 'mvn_large_eps'
    ours, inputs = _run(reference, case)
    theirs = reference['output/%s/y' % case]
    x = inputs['x'].astype(np.float64).reshape(6, -1)
    std = x.std(axis=1, keepdims=True)
    eps = 0.5
    # Caffe (MVNLayer): (x - mean) / (std + eps); OpenCV: (x - mean) / sqrt(var + eps).
    caffe_values = ((x - x.mean(1, keepdims=True)) / (std + eps)).reshape(theirs.shape)
    np.testing.assert_allclose(ours['y'], caffe_values, rtol=1e-5, atol=1e-5)
    converted = ours['y'].reshape(6, -1) * (std + eps) / np.sqrt(std ** 2 + eps)
    np.testing.assert_allclose(converted.reshape(theirs.shape), theirs, rtol=1e-4, atol=1e-5)
    assert np.abs(ours['y'] - theirs).max() > 0.05
