"""caffe.blas_threads: importing the layers holds numpy's OpenBLAS at one thread (caffe.gemm
runs the products' threads), the OpenBLAS workers started with numpy sleep soon
(OPENBLAS_THREAD_TIMEOUT 20 unless the user set it), and the cores the runtime uses respect the
process's cgroup CPU quota."""
import os
import subprocess
import sys

import pytest

from caffe.blas_threads import SPIN_EXPONENT, available_cores, numpy_openblas

LIB = os.path.join(os.path.dirname(__file__), '..', '..', 'lib')
# numpy loaded (and its OpenBLAS threads started) before the layers are imported.
CODE = '''
import ctypes
import numpy as np
from caffe.blas_threads import numpy_openblas
path, _, get_threads, _, _ = numpy_openblas()
threads = ctypes.CFUNCTYPE(ctypes.c_int)(get_threads)
before = threads()
import caffe.layers
print(before, threads())
'''


@pytest.mark.skipif(numpy_openblas() is None, reason="numpy's BLAS is not OpenBLAS")
@pytest.mark.parametrize('user', [None, '2'])
def test_importing_the_layers_holds_openblas_at_one_thread(user):
    env = {k: v for k, v in os.environ.items() if k not in ('OPENBLAS_NUM_THREADS',
                                                            'OMP_NUM_THREADS')}
    env.update(PYTHONPATH=LIB, **({'OPENBLAS_NUM_THREADS': user} if user else {}))
    before, after = subprocess.run([sys.executable, '-c', CODE], env=env,
                                   stdout=subprocess.PIPE, text=True, check=True).stdout.split()
    assert int(before) == int(user or os.cpu_count()) and int(after) == 1


TOOLS = os.path.join(os.path.dirname(__file__), '..', '..', 'tools')
BEFORE_NUMPY = '''
import os, sys
sys.path.insert(0, %r)
import %s
loaded = 'numpy' in sys.modules
import numpy
print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'), loaded)
'''


@pytest.mark.parametrize('first', ['caffe', '_init_paths'])
@pytest.mark.parametrize('user', [None, '25'])
def test_caffe_and_the_tools_set_the_timeout_before_numpy_loads(first, user):
    # OpenBLAS builds that do not export openblas_read_env (numpy 2.5's) read it only at load.
    clean = {k: v for k, v in os.environ.items() if k != 'OPENBLAS_THREAD_TIMEOUT'}
    env = dict(clean, **({'OPENBLAS_THREAD_TIMEOUT': user} if user else {}))
    code = BEFORE_NUMPY % (LIB if first == 'caffe' else TOOLS, first)
    out = subprocess.run([sys.executable, '-c', code], env=env, stdout=subprocess.PIPE,
                         text=True, check=True).stdout.split()
    expected = user or str(SPIN_EXPONENT)
    if first == 'caffe':
        # caffe.io loads numpy right after: only the variable's value is checked here
        assert out[0] == expected
    else:
        assert out == [expected, 'False']


def test_too_late_once_numpy_is_loaded(monkeypatch):
    from caffe.blas_threads import ask_before_numpy
    monkeypatch.delenv('OPENBLAS_THREAD_TIMEOUT', raising=False)
    assert 'numpy' in sys.modules and ask_before_numpy() is False
    assert 'OPENBLAS_THREAD_TIMEOUT' not in os.environ


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)


def test_available_cores_follow_a_cgroup_v2_quota(tmp_path):
    write(str(tmp_path / 'proc'), '0::/jobs/one\n')
    write(str(tmp_path / 'jobs' / 'cpu.max'), '150000 100000\n')      # the parent: 1.5 CPUs
    write(str(tmp_path / 'jobs' / 'one' / 'cpu.max'), 'max 100000\n')
    cores = available_cores(str(tmp_path), str(tmp_path / 'proc'))
    assert cores == min(2, len(os.sched_getaffinity(0)))


def test_available_cores_follow_a_cgroup_v1_quota(tmp_path):
    write(str(tmp_path / 'proc'), '4:memory:/x\n3:cpu,cpuacct:/docker/abc\n')
    write(str(tmp_path / 'cpu' / 'docker' / 'abc' / 'cpu.cfs_quota_us'), '100000\n')
    write(str(tmp_path / 'cpu' / 'docker' / 'abc' / 'cpu.cfs_period_us'), '100000\n')
    write(str(tmp_path / 'cpu' / 'cpu.cfs_quota_us'), '-1\n')
    write(str(tmp_path / 'cpu' / 'cpu.cfs_period_us'), '100000\n')
    assert available_cores(str(tmp_path), str(tmp_path / 'proc')) == 1


def test_no_quota_means_the_affinity(tmp_path):
    write(str(tmp_path / 'proc'), '0::/\n')
    write(str(tmp_path / 'cpu.max'), 'max 100000\n')
    assert available_cores(str(tmp_path), str(tmp_path / 'proc')) == len(os.sched_getaffinity(0))
    assert available_cores(str(tmp_path), str(tmp_path / 'missing')) == \
        len(os.sched_getaffinity(0))


def test_openmp_threads_follow_the_quota_unless_the_user_chose(monkeypatch):
    from caffe import blas_threads
    monkeypatch.setattr(blas_threads, 'available_cores', lambda: 1)
    monkeypatch.setattr(blas_threads, 'affinity_cores', lambda: 4)
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    monkeypatch.setenv('OMP_WAIT_POLICY', 'PASSIVE')
    blas_threads.prepare_openmp()
    assert os.environ['OMP_NUM_THREADS'] == '1'
    monkeypatch.setenv('OMP_NUM_THREADS', '3')
    blas_threads.prepare_openmp()
    assert os.environ['OMP_NUM_THREADS'] == '3'


@pytest.mark.parametrize('cv2_first', [False, True])
@pytest.mark.parametrize('user', [None, '2'])
def test_opencv_runs_on_the_calling_thread_unless_the_user_chose(cv2_first, user):
    order = 'import cv2, caffe' if cv2_first else 'import caffe, cv2'
    env = {k: v for k, v in os.environ.items() if k != 'OPENCV_FOR_THREADS_NUM'}
    env.update(PYTHONPATH=LIB, **({'OPENCV_FOR_THREADS_NUM': user} if user else {}))
    out = subprocess.run([sys.executable, '-c', order + '; print(cv2.getNumThreads())'],
                         env=env, stdout=subprocess.PIPE, text=True, check=True).stdout
    assert int(out) == (int(user) if user else 1)
