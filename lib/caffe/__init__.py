"""A pycaffe-compatible layer runtime: reads Caffe's .prototxt/.caffemodel/.solverstate files
and computes what Caffe (the Fast R-CNN fork) computes, on CPU (numpy + Cython) or GPU."""
from .blob import Blob
from .common import (CaffeError, set_mode_cpu, set_mode_gpu, set_device, set_random_seed)
from .common import (set_solver_count, solver_count, set_solver_rank, solver_rank,
                     set_multiprocess)
from .layer import Layer, TRAIN, TEST

__all__ = ['Blob', 'CaffeError', 'Layer', 'Net', 'SGDSolver', 'get_solver', 'TRAIN', 'TEST',
           'set_mode_cpu', 'set_mode_gpu', 'set_device', 'set_random_seed']
__all__ += ['Solver', 'NesterovSolver', 'AdaGradSolver', 'RMSPropSolver', 'AdaDeltaSolver',
            'AdamSolver', 'set_solver_count', 'solver_count', 'set_solver_rank', 'solver_rank',
            'set_multiprocess']

_SOLVERS = ('Solver', 'SGDSolver', 'NesterovSolver', 'AdaGradSolver', 'RMSPropSolver',
            'AdaDeltaSolver', 'AdamSolver', 'get_solver')


def __getattr__(name):
    # Net and the solvers are imported on first use, so layer code can import caffe cheaply.
    if name == 'Net':
        from .net import Net
        return Net
    if name in _SOLVERS:
        from . import sgd_solvers
        return getattr(sgd_solvers, name)
    raise AttributeError('module caffe has no attribute %r' % name)
