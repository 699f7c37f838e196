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
