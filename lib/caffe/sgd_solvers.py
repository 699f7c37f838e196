"""Caffe's six solvers (sgd_solvers.hpp), one small class each: the update rule on the host
(compute_update_value) and its device kernel (update_gpu, kernels in gpu/kernels/elementwise.cu).

Notation, for one learnable parameter at one iteration (float32 throughout, as Caffe's Dtype):
  g      the gradient after Solver's Normalize (mean over iter_size) and Regularize (+ decay)
  rate   the local rate: the lr_policy's rate * lr_mult
  u      the update value; the parameter becomes w - u (Caffe's Net::Update)
Squares are products (g * g) and roots sqrt; Caffe's CPU path writes them as powx(x, 2) and
powx(x, 0.5), the same values up to the libm's rounding. Each host step below is one numpy
operation rounding to float32, in the order of Caffe's CPU code; the device kernels compute the
same operations in the same order (no fused multiply-add), so both paths agree bit for bit.
"""
import math

import numpy as np

from . import gpu  # imports no pycuda until a device array is asked for
from .common import CaffeError
from .solver import Solver, get_solver, register_solver
# caffe.layers first: it sets OpenMP's wait policy, which libgomp reads once, when sgd_kernels
# loads it (a solver builds its nets from the layers anyway).
from . import layers  # noqa: E402,F401
from . import sgd_kernels  # noqa: E402

f32 = np.float32


def scale_by_root_mean_square(g, h, delta, rate, scratch):
    """g = rate * (g / (sqrt(h) + delta)), in place: AdaGrad's and RMSProp's step."""
    np.sqrt(h, out=scratch)
    scratch += f32(delta)
    np.divide(g, scratch, out=scratch)
    np.multiply(scratch, rate, out=g)


@register_solver
class SGDSolver(Solver):
    """Stochastic gradient descent with momentum.
        h = momentum * h + rate * g;   u = h"""
    type = 'SGD'

    def compute_update_value(self, g, history, rate, scratch):
        h, = history
        h *= f32(self.param.momentum)
        g *= rate
        h += g
        g[...] = h

    def update_cpu(self, i, rate):
        # The steps of Solver.update_cpu fused into one pass (sgd_kernels), same roundings;
        # L1 decay keeps the step-by-step path.
        decay = self.local_decay(i)
        if decay and self.param.regularization_type != 'L2':
            return super().update_cpu(i, rate)
        blob = self.net.learnable_params[i]
        h, = self.histories_of(i)
        sgd_kernels.sgd_update(blob.data.reshape(-1), blob.diff.reshape(-1), h.data.reshape(-1),
                               self.local_rate(i, rate), f32(self.param.momentum), decay,
                               self.param.iter_size)

    def update_gpu(self, i, rate):
        data, diff, (h,) = self.device_arrays(i)
        gpu.sgd_update(data, diff, h, self.local_rate(i, rate), self.param.momentum,
                       **self.gradient_terms(i))


@register_solver
class NesterovSolver(Solver):
    """Nesterov's accelerated gradient in Caffe's look-ahead form (Sutskever et al. 2013):
        h' = momentum * h + rate * g;   u = (1 + momentum) * h' - momentum * h"""
    type = 'Nesterov'

    def compute_update_value(self, g, history, rate, scratch):
        h, = history
        momentum = f32(self.param.momentum)
        step_back = scratch[0]
        np.multiply(h, -momentum, out=step_back)
        h *= momentum
        g *= rate
        h += g
        np.multiply(h, f32(1) + momentum, out=g)
        g += step_back

    def update_gpu(self, i, rate):
        data, diff, (h,) = self.device_arrays(i)
        gpu.nesterov_update(data, diff, h, self.local_rate(i, rate), self.param.momentum,
                            **self.gradient_terms(i))


@register_solver
class AdaGradSolver(Solver):
    """AdaGrad (Duchi et al. 2011):
        h = h + g * g;   u = rate * (g / (sqrt(h) + delta))"""
    type = 'AdaGrad'

    def check_param(self):
        if self.param.momentum != 0:
            raise CaffeError('%s: momentum cannot be used with AdaGrad (set momentum: 0)'
                             % self._file)

    def compute_update_value(self, g, history, rate, scratch):
        h, = history
        u = scratch[0]
        np.multiply(g, g, out=u)
        h += u
        scale_by_root_mean_square(g, h, self.param.delta, rate, u)

    def update_gpu(self, i, rate):
        data, diff, (h,) = self.device_arrays(i)
        gpu.adagrad_update(data, diff, h, self.local_rate(i, rate), self.param.delta,
                           **self.gradient_terms(i))


