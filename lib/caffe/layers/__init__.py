"""Built-in layer types: importing this package registers every one of them.

The package is also pycaffe's net_spec `caffe.layers` (`from caffe import layers as L`): a
layer type name, which is CamelCase where the modules here are snake_case, gives the net_spec
function that describes such a layer (L.Convolution(bottom, num_output=...)).

Threads. The Cython kernels run OpenMP regions on all cores (omp_get_max_threads: OMP_NUM_THREADS,
else one per core) and numpy's OpenBLAS runs its own pool (OPENBLAS_NUM_THREADS, else one per
core). The two pools take turns, layer after layer. With libgomp's default wait policy a worker
keeps spinning for a while (GOMP_SPINCOUNT, 300000 pause loops: milliseconds) after each
parallel region, and holds a core the next matrix product's OpenBLAS thread needs; OpenBLAS's
static split then waits for its starved half, and on a machine with other work every hand-over
costs a scheduler time slice (a loaded 2-core machine ran the toy net's training 4-40 times
slower with both pools on than with either alone). So unless the user chose a wait policy, the
OpenMP workers sleep as soon as a region ends (OMP_WAIT_POLICY=PASSIVE); the kernels only go
parallel for work long enough to pay for waking them. libgomp reads the variable once, when it
is loaded: the first import of one of this package's extensions, below. OpenBLAS's workers spin
too, after each product, for 0.1 s by default; they are made to sleep after about 0.4 ms
(caffe.blas_threads) unless the user set OPENBLAS_THREAD_TIMEOUT.
"""
import importlib
import os
import pkgutil
import warnings


def _libgomp_loaded():
    try:
        with open('/proc/self/maps') as f:
            return any('libgomp' in line for line in f)
    except OSError:  # not Linux: nothing to tell
        return False


if 'OMP_WAIT_POLICY' not in os.environ and 'GOMP_SPINCOUNT' not in os.environ:
    if _libgomp_loaded():
        warnings.warn('libgomp was loaded before caffe.layers, with its default (spinning) wait '
                      'policy, which fights OpenBLAS\'s threads for the cores; set '
                      'OMP_WAIT_POLICY=PASSIVE in the environment (see docs/cpu_performance.md)',
                      RuntimeWarning, stacklevel=2)
    os.environ['OMP_WAIT_POLICY'] = 'PASSIVE'

from ..blas_threads import shorten_openblas_spin  # noqa: E402

shorten_openblas_spin()

for _info in pkgutil.iter_modules([os.path.dirname(__file__)]):
    importlib.import_module('.' + _info.name, __name__)


def __getattr__(name):
    if not name[:1].isupper():
        raise AttributeError('module %r has no attribute %r' % (__name__, name))
    from ..net_spec import layers
    return getattr(layers, name)
