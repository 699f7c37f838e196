"""Built-in layer types: importing this package registers every one of them.

The package is also pycaffe's net_spec `caffe.layers` (`from caffe import layers as L`): a
layer type name, which is CamelCase where the modules here are snake_case, gives the net_spec
function that describes such a layer (L.Convolution(bottom, num_output=...)).

Threads: the kernels here, and the matrix products (caffe.gemm), run on one pool of OpenMP
threads, set up by `import caffe` before libgomp loads (caffe.blas_threads.prepare_openmp).
"""
import importlib
import os
import pkgutil

for _info in pkgutil.iter_modules([os.path.dirname(__file__)]):
    importlib.import_module('.' + _info.name, __name__)


def __getattr__(name):
    if not name[:1].isupper():
        raise AttributeError('module %r has no attribute %r' % (__name__, name))
    from ..net_spec import layers
    return getattr(layers, name)
