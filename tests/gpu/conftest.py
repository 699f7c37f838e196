"""tests/gpu: the tests marked `gpu` need a CUDA GPU (the root conftest skips them without one);
the others (the backend's CPU-side behaviour, the emulated GPU paths) run everywhere."""
import pytest


@pytest.fixture(autouse=True)
def cpu_mode_after():
    """The runtime back in CPU mode after each test, whatever mode it switched to."""
    yield
    import caffe
    caffe.set_mode_cpu()


@pytest.fixture(params=['emulated', pytest.param('cuda', marks=pytest.mark.gpu)])
def backend(request):
    """The GPU backend a test runs on: 'emulated' (the CPU emulator, everywhere a C++ compiler
    is found) or 'cuda' (a real GPU; marked gpu). The mode is CPU when the test starts; tests
    switch with caffe.set_mode_gpu() / set_mode_cpu()."""
    import caffe
    if request.param == 'emulated':
        import gpu_emulator
        if gpu_emulator.compiler() is None:
            pytest.skip('no C++ compiler to build the emulated kernels')
        with gpu_emulator.emulated_gpu() as fakes:
            caffe.set_mode_cpu()
            yield fakes
        return
    caffe.set_mode_gpu()
    caffe.set_mode_cpu()
    try:
        yield None
    finally:
        caffe.set_mode_cpu()


@pytest.fixture
def emulated(backend, request):
    """Only the emulated backend (for tests that inspect what the fake libraries were asked)."""
    if backend is None:
        pytest.skip('inspects the emulator\'s fake libraries')
    return backend
