"""The GPU backend's behaviour that needs no GPU: importing without pycuda, the one clear error
when the GPU is asked for but cannot be had, device selection rules, and the library finder's
search order and error message."""
import os
import subprocess
import sys

import pytest

import caffe
import caffe.gpu
from caffe.common import CaffeError
from caffe.gpu import libraries

import gpu_emulator

LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                   'lib')


def test_import_and_cpu_use_without_pycuda():
    # A fresh interpreter in which pycuda cannot be imported.
    code = '\n'.join([
        'import sys; sys.modules["pycuda"] = None',
        'import numpy as np, caffe, caffe.gpu, caffe.gpu.cudnn, caffe.gpu.cublas, nms.gpu_nms',
        'from caffe.testing import build_layer',
        'layer, bottom, top = build_layer(\'name: "r" type: "ReLU" bottom: "x" top: "y"\','
        ' [np.array([-1, 2], np.float32)])',
        'layer.forward(bottom, top)',
        'assert top[0].data.tolist() == [0, 2]',
        'print("ok")'])
    out = subprocess.run([sys.executable, '-c', code], cwd=LIB, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=LIB))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'ok'


@pytest.fixture
def fresh_backend(monkeypatch):
    """caffe.gpu with no context, restored afterwards."""
    monkeypatch.setattr(caffe.gpu, '_state', caffe.gpu._State())
    yield
    caffe.set_mode_cpu()


def test_set_mode_gpu_without_pycuda(monkeypatch, fresh_backend):
    monkeypatch.setitem(sys.modules, 'pycuda', None)
    monkeypatch.setitem(sys.modules, 'pycuda.driver', None)
    with pytest.raises(CaffeError) as e:
        caffe.set_mode_gpu()
    message = str(e.value)
    assert 'PyCUDA' in message and 'pip install -r requirements-gpu.txt' in message
    assert 'docs/gpu.md' in message
    assert caffe.common.mode() == caffe.common.CPU


@pytest.fixture
def fake_pycuda(monkeypatch, fresh_backend):
    for name, module in gpu_emulator.fake_pycuda_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    return gpu_emulator


def test_no_gpu_is_one_clear_error(fake_pycuda, monkeypatch):
    monkeypatch.setattr(gpu_emulator.FakeDevice, 'count_value', 0)
    with pytest.raises(CaffeError, match='no CUDA GPU found'):
        caffe.set_mode_gpu()
    assert caffe.common.mode() == caffe.common.CPU


def test_driver_failure_is_reported_as_no_gpu(fake_pycuda, monkeypatch):
    def failing_init(flags=0):
        raise RuntimeError('cuInit failed: no CUDA-capable device is detected')
    monkeypatch.setattr(sys.modules['pycuda.driver'], 'init', failing_init)
    with pytest.raises(CaffeError, match='no CUDA GPU found.*cuInit failed'):
        caffe.set_mode_gpu()


def test_device_out_of_range(fake_pycuda):
    with pytest.raises(CaffeError, match='GPU 3 does not exist: this machine has 1'):
        caffe.gpu.init(3)


def test_missing_library_is_reported_when_the_gpu_is_switched_on(fake_pycuda, monkeypatch,
                                                                 tmp_path):
    from caffe.gpu import cublas
    monkeypatch.setattr(cublas, '_lib', {})
    monkeypatch.setattr(libraries, 'site_dirs', lambda: [str(tmp_path)])
    real_load = libraries.load
    monkeypatch.setattr(libraries, 'load',
                        lambda spec, search_dirs=None, system=True: real_load(spec, search_dirs,
                                                                              system=False))
    for _ in range(2):  # a failed switch leaves nothing behind that makes the next one pass
        with pytest.raises(CaffeError, match=r'cuBLAS library not found.*pip install '
                                             r'nvidia-cublas'):
            caffe.set_mode_gpu()
        assert caffe.common.mode() == caffe.common.CPU
        assert caffe.gpu.current_device() is None


def test_device_can_change_only_before_arrays_exist(fake_pycuda, monkeypatch):
    with gpu_emulator.emulated_gpu():
        monkeypatch.setattr(gpu_emulator.FakeDevice, 'count_value', 2)
        caffe.gpu._release()
        caffe.gpu.init(0)
        caffe.gpu.init(1)          # set_mode_gpu() then set_device(1): nothing allocated yet
        assert caffe.gpu.current_device() == 1
        caffe.gpu.empty(4)
        caffe.gpu.init(1)          # the same device again: fine
        with pytest.raises(CaffeError, match='already holds arrays on GPU 1'):
            caffe.gpu.init(0)


# The library finder ------------------------------------------------------------------------------

def test_missing_library_error_names_library_folders_and_install_command(tmp_path):
    with pytest.raises(CaffeError) as e:
        libraries.load(libraries.CUDNN, search_dirs=[tmp_path], system=False)
    message = str(e.value)
    assert 'cuDNN 9 library not found (libcudnn.so.9)' in message
    assert str(tmp_path) in message and 'nvidia/cudnn/lib' in message
    assert 'pip install nvidia-cudnn-cu13' in message


def test_missing_cublas_names_both_sonames(tmp_path):
    with pytest.raises(CaffeError) as e:
        libraries.load(libraries.CUBLAS, search_dirs=[tmp_path], system=False)
    message = str(e.value)
    assert 'libcublas.so.13 or libcublas.so.12' in message
    assert 'pip install nvidia-cublas' in message


def test_unloadable_library_reports_why(tmp_path):
    folder = tmp_path / 'nvidia' / 'cudnn' / 'lib'
    folder.mkdir(parents=True)
    (folder / 'libcudnn.so.9').write_bytes(b'not an ELF file')
    with pytest.raises(CaffeError, match='loading failed'):
        libraries.load(libraries.CUDNN, search_dirs=[tmp_path], system=False)


def _shared_library(path, source, soname, link=()):
    subprocess.run([gpu_emulator.compiler(), '-shared', '-fPIC', '-x', 'c', '-',
                    '-Wl,-soname,' + soname, '-o', str(path)] + list(link),
                   input=source, text=True, check=True, capture_output=True)


@pytest.mark.skipif(gpu_emulator.compiler() is None, reason='no C compiler')
def test_wheel_folder_library_loads_with_its_neighbours(tmp_path):
    # A stand-in for the nvidia-cublas wheel: libcublas.so.13 needs libcublasLt.so.13 from the
    # same folder and carries no RUNPATH, so it loads only if the finder loads the neighbour first.
    folder = tmp_path / 'site' / 'nvidia' / 'cu13' / 'lib'
    folder.mkdir(parents=True)
    build = tmp_path / 'build'
    build.mkdir()
    _shared_library(folder / 'libcublasLt.so.13', 'int lt_answer(void) { return 41; }',
                    'libcublasLt.so.13')
    os.symlink(folder / 'libcublasLt.so.13', build / 'libcublasLt.so')
    _shared_library(folder / 'libcublas.so.13',
                    'int lt_answer(void);\nint answer(void) { return lt_answer() + 1; }',
                    'libcublas.so.13', ['-L%s' % build, '-lcublasLt'])
    lib, where = libraries.load(libraries.CUBLAS, search_dirs=[tmp_path / 'site'], system=False)
    assert where == str(folder / 'libcublas.so.13')
    assert lib.answer() == 42
