"""A pycaffe-compatible layer runtime: reads Caffe's .prototxt/.caffemodel/.solverstate files
and computes what Caffe (the Fast R-CNN fork) computes, on CPU (numpy + Cython) or GPU."""
from .blob import Blob
from .common import (CaffeError, set_mode_cpu, set_mode_gpu, set_device, set_random_seed)
from .layer import Layer, TRAIN, TEST

__all__ = ['Blob', 'CaffeError', 'Layer', 'Net', 'SGDSolver', 'get_solver', 'TRAIN', 'TEST',
           'set_mode_cpu', 'set_mode_gpu', 'set_device', 'set_random_seed']


def __getattr__(name):
    # Net and the solvers are imported on first use, so layer code can import caffe cheaply.
    if name == 'Net':
        from .net import Net
        return Net
    if name in ('SGDSolver', 'get_solver'):
        from . import solver
        return getattr(solver, name)
    raise AttributeError('module caffe has no attribute %r' % name)
