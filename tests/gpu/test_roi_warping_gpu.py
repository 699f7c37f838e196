"""ROIWarping on the GPU backend beyond the generic cases of gpu_layer_cases.py: many RoIs piled
on the same cells (the feature gradient gathers hundreds of terms per cell, the coordinate
gradient sums every channel), bit-for-bit equal to the CPU and to a second GPU run, and
propagate_down on the device path. Runs on the emulator here and on a real GPU where one is."""
import numpy as np
import pytest

import caffe
from caffe.testing import build_layer

from gpu_layer_cases import assert_same, case, run_layer


def _piled_rois(rs, count, height, width, scale):
    # boxes around the same centre, so every cell there is reached by many RoIs
    cy, cx = height / scale / 2, width / scale / 2
    half = rs.uniform(0.5, 0.8, size=(count, 2)) * [height / scale, width / scale] / 2
    jitter = rs.uniform(-3, 3, size=(count, 4))
    rois = np.stack([rs.randint(2, size=count), cx - half[:, 1], cy - half[:, 0],
                     cx + half[:, 1], cy + half[:, 0]], axis=1)
    rois[:, 1:] += jitter
    return rois.astype(np.float32)


PILED = [
    case('roi_warping_piled_%d' % f, 'name: "w" type: "ROIWarping" bottom: "x" bottom: "rois" '
         'top: "y" roi_warping_param { pooled_h: 7 pooled_w: 7 spatial_scale: 0.0625 '
         'samples_per_bin: %d }' % f,
         lambda rs: [rs.randn(2, 32, 12, 16).astype(np.float32) * 10,
                     _piled_rois(rs, 150, 12, 16, 0.0625)])
    for f in (1, 2)]


@pytest.mark.parametrize('c', PILED, ids=[c.name for c in PILED])
def test_gpu_equals_cpu_and_itself_bit_for_bit(c, backend):
    cpu = run_layer(c, gpu=False)
    first = run_layer(c, gpu=True)
    second = run_layer(c, gpu=True)
    assert_same(c, cpu, first)
    assert_same(c, first, second)
    # the inputs reached what they were made for: coordinate gradients everywhere, the
    # batch column 0, cells with contributions from many RoIs
    tops, (features_diff, rois_diff), _, _ = first
    assert (rois_diff[:, 0] == 0).all() and (rois_diff[:, 1:] != 0).all()
    assert np.count_nonzero(features_diff) > 0.3 * features_diff.size


@pytest.mark.parametrize('down', [[True, False], [False, True]])
def test_gpu_propagate_down(down, backend):
    c = PILED[1]
    bottoms = c.bottoms(np.random.RandomState(0))
    results = []
    for mode in (caffe.set_mode_cpu, caffe.set_mode_gpu):
        mode()
        layer, bottom, top = build_layer(c.text, bottoms)
        layer.forward(bottom, top)
        top[0].diff[...] = 1.0
        for b in bottom:
            b.diff[...] = 7.0
        layer.backward(top, down, bottom)
        results.append([b.diff.copy() for b in bottom])
    caffe.set_mode_cpu()
    for i, wanted in enumerate(down):
        np.testing.assert_array_equal(results[1][i], results[0][i])
        assert (results[1][i] == 7.0).all() != wanted
