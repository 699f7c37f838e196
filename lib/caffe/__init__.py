"""A pycaffe-compatible layer runtime: reads Caffe's .prototxt/.caffemodel/.solverstate files
and computes what Caffe (the Fast R-CNN fork) computes, on CPU (numpy + Cython) or GPU."""
from .blob import Blob
from .common import (CaffeError, set_mode_cpu, set_mode_gpu, set_device, set_random_seed)
from .layer import Layer, TRAIN, TEST
from .net import Net
from .solver import SGDSolver, get_solver

__all__ = ['Blob', 'CaffeError', 'Layer', 'Net', 'SGDSolver', 'get_solver', 'TRAIN', 'TEST',
           'set_mode_cpu', 'set_mode_gpu', 'set_device', 'set_random_seed']
