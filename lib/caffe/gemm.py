"""The CPU layers' matrix products (Caffe's caffe_cpu_gemm): the same bits at any thread count.

numpy's OpenBLAS gives a product's result by its thread count: it splits the result among its
threads, and its kernels sum the edge tiles of each share in another order, so a 96 x 2000 x 27
product differs in 5697 elements between 1 and 2 threads, 40216 at 3 (docs/cpu_performance.md,
"One model for one seed"). A seeded training then gave another model at every thread count and
CPU load. Its threads also wait for each other by spinning (caffe.blas_threads).

Here OpenBLAS runs on one thread, and a product is cut into parts by its shape alone, each part
one single-threaded sgemm call, the parts shared out to the OpenMP threads on demand
(caffe/gemm_kernels.pyx). The same shapes give the same parts whatever the thread count or load,
so the same bits; a thread that is late (a busy machine) costs only the parts it would have
taken, and no thread spins. `matmul` is numpy's matmul where numpy's BLAS is not an OpenBLAS it
can bind (MKL, Accelerate), or where gemm_kernels is not built: then results follow that
library's threads (a RuntimeWarning says so at import).
"""
import warnings

import numpy as np

from . import blas_threads

try:
    from . import gemm_kernels as _kernels
except ImportError as e:  # not built: numpy's products, as the layers had before
    _kernels = None
    warnings.warn('caffe.gemm_kernels is not built (run make): matrix products use numpy\'s '
                  'BLAS threads, and a seeded run may give other numbers at other thread '
                  'counts (%s)' % e, RuntimeWarning)


def _bind():
    """Holds numpy's OpenBLAS at one thread and hands its sgemm to the kernels; returns the
    library's path, or False (with a RuntimeWarning) where numpy's BLAS is no such OpenBLAS."""
    found = blas_threads.numpy_openblas()
    if found is None:
        warnings.warn('numpy\'s BLAS is not an OpenBLAS this runtime can hold at one thread: '
                      'matrix products use its own threads, and a seeded run may give other '
                      'numbers at other thread counts (docs/cpu_performance.md)', RuntimeWarning,
                      stacklevel=2)
        return False
    path, sgemm, get_threads, set_threads, ilp64 = found
    _kernels.bind(sgemm, get_threads, set_threads, ilp64)
    return path


BOUND = _bind() if _kernels is not None else False  # numpy's OpenBLAS, where bound


def _stack(x):
    return x[None] if x.ndim == 2 else x


def matmul(a, b, out, accumulate=False):
    """out = a @ b, or out += a @ b where accumulate (Caffe's beta = 1), for float32 matrices or
    stacks of them (a (g, m, k) or (m, k), b (g, k, n) or (k, n), out (g, m, n) or (m, n)),
    transposed views and column slices included. Returns out."""
    if (_kernels is not None and a.dtype == b.dtype == out.dtype == np.float32
            and out.ndim in (2, 3)
            and a.ndim <= out.ndim and b.ndim <= out.ndim
            and _kernels.sgemm(_stack(a), _stack(b), _stack(out), accumulate)):
        return out
    # No layout sgemm takes (or no OpenBLAS): numpy's own product, through a temporary when
    # accumulating (numpy's matmul has no beta = 1).
    if accumulate:
        out += np.matmul(a, b)
    else:
        np.matmul(a, b, out=out)
    return out
