"""caffe.blas_threads: importing the layers makes numpy's OpenBLAS workers sleep soon after a
product (OPENBLAS_THREAD_TIMEOUT 20) unless the user set the variable, and the restarted
OpenBLAS still computes products on its threads."""
import os
import subprocess
import sys

import pytest

from caffe.blas_threads import SPIN_EXPONENT, _loaded_openblas

LIB = os.path.join(os.path.dirname(__file__), '..', '..', 'lib')
# A product before the import (the OpenBLAS threads are running), then one after it.
CODE = '''
import numpy as np
a = np.random.RandomState(0).rand(300, 300).astype(np.float32)
before = a @ a
import caffe.layers
from caffe.blas_threads import _loaded_openblas
after = a @ a
print(_loaded_openblas().openblas_thread_timeout(), bool((before == after).all()))
'''


def run(**env):
    clean = {k: v for k, v in os.environ.items() if k != 'OPENBLAS_THREAD_TIMEOUT'}
    return subprocess.run([sys.executable, '-c', CODE], env=dict(clean, PYTHONPATH=LIB, **env),
                          stdout=subprocess.PIPE, text=True, check=True).stdout.split()


@pytest.mark.skipif(_loaded_openblas() is None, reason="numpy's BLAS is not OpenBLAS")
def test_importing_the_layers_shortens_openblas_spin():
    timeout, same = run()
    assert int(timeout) == SPIN_EXPONENT and same == 'True'


@pytest.mark.skipif(_loaded_openblas() is None, reason="numpy's BLAS is not OpenBLAS")
def test_a_timeout_the_user_set_is_kept():
    timeout, same = run(OPENBLAS_THREAD_TIMEOUT='25')
    assert int(timeout) == 25 and same == 'True'


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
