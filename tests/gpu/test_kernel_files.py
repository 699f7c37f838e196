"""caffe.gpu.Kernel finds a kernel file by a bare name among the runtime's own kernels, or by an
absolute path beside the code that launches it; the runtime ships no detection kernels."""
import os

import numpy as np
import pytest

import caffe
from caffe import gpu
from caffe.common import CaffeError

# A kernel kept outside the runtime that still uses the runtime's common.cuh.
OUTSIDE = r'''
#include "common.cuh"

extern "C" __global__ void add_offset(int n, float offset, float* x) {
  FOR_EACH_INDEX(i, n) { x[i] = x[i] + offset; }
}
'''


def test_bare_names_resolve_in_the_runtime_kernels_and_absolute_paths_as_given(tmp_path):
    assert gpu.kernel_path('elementwise.cu') == os.path.join(gpu.KERNEL_DIR, 'elementwise.cu')
    outside = str(tmp_path / 'mine.cu')
    assert gpu.kernel_path(outside) == outside
    with pytest.raises(CaffeError, match='bare name.*absolute path'):
        gpu.kernel_path(os.path.join('somewhere', 'mine.cu'))
    with pytest.raises(CaffeError, match='missing.cu'):
        gpu.kernel_source(str(tmp_path / 'missing.cu'))


def test_the_runtime_ships_no_detection_kernels():
    kernels = os.listdir(gpu.KERNEL_DIR)
    assert 'nms.cu' not in kernels
    import nms.gpu_nms
    assert os.path.isfile(os.path.join(os.path.dirname(nms.gpu_nms.__file__), 'nms.cu'))


def test_kernel_beside_its_caller_compiles_and_runs(tmp_path, backend):
    path = tmp_path / 'mine.cu'
    path.write_text(OUTSIDE)
    caffe.set_mode_gpu()
    x = gpu.to_device(np.arange(7, dtype=np.float32))
    gpu.Kernel(str(path), 'add_offset')(7, 2.5, x)
    np.testing.assert_array_equal(x.get(), np.arange(7, dtype=np.float32) + 2.5)
