"""A pycaffe-compatible layer runtime: reads Caffe's .prototxt/.caffemodel/.solverstate files
and computes what Caffe (the Fast R-CNN fork) computes, on CPU (numpy + Cython) or GPU.

`import caffe` gives what pycaffe's does (docs/pycaffe.md lists it): caffe.io and caffe.proto
at once; Net, the solvers, Classifier and Detector on first use (they pull in the layers)."""
from . import blas_threads

blas_threads.ask_before_numpy()  # before io imports numpy (blas_threads says why)
blas_threads.prepare_openmp()   # before any of the runtime's extensions loads libgomp
blas_threads.opencv_on_the_calling_thread()

from . import io, proto  # noqa: E402,F401  (caffe.io and caffe.proto.caffe_pb2 right after import)
from .benchmark import Timer
from .blob import Blob
from .common import (CaffeError, init_log, log, set_device, set_mode_cpu, set_mode_gpu,
                     set_multiprocess, set_random_seed, set_solver_count, set_solver_rank,
                     solver_count, solver_rank)
from .layer import TEST, TRAIN, Layer, Phase, layer_type_list
from .net_spec import NetSpec, params, to_proto

# The Caffe release whose pycaffe interface this runtime provides (pycaffe's caffe.__version__).
__version__ = '1.0.0'

_SOLVERS = ('Solver', 'SGDSolver', 'NesterovSolver', 'AdaGradSolver', 'RMSPropSolver',
            'AdaDeltaSolver', 'AdamSolver', 'get_solver')

__all__ = ['Blob', 'CaffeError', 'Classifier', 'Detector', 'Layer', 'NCCL', 'Net', 'NetSpec',
           'Phase', 'TEST', 'TRAIN', 'Timer', 'has_nccl', 'init_log', 'io', 'layer_type_list',
           'layers', 'log', 'params', 'proto', 'set_device', 'set_mode_cpu', 'set_mode_gpu',
           'set_multiprocess', 'set_random_seed', 'set_solver_count', 'set_solver_rank',
           'solver_count', 'solver_rank', 'to_proto'] + list(_SOLVERS)


def __getattr__(name):
    # Imported on first use, so layer code can import caffe cheaply.
    if name == 'Net':
        from .net import Net
        return Net
    if name in _SOLVERS:
        from . import sgd_solvers
        return getattr(sgd_solvers, name)
    if name in ('NCCL', 'has_nccl'):
        from . import parallel
        return getattr(parallel, name)
    if name == 'Classifier':
        from .classifier import Classifier
        return Classifier
    if name == 'Detector':
        from .detector import Detector
        return Detector
    if name in ('layers', 'draw', 'coord_map'):
        # Submodules on first use. caffe.layers is both the package of built-in layer types and
        # pycaffe's net_spec `layers` (L.Convolution(...)): the package answers unknown
        # CamelCase names with net_spec layer functions.
        import importlib
        return importlib.import_module('.' + name, __name__)
    raise AttributeError('module caffe has no attribute %r' % name)
