"""Every layer type on the GPU backend against its CPU path, and GPU gradient checks.

Each test runs twice (conftest's `backend`): on a real GPU ('cuda', marked gpu: skipped without
one) and on the CPU emulator of the GPU backend ('emulated': the .cu kernels compiled for the
host, pycuda/cuBLAS/cuDNN replaced by host stand-ins), so the GPU code paths are exercised even
where no GPU is. Forward and backward must give what the CPU path gives: bit for bit where the
kernels repeat the CPU code's float32 operations, else within float32 tolerance."""
import numpy as np
import pytest

import caffe
from caffe.testing import build_layer, check_gradient

from gpu_layer_cases import CASES, assert_same, run_layer

GRAD_CASES = [c for c in CASES if c.grad is not None]


@pytest.mark.parametrize('c', CASES, ids=[c.name for c in CASES])
def test_gpu_matches_cpu(c, backend):
    cpu = run_layer(c, gpu=False)
    gpu = run_layer(c, gpu=True, params=cpu[3])
    assert_same(c, cpu, gpu)


@pytest.mark.parametrize('c', GRAD_CASES, ids=[c.name for c in GRAD_CASES])
def test_gpu_gradient(c, backend):
    rs = np.random.RandomState(5)
    caffe.set_mode_gpu()
    layer, bottom, top = build_layer(c.text, c.bottoms(rs), phase=c.phase)
    check_gradient(layer, bottom, top, **c.grad)


def test_layers_run_on_device_arrays(backend):
    # The GPU path must use device copies, not fall back to the CPU code: after a GPU forward
    # the top's newest copy is the device one.
    c = next(c for c in CASES if c.name == 'pool_ave_pad')
    caffe.set_mode_gpu()
    layer, bottom, top = build_layer(c.text, c.bottoms(np.random.RandomState(0)))
    layer.forward(bottom, top)
    assert top[0]._data._head == 'device'


def _case(name):
    return next(c for c in CASES if c.name == name)


def test_convolution_runs_in_float32_math(emulated):
    run_layer(_case('conv_group_pad_stride_dilation'), gpu=True)
    # Every cuDNN forward ran under CUDNN_FMA_MATH (3), with the deterministic algorithm the
    # fake offers (it fails a call whose algorithm's workspace is missing).
    assert emulated.cudnn.calls and all(math == 3 for _, math in emulated.cudnn.calls)


def test_tf32_switch_reaches_cudnn_and_cublas(emulated):
    from caffe import gpu
    try:
        gpu.set_allow_tf32(True)
        run_layer(_case('conv_3x3'), gpu=True)
        run_layer(_case('inner_product'), gpu=True)
        assert emulated.cudnn.calls[-1][1] == 0      # CUDNN_DEFAULT_MATH: TF32 allowed
        assert emulated.cublas.math_mode == 3        # CUBLAS_TF32_TENSOR_OP_MATH
    finally:
        gpu.set_allow_tf32(False)
    run_layer(_case('conv_3x3'), gpu=True)
    run_layer(_case('inner_product'), gpu=True)
    assert emulated.cudnn.calls[-1][1] == 3
    assert emulated.cublas.math_mode == 0


def test_inner_product_gemm_is_the_swapped_column_major_product(emulated):
    run_layer(_case('inner_product'), gpu=True)
    # Forward y (5 x 7) = x (5 x 12) W^T: cuBLAS computes y^T = W x^T, m = 7, n = 5, k = 12, with
    # W transposed (row-major W read column-major is W^T) and x^T as it lies.
    assert emulated.cublas.calls[0] == (1, 0, 7, 5, 12)


def test_blobs_round_trip_and_empty_blobs(backend):
    from caffe.blob import Blob
    caffe.set_mode_gpu()
    b = Blob((2, 3))
    b.data[...] = np.arange(6).reshape(2, 3)
    d = b.mutable_gpu_data()
    assert d.shape == (2, 3)
    np.testing.assert_array_equal(d.get(), np.arange(6).reshape(2, 3))
    caffe.gpu.zero(d)
    np.testing.assert_array_equal(b.data, 0)
    empty = Blob((0, 5))
    assert empty.gpu_data().shape == (0, 5)
    assert empty.mutable_gpu_diff().size == 0
    assert empty.data.shape == (0, 5)


def test_every_layer_type_has_a_gpu_case():
    import caffe.layers  # noqa: F401  (registers the built-in types)
    from caffe.layer import LAYERS
    from caffe.testing import layer_param
    covered = {layer_param(c.text).type for c in CASES}
    assert set(LAYERS) <= covered, 'layer types without a GPU case: %s' % (set(LAYERS) - covered)
    # Each type has GPU code of its own (its class's or a shared base's), not the base Layer's
    # fall-back to the CPU code.
    from caffe.layer import Layer
    for name, cls in LAYERS.items():
        assert cls.forward_gpu is not Layer.forward_gpu, name
        assert cls.backward_gpu is not Layer.backward_gpu, name
