"""tests/parallel: the tests start their own MPI jobs and rank processes (bounded in time,
loopback only). The GPU emulator (tests/gpu/gpu_emulator.py) is importable here."""
import os
import sys

import pytest

GPU_TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'gpu')
if GPU_TESTS not in sys.path:
    sys.path.insert(0, GPU_TESTS)


@pytest.fixture
def emulated():
    """caffe in GPU mode on the emulator for the duration of the test."""
    import caffe
    import gpu_emulator
    if gpu_emulator.compiler() is None:
        pytest.skip('no C++ compiler to build the emulated kernels')
    with gpu_emulator.emulated_gpu() as fakes:
        yield fakes
    caffe.set_mode_cpu()
