"""The SGD solver's CPU update in one pass (sgd_solvers.SGDSolver.update_cpu).

For each element of one learnable parameter, in Caffe's order (Solver::Normalize, Regularize,
SGDSolver::ComputeUpdateValue, Net::Update), every operation rounded to float32 on its own as
the numpy steps of Solver.update_cpu round them (lib/setup.py: no fused multiply-adds):
    g = g * (1 / iter_size)            when iter_size > 1
    g = g + w * decay                  L2 weight decay, when decay != 0
    h = h * momentum;  g = g * rate;  h = h + g;  g = h
    w = w - g
The diff ends holding the update value, as Caffe's does. Blocks go to the OpenMP threads on
demand.
"""
from cython.parallel cimport prange

from .layers._parallel cimport threads_for

cdef enum:
    BLOCK = 1 << 14          # elements per unit of work


cdef void _sgd_block(float* w, float* g, float* h, Py_ssize_t n, float rate, float momentum,
                     float decay, float normalizer, bint normalize,
                     bint regularize) noexcept nogil:
    cdef Py_ssize_t i
    cdef float gi, hi
    for i in range(n):
        gi = g[i]
        if normalize:
            gi = gi * normalizer
        if regularize:
            gi = gi + w[i] * decay
        hi = h[i] * momentum
        gi = gi * rate
        hi = hi + gi
        h[i] = hi
        g[i] = hi
        w[i] = w[i] - hi


def sgd_update(float[::1] data, float[::1] diff, float[::1] history, float rate,
               float momentum, float decay, int iter_size):
    """Updates one parameter in place (data, diff, momentum history), as above; rate is the
    local rate (the policy's rate * lr_mult), decay the L2 weight decay * decay_mult."""
    cdef Py_ssize_t n = data.shape[0], b
    if diff.shape[0] != n or history.shape[0] != n:
        raise ValueError('sgd_update: data, diff and history of %d, %d and %d elements'
                         % (n, diff.shape[0], history.shape[0]))
    if iter_size < 1:
        raise ValueError('sgd_update: iter_size must be at least 1, not %d' % iter_size)
    if n == 0:
        return
    cdef float normalizer = <float>1 / <float>iter_size
    cdef bint normalize = iter_size > 1, regularize = decay != 0
    cdef float* w = &data[0]
    cdef float* g = &diff[0]
    cdef float* h = &history[0]
    for b in prange((n + BLOCK - 1) // BLOCK, nogil=True, schedule='dynamic',
                    num_threads=threads_for(n)):
        _sgd_block(w + b * BLOCK, g + b * BLOCK, h + b * BLOCK,
                   min(<Py_ssize_t>BLOCK, n - b * BLOCK), rate, momentum, decay, normalizer,
                   normalize, regularize)
