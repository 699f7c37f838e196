"""Sums that come out the same on the CPU and the GPU, at any thread count.

A kernel adds its terms in double, in element order, over fixed runs of CHUNK elements (or
positions), one partial sum per run, each run on one thread; the host then adds the partial
sums with math.fsum, which rounds their exact sum once, so no order is left to matter. The CPU
kernels (Cython) and the CUDA kernels cut the same runs, so both paths give the same partial
sums from the same terms. (Caffe adds its terms in float, in its BLAS's or its loop's order;
these sums are closer to the exact ones than any such order.)"""
import math

import numpy as np

CHUNK = 1024


def runs(n, chunk=CHUNK):
    """How many runs cover n terms."""
    return (int(n) + chunk - 1) // chunk


def total(partials):
    """The exactly rounded sum of the partial sums (a host array or a device array)."""
    if hasattr(partials, 'get'):
        partials = partials.get()
    return math.fsum(np.asarray(partials, dtype=np.float64).ravel())
