"""How long numpy's OpenBLAS threads spin after a matrix product (OPENBLAS_THREAD_TIMEOUT).

After each product OpenBLAS's worker threads keep polling for the next one for 2^28 clock
cycles (about 0.1 s) before they sleep: a worker holds a core that long. The CPU layers run
their element-wise kernels (ReLU, LRN, pooling, ...) between products on OpenMP threads, which
then share the cores with the spinning workers; on 2 cores ZF's LRN and pooling took twice
their time. caffe.layers therefore asks for 2^20 cycles (about 0.4 ms: the products of one
layer, and of small layers run one after another, still find the workers awake; waking them
costs more than such a spin) unless the user set OPENBLAS_THREAD_TIMEOUT. OpenBLAS
reads the variable when it starts its threads, which numpy's import has done already; the
threads are restarted (OpenBLAS's own blas_thread_shutdown_, which it also runs after a fork;
the next product starts them again with the new timeout).

Some OpenBLAS builds export neither call (numpy 2.5's): there the variable works only when set
before numpy loads OpenBLAS. `import caffe` therefore sets it when numpy is not loaded yet, and
so do the tools (tools/_init_paths.py, before they import numpy).
"""
import ctypes
import os
import sys

SPIN_EXPONENT = 20


def ask_before_numpy(exponent=SPIN_EXPONENT):
    """Sets OPENBLAS_THREAD_TIMEOUT to exponent (unless the user set it) if numpy is not loaded
    yet, so that its OpenBLAS starts with the short spin whatever it exports. Returns whether
    numpy was still to load."""
    if 'numpy' in sys.modules:
        return False
    os.environ.setdefault('OPENBLAS_THREAD_TIMEOUT', str(int(exponent)))
    return True


def _loaded_openblas():
    """numpy's OpenBLAS, if this process has one loaded (a path in /proc/self/maps)."""
    try:
        with open('/proc/self/maps') as f:
            paths = {line.split()[-1] for line in f if 'openblas' in line.lower()}
    except OSError:  # not Linux: leave OpenBLAS as it is
        return None
    for path in sorted(paths):
        if '.so' in os.path.basename(path):
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            if all(hasattr(lib, name) for name in ('openblas_read_env', 'blas_thread_shutdown_',
                                                    'openblas_thread_timeout')):
                return lib
    return None


def shorten_openblas_spin(exponent=SPIN_EXPONENT):
    """Makes numpy's OpenBLAS threads sleep 2^exponent cycles after a product, unless
    OPENBLAS_THREAD_TIMEOUT is set. Returns the exponent in force afterwards (None where numpy
    has no OpenBLAS with its own thread pool, e.g. MKL or an OpenMP build)."""
    import numpy  # noqa: F401  (loads numpy's BLAS)
    lib = _loaded_openblas()
    if lib is None:
        return None
    lib.openblas_thread_timeout.restype = ctypes.c_int
    if 'OPENBLAS_THREAD_TIMEOUT' not in os.environ:
        os.environ['OPENBLAS_THREAD_TIMEOUT'] = str(int(exponent))
        lib.openblas_read_env()
        lib.blas_thread_shutdown_()
    return lib.openblas_thread_timeout()
