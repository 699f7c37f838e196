"""A layer whose compiled kernels did not import (a checkout without `make`) fails at setup with
one message naming the layer, the extension and the fix; the other layers keep working."""
import importlib

import numpy as np
import pytest

from caffe import CaffeError
from caffe.testing import build_layer

# (layer module, the module-level names its kernels are imported into, the name of the import
# error, the extension, a layer of that type, its bottoms' shapes)
CASES = [
    ('relu', ['kernels'], '_KERNELS_ERROR', 'elementwise_kernels',
     'type: "ReLU" bottom: "x" top: "y"', [(1, 2, 3, 3)]),
    ('dropout', ['kernels'], '_KERNELS_ERROR', 'elementwise_kernels',
     'type: "Dropout" bottom: "x" top: "y"', [(1, 2, 3, 3)]),
    ('eltwise', ['kernels'], '_KERNELS_ERROR', 'elementwise_kernels',
     'type: "Eltwise" bottom: "a" bottom: "b" top: "y"', [(1, 2, 3, 3)] * 2),
    ('pooling', ['kernels'], '_KERNELS_ERROR', 'pooling_kernels',
     'type: "Pooling" bottom: "x" top: "y" pooling_param { kernel_size: 2 }', [(1, 2, 4, 4)]),
    ('lrn', ['lrn_kernels'], '_KERNELS_ERROR', 'lrn_kernels',
     'type: "LRN" bottom: "x" top: "y"', [(1, 2, 3, 3)]),
    ('convolution', ['im2col', 'col2im'], '_IM2COL_ERROR', 'im2col',
     'type: "Convolution" bottom: "x" top: "y" convolution_param { num_output: 2 '
     'kernel_size: 1 }', [(1, 2, 3, 3)]),
    ('batch_norm', ['normalize', 'channel_mean_var', 'backward_batch_stats'], '_KERNELS_ERROR',
     'batch_norm_kernels', 'type: "BatchNorm" bottom: "x" top: "y"', [(1, 2, 3, 3)]),
    ('bias', ['scale_bias', 'sum_over_outer_inner'], '_KERNELS_ERROR', 'scale_kernels',
     'type: "Bias" bottom: "x" top: "y"', [(1, 2, 3, 3)]),
    ('roi_pooling', ['_kernels'], '_IMPORT_ERROR', 'roi_pooling_kernels',
     'type: "ROIPooling" bottom: "x" bottom: "rois" top: "y" roi_pooling_param { pooled_h: 2 '
     'pooled_w: 2 spatial_scale: 1 }', [(1, 2, 4, 4), (1, 5)]),
    ('_neuron', ['kernels'], '_KERNELS_ERROR', 'neuron_kernels',
     'type: "Sigmoid" bottom: "x" top: "y"', [(1, 2, 3, 3)]),
    ('_losses', ['kernels'], '_KERNELS_ERROR', 'loss_kernels',
     'type: "EuclideanLoss" bottom: "a" bottom: "b" top: "l"', [(2, 3), (2, 3)]),
    ('roi_warping', ['_kernels'], '_IMPORT_ERROR', 'roi_warping_kernels',
     'type: "ROIWarping" bottom: "x" bottom: "rois" top: "y" roi_warping_param { pooled_h: 2 '
     'pooled_w: 2 spatial_scale: 1 }', [(1, 2, 4, 4), (1, 5)]),
]


@pytest.mark.parametrize('module,names,error_name,extension,text,shapes', CASES,
                         ids=[c[0] for c in CASES])
def test_missing_kernels_name_the_layer_the_extension_and_the_fix(monkeypatch, module, names,
                                                                  error_name, extension, text,
                                                                  shapes):
    mod = importlib.import_module('caffe.layers.' + module)
    arrays = [np.zeros(s, np.float32) for s in shapes]
    build_layer('name: "needs_kernels" ' + text, arrays)  # built: fine
    for name in names:
        assert hasattr(mod, name)
        monkeypatch.setattr(mod, name, None)
    monkeypatch.setattr(mod, error_name, ImportError('no module named %s' % extension),
                        raising=False)
    with pytest.raises(CaffeError) as info:
        build_layer('name: "needs_kernels" ' + text, arrays)
    message = str(info.value)
    assert 'needs_kernels' in message
    assert 'caffe.layers.%s' % extension in message
    assert 'no module named %s' % extension in message and 'run `make`' in message