@register_solver
class RMSPropSolver(Solver):
    """RMSProp (Tieleman & Hinton 2012):
        h = rms_decay * h + (1 - rms_decay) * g * g;   u = rate * (g / (sqrt(h) + delta))"""
    type = 'RMSProp'

    def check_param(self):
        p = self.param
        if p.momentum != 0:
            raise CaffeError('%s: momentum cannot be used with RMSProp (set momentum: 0)'
                             % self._file)
        if not 0 <= p.rms_decay < 1:
            raise CaffeError('%s: rms_decay is %g; it must lie in [0, 1)'
                             % (self._file, p.rms_decay))

    def compute_update_value(self, g, history, rate, scratch):
        h, = history
        decay = f32(self.param.rms_decay)
        u = scratch[0]
        np.multiply(g, g, out=u)
        h *= decay
        u *= f32(1) - decay
        h += u
        scale_by_root_mean_square(g, h, self.param.delta, rate, u)

    def update_gpu(self, i, rate):
        data, diff, (h,) = self.device_arrays(i)
        gpu.rmsprop_update(data, diff, h, self.local_rate(i, rate), self.param.rms_decay,
                           self.param.delta, **self.gradient_terms(i))


@register_solver
class AdaDeltaSolver(Solver):
    """AdaDelta (Zeiler 2012) as Caffe has it: `momentum` is the decay of both running means,
    and the step is also scaled by the learning rate (base_lr: 1 with lr_policy "fixed" is the
    paper's method). History: the squared gradients for every parameter, then the squared
    steps for every parameter.
        h  = momentum * h + (1 - momentum) * g * g
        s  = g * sqrt((h2 + delta) / (h + delta))
        h2 = momentum * h2 + (1 - momentum) * s * s;   u = rate * s"""
    type = 'AdaDelta'
    history_sets = 2

    def compute_update_value(self, g, history, rate, scratch):
        h, h2 = history
        momentum = f32(self.param.momentum)
        delta = f32(self.param.delta)
        u, t = scratch
        np.multiply(g, g, out=u)
        h *= momentum
        u *= f32(1) - momentum
        h += u
        np.add(h2, delta, out=u)
        np.add(h, delta, out=t)
        np.divide(u, t, out=u)
        np.sqrt(u, out=u)
        g *= u
        np.multiply(g, g, out=u)
        h2 *= momentum
        u *= f32(1) - momentum
        h2 += u
        g *= rate

    def update_gpu(self, i, rate):
        data, diff, (h, h2) = self.device_arrays(i)
        gpu.adadelta_update(data, diff, h, h2, self.local_rate(i, rate), self.param.momentum,
                            self.param.delta, **self.gradient_terms(i))


@register_solver
class AdamSolver(Solver):
    """Adam (Kingma & Ba 2015) as Caffe has it: beta1 is `momentum`, beta2 `momentum2`,
    epsilon `delta`; the bias correction is folded into the rate, so epsilon is not corrected.
    History: m for every parameter, then v for every parameter. With t = iter + 1:
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        u = (rate * sqrt(1 - beta2^t) / (1 - beta1^t)) * (m / (sqrt(v) + delta))"""
    type = 'Adam'
    history_sets = 2

    def corrected_rate(self, rate):
        # Caffe computes the correction with pow(float, int), which C++ evaluates in double,
        # and rounds it to float once, then multiplies in float.
        t = self.iter + 1
        beta1 = float(f32(self.param.momentum))
        beta2 = float(f32(self.param.momentum2))
        return rate * f32(math.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t))

    def compute_update_value(self, g, history, rate, scratch):
        m, v = history
        beta1, beta2 = f32(self.param.momentum), f32(self.param.momentum2)
        u = scratch[0]
        m *= beta1
        np.multiply(g, f32(1) - beta1, out=u)
        m += u
        np.multiply(g, g, out=u)
        v *= beta2
        u *= f32(1) - beta2
        v += u
        np.sqrt(v, out=u)
        u += f32(self.param.delta)
        np.divide(m, u, out=u)
        np.multiply(u, self.corrected_rate(rate), out=g)

    def update_gpu(self, i, rate):
        data, diff, (m, v) = self.device_arrays(i)
        p = self.param
        gpu.adam_update(data, diff, m, v, self.corrected_rate(self.local_rate(i, rate)),
                        p.momentum, p.momentum2, p.delta, **self.gradient_terms(i))


__all__ = ['Solver', 'SGDSolver', 'NesterovSolver', 'AdaGradSolver', 'RMSPropSolver',
           'AdaDeltaSolver', 'AdamSolver', 'get_solver']
