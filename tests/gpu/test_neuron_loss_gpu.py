"""The neuron and loss layers' GPU paths beyond the shared CPU/GPU cases (gpu_layer_cases.py):
they compute on device arrays (no silent fall-back to the CPU code), InfogainLoss with H read
from a file, and Threshold's missing backward on the GPU too. Runs on the emulator and, marked
gpu, on a real GPU (conftest's `backend`)."""
import numpy as np
import pytest

import caffe
from caffe.common import CaffeError
from caffe.io import array_to_blobproto, write_binary
from caffe.testing import build_layer

from gpu_layer_cases import CASES, assert_same, case, run_layer

DEVICE_CASES = ['absval', 'bnll', 'clip_in_place', 'elu', 'exp_base2_scale_shift',
                'log_base10_scale_shift', 'power_general', 'power_square', 'power_unshifted',
                'power_affine', 'prelu', 'sigmoid', 'swish_beta', 'tanh', 'euclidean_loss',
                'contrastive_loss', 'hinge_loss_l1', 'multinomial_logistic_loss',
                'sigmoid_ce_loss', 'infogain_loss_axis2']


@pytest.mark.parametrize('name', DEVICE_CASES)
def test_layers_compute_on_device_arrays(name, backend):
    c = next(c for c in CASES if c.name == name)
    caffe.set_mode_gpu()
    layer, bottom, top = build_layer(c.text, c.bottoms(np.random.RandomState(0)))
    layer.forward(bottom, top)
    if not layer.type.endswith('Loss'):
        assert top[0]._data._head == 'device'
    top[0].diff[...] = 1
    layer.backward(top, [True] + [False] * (len(bottom) - 1), bottom)
    assert bottom[0]._diff._head == 'device'
    for p in layer.blobs:
        assert p._diff._head == 'device'


def test_infogain_h_from_a_file(tmp_path, backend):
    rs = np.random.RandomState(3)
    path = tmp_path / 'H.binaryproto'
    write_binary(str(path), array_to_blobproto(rs.uniform(0.1, 2, (1, 1, 5, 5))))
    c = case('infogain_source', 'name: "l" type: "InfogainLoss" bottom: "x" bottom: "t" '
             'top: "loss" infogain_loss_param { source: "%s" }' % path,
             lambda rs: [rs.randn(4, 5, 3).astype(np.float32),
                         rs.randint(0, 5, (4, 3)).astype(np.float32)], exact=False)
    assert_same(c, run_layer(c, gpu=False), run_layer(c, gpu=True))


def test_threshold_has_no_backward_on_the_gpu(backend):
    caffe.set_mode_gpu()
    layer, bottom, top = build_layer('name: "t" type: "Threshold" bottom: "x" top: "y"',
                                     [np.ones((2, 3), np.float32)])
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, 1)
    with pytest.raises(CaffeError, match="Threshold layer 't': has no backward"):
        layer.backward(top, [True], bottom)
