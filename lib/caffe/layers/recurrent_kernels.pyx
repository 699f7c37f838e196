"""CPU kernels of the recurrent layers (LSTMUnit, LSTM, RNN): the host counterparts of
gpu/kernels/recurrent.cu, with the same names.

Caffe's LSTMUnit computes its sigmoid as 1. / (1. + exp(-x)) and its tanh as
2. * sigmoid(2. * x) - 1.: double constants, so both are evaluated in double and rounded once to
float; the rest (c = f * c_prev + i * g, the gradient products) is float32, one rounding per
operation (lib/setup.py builds without fused multiply-adds). These kernels do the same. TanH
(the RNN's neurons) is tanh in double, rounded to float. Each element is computed on its own, so
the results do not depend on the number of threads.
"""
from cython.parallel cimport prange
from libc.math cimport exp, tanh

from ._parallel cimport threads_above

cdef enum:
    # elements of (streams x hidden) below which the calling thread does everything
    PARALLEL_MIN = 1 << 15


cdef inline float _sigmoid(float x) noexcept nogil:
    return <float>(1.0 / (1.0 + exp(-<double>x)))


cdef inline float _tanh2(float x) noexcept nogil:
    # LSTMUnit's tanh: 2 * sigmoid(2x) - 1, in double
    return <float>(2.0 * (1.0 / (1.0 + exp(-2.0 * <double>x))) - 1.0)


cdef int _check(Py_ssize_t got, Py_ssize_t want, str what) except -1:
    if got != want:
        raise ValueError('%s: %d elements, expected %d' % (what, got, want))
    return 0


def lstm_unit_forward(const float[:, ::1] c_prev, const float[:, ::1] gates,
                      const float[::1] cont, float[:, ::1] c, float[:, ::1] h):
    """One LSTM step for N streams of D units: gates (N, 4D) are the pre-activations in Caffe's
    order i, f, o, g; f is 0 where cont is 0 (a sequence starts: the old cell is forgotten),
    else cont * sigmoid; c = f * c_prev + i * g; h = o * tanh(c)."""
    cdef Py_ssize_t n = c_prev.shape[0], d = c_prev.shape[1], k, j, s
    _check(gates.shape[0] * gates.shape[1], 4 * n * d, 'lstm_unit_forward gates')
    _check(cont.shape[0], n, 'lstm_unit_forward cont')
    _check(c.shape[0] * c.shape[1], n * d, 'lstm_unit_forward c')
    _check(h.shape[0] * h.shape[1], n * d, 'lstm_unit_forward h')
    cdef float i_, f, o, g, cv
    for k in prange(n * d, nogil=True, schedule='static',
                    num_threads=threads_above(n * d, PARALLEL_MIN)):
        s = k // d
        j = k - s * d
        i_ = _sigmoid(gates[s, j])
        if cont[s] == 0:
            f = 0
        else:
            f = cont[s] * _sigmoid(gates[s, d + j])
        o = _sigmoid(gates[s, 2 * d + j])
        g = _tanh2(gates[s, 3 * d + j])
        cv = f * c_prev[s, j] + i_ * g
        c[s, j] = cv
        h[s, j] = o * _tanh2(cv)


def lstm_unit_backward(const float[:, ::1] c_prev, const float[:, ::1] gates,
                       const float[::1] cont, const float[:, ::1] c, const float[:, ::1] c_diff,
                       const float[:, ::1] h_diff, float[:, ::1] c_prev_diff,
                       float[:, ::1] gates_diff):
    """The gradients of lstm_unit_forward: gates_diff (N, 4D) and c_prev_diff (N, D), written
    (not accumulated), from the diffs of c and h. The forget gate's is Caffe's f * (1 - f) with
    f = cont * sigmoid: the derivative for markers 0 and 1 (what Caffe's nets use), not for
    other values, where Caffe's formula is kept."""
    cdef Py_ssize_t n = c_prev.shape[0], d = c_prev.shape[1], k, j, s
    _check(gates_diff.shape[0] * gates_diff.shape[1], 4 * n * d, 'lstm_unit_backward gates')
    _check(cont.shape[0], n, 'lstm_unit_backward cont')
    cdef float i_, f, o, g, tanh_c, c_term
    for k in prange(n * d, nogil=True, schedule='static',
                    num_threads=threads_above(n * d, PARALLEL_MIN)):
        s = k // d
        j = k - s * d
        i_ = _sigmoid(gates[s, j])
        if cont[s] == 0:
            f = 0
        else:
            f = cont[s] * _sigmoid(gates[s, d + j])
        o = _sigmoid(gates[s, 2 * d + j])
        g = _tanh2(gates[s, 3 * d + j])
        tanh_c = _tanh2(c[s, j])
        c_term = c_diff[s, j] + h_diff[s, j] * o * (1 - tanh_c * tanh_c)
        c_prev_diff[s, j] = c_term * f
        gates_diff[s, j] = c_term * g * i_ * (1 - i_)
        gates_diff[s, d + j] = c_term * c_prev[s, j] * f * (1 - f)
        gates_diff[s, 2 * d + j] = h_diff[s, j] * tanh_c * o * (1 - o)
        gates_diff[s, 3 * d + j] = c_term * i_ * (1 - g * g)


def scale_rows(const float[:, ::1] x, const float[::1] scale, float[:, ::1] y):
    """y[s] = x[s] * scale[s] (Caffe's Scale layer over axis 0: a stream's previous hidden state
    times its continuation marker)."""
    cdef Py_ssize_t n = x.shape[0], d = x.shape[1], k, s
    _check(scale.shape[0], n, 'scale_rows scale')
    _check(y.shape[0] * y.shape[1], n * d, 'scale_rows y')
    for k in prange(n * d, nogil=True, schedule='static',
                    num_threads=threads_above(n * d, PARALLEL_MIN)):
        s = k // d
        y[s, k - s * d] = x[s, k - s * d] * scale[s]


def add_scaled_rows(const float[:, ::1] x, const float[::1] scale, float[:, ::1] y):
    """y[s] += x[s] * scale[s] (the Scale layer's backward, added where a Split sums diffs)."""
    cdef Py_ssize_t n = x.shape[0], d = x.shape[1], k, s
    _check(scale.shape[0], n, 'add_scaled_rows scale')
    _check(y.shape[0] * y.shape[1], n * d, 'add_scaled_rows y')
    for k in prange(n * d, nogil=True, schedule='static',
                    num_threads=threads_above(n * d, PARALLEL_MIN)):
        s = k // d
        y[s, k - s * d] = y[s, k - s * d] + x[s, k - s * d] * scale[s]


def tanh_forward(float[::1] x):
    """x = tanh(x) in place (Caffe's TanH: tanh in double, rounded to float)."""
    cdef Py_ssize_t n = x.shape[0], k
    for k in prange(n, nogil=True, schedule='static', num_threads=threads_above(n, PARALLEL_MIN)):
        x[k] = <float>tanh(<double>x[k])


def tanh_backward_add(const float[::1] y, const float[::1] dy, float[::1] dx, bint accumulate):
    """dx (=, or += with accumulate) dy * (1 - y * y): TanH's backward from its output y."""
    cdef Py_ssize_t n = y.shape[0], k
    _check(dy.shape[0], n, 'tanh_backward dy')
    _check(dx.shape[0], n, 'tanh_backward dx')
    for k in prange(n, nogil=True, schedule='static', num_threads=threads_above(n, PARALLEL_MIN)):
        if accumulate:
            dx[k] = dx[k] + dy[k] * (1 - y[k] * y[k])
        else:
            dx[k] = dy[k] * (1 - y[k] * y[k])
