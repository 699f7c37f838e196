"""SGDSolver: Caffe's SGD with momentum, weight decay, per-parameter lr_mult/decay_mult,
iter_size gradient accumulation, gradient clipping, learning-rate policies, loss display with
average_loss smoothing, and snapshot/restore in Caffe's .caffemodel/.solverstate formats."""
import math
import os
import time

import numpy as np

from . import common, io
from .blob import Blob
from .common import CaffeError
from .layer import TEST, TRAIN
from .net import Net
from .proto import caffe_pb2


def learning_rate(param, iteration, current_step=0):
    """The rate at `iteration` for the solver's lr_policy (Caffe's GetLearningRate).
    `current_step` is the multistep position (the number of stepvalues passed)."""
    policy = param.lr_policy
    base = param.base_lr
    if policy == 'fixed':
        return base
    if policy == 'step':
        if param.stepsize <= 0:
            raise CaffeError('lr_policy "step" needs stepsize > 0')
        return base * param.gamma ** (iteration // param.stepsize)
    if policy == 'exp':
        return base * param.gamma ** iteration
    if policy == 'inv':
        return base * (1.0 + param.gamma * iteration) ** (-param.power)
    if policy == 'multistep':
        return base * param.gamma ** current_step
    if policy == 'poly':
        return base * (1.0 - float(iteration) / param.max_iter) ** param.power
    if policy == 'sigmoid':
        return base / (1.0 + math.exp(-param.gamma * (iteration - param.stepsize)))
    raise CaffeError('unknown lr_policy %r (fixed, step, exp, inv, multistep, poly, sigmoid)'
                     % policy)


def _resolve(path, solver_file):
    """Net paths are relative to the working directory as in Caffe; failing that, to the
    solver file's folder."""
    if os.path.exists(path) or os.path.isabs(path):
        return path
    beside = os.path.join(os.path.dirname(os.path.abspath(solver_file)), path)
    return beside if os.path.exists(beside) else path


class SGDSolver:
    def __init__(self, solver_file):
        if isinstance(solver_file, caffe_pb2.SolverParameter):
            self.param, self._file = solver_file, '<SolverParameter>'
        else:
            self.param = io.read_prototxt(solver_file, caffe_pb2.SolverParameter())
            self._file = solver_file
        p = self.param
        if p.type not in ('SGD',) or p.solver_type != caffe_pb2.SolverParameter.SGD:
            raise CaffeError('%s: solver type %r is not supported (SGD only)'
                             % (self._file, p.type))
        if p.random_seed >= 0:
            common.set_random_seed(p.random_seed)
        self.net = self._make_net(TRAIN)
        self.test_nets = self._make_test_nets()
        self.iter = 0
        self.current_step = 0
        # Blobs, so that in GPU mode the momentum history stays on the device with the weights.
        self.history = [Blob(b.shape) for b in self.net.learnable_params]
        self._losses = []
        self.smoothed_loss = 0.0
        self._last_display = None

    # Nets ---------------------------------------------------------------------------------------
    def _state(self, phase, state=None):
        s = caffe_pb2.NetState()
        if state is not None:
            s.CopyFrom(state)
        s.phase = phase
        return s

    def _net_param(self, path):
        path = _resolve(path, self._file)
        if not os.path.isfile(path):
            raise CaffeError('%s: net file %s not found' % (self._file, path))
        return io.read_prototxt(path, caffe_pb2.NetParameter()), path

    def _build(self, param, origin, state):
        net_param = caffe_pb2.NetParameter()
        net_param.CopyFrom(param)
        net_param.state.MergeFrom(state)
        net_param.state.phase = state.phase
        return Net.from_param(net_param, source=origin)

    def _make_net(self, phase):
        p = self.param
        state = self._state(phase, p.train_state if p.HasField('train_state') else None)
        if p.HasField('train_net_param'):
            return self._build(p.train_net_param, self._file, state)
        if p.train_net:
            param, path = self._net_param(p.train_net)
            return self._build(param, path, state)
        if p.HasField('net_param'):
            return self._build(p.net_param, self._file, state)
        if p.net:
            param, path = self._net_param(p.net)
            return self._build(param, path, state)
        raise CaffeError('%s: no net given (set `net` or `train_net`)' % self._file)

    def _make_test_nets(self):
        p = self.param
        sources = [(param, self._file) for param in p.test_net_param]
        sources += [self._net_param(path) for path in p.test_net]
        if not sources and p.test_iter and (p.net or p.HasField('net_param')):
            sources.append(self._net_param(p.net) if p.net else (p.net_param, self._file))
        if len(p.test_iter) != len(sources):
            if sources:
                raise CaffeError('%s: %d test nets but %d test_iter values'
                                 % (self._file, len(sources), len(p.test_iter)))
            return []
        nets = []
        for k, (param, origin) in enumerate(sources):
            state = p.test_state[k] if k < len(p.test_state) else None
            net = self._build(param, origin, self._state(TEST, state))
            self._share_weights(net)
            nets.append(net)
        return nets

    def _share_weights(self, test_net):
        """Test nets read the training net's parameters (Caffe's ShareTrainedLayersWith)."""
        train_layers = self.net.layer_dict
        for name, layer in test_net.layer_dict.items():
            source = train_layers.get(name)
            if source is None:
                continue
            for k, blob in enumerate(layer.blobs):
                blob.share_data(source.blobs[k])

    # Training -----------------------------------------------------------------------------------
    def learning_rate(self):
        return learning_rate(self.param, self.iter, self.current_step)

    def _advance_multistep(self):
        p = self.param
        if p.lr_policy == 'multistep':
            while (self.current_step < len(p.stepvalue)
                   and self.iter >= p.stepvalue[self.current_step]):
                self.current_step += 1

    def step(self, iters):
        p = self.param
        start_iter, stop_iter = self.iter, self.iter + iters
        self._losses = []
        self.smoothed_loss = 0.0
        while self.iter < stop_iter:
            self.net.clear_param_diffs()
            if p.test_interval and self.iter % p.test_interval == 0 and (
                    self.iter > 0 or p.test_initialization):
                self.test_all()
            display = p.display and self.iter % p.display == 0
            tic = time.time()
            loss = sum(self.net.forward_backward() for _ in range(p.iter_size)) / p.iter_size
            self._update_smoothed_loss(loss, start_iter, max(p.average_loss, 1))
            rate = self.apply_update()
            if display:
                self._display(rate, time.time() - tic)
            self.iter += 1
            if p.snapshot and self.iter % p.snapshot == 0:
                self.snapshot()

    def solve(self, resume_file=None):
        if resume_file:
            self.restore(resume_file)
        self.step(self.param.max_iter - self.iter)
        p = self.param
        if p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0):
            self.snapshot()
        if p.test_interval and self.iter % p.test_interval == 0:
            self.test_all()

    def _update_smoothed_loss(self, loss, start_iter, average_loss):
        # Running mean over the last `average_loss` iterations, as Caffe's UpdateSmoothedLoss.
        if len(self._losses) < average_loss:
            self._losses.append(loss)
            n = len(self._losses)
            self.smoothed_loss = (self.smoothed_loss * (n - 1) + loss) / n
        else:
            idx = (self.iter - start_iter) % average_loss
            self.smoothed_loss += (loss - self._losses[idx]) / average_loss
            self._losses[idx] = loss

    def _display(self, rate, seconds):
        print('Iteration %d (%.3f s/iter), loss = %.6g, lr = %.6g'
              % (self.iter, seconds, self.smoothed_loss, rate), flush=True)
        weights = self.net.blob_loss_weights
        for k, name in enumerate(self.net.outputs):
            values = self.net.blobs[name].data.ravel()
            w = weights.get(name, 0.0)
            for v in values[:8]:
                extra = ' (* %g = %.6g loss)' % (w, w * v) if w else ''
                print('    Train net output #%d: %s = %.6g%s' % (k, name, v, extra), flush=True)

    def apply_update(self):
        """Clip, normalize by iter_size, regularize, momentum update: Caffe's ApplyUpdate for
        SGD. Returns the learning rate used."""
        p = self.param
        self._advance_multistep()
        rate = self.learning_rate()
        params = self.net.learnable_params
        if p.clip_gradients >= 0:
            norm = math.sqrt(sum(float(np.dot(b.diff.ravel(), b.diff.ravel())) for b in params))
            if norm > p.clip_gradients:
                scale = p.clip_gradients / norm
                print('Gradient clipping: scaling down gradients (L2 norm %g > %g) by scale '
                      'factor %g' % (norm, p.clip_gradients, scale), flush=True)
                for b in params:
                    b.diff[...] *= scale
        on_gpu = common.mode() == common.GPU
        for i, blob in enumerate(params):
            lr = self.net.params_lr[i]
            if lr == 0:
                continue
            decay = p.weight_decay * self.net.params_weight_decay[i]
            if p.regularization_type not in ('L2', 'L1'):
                raise CaffeError('unknown regularization_type %r' % p.regularization_type)
            if on_gpu:
                from . import gpu
                gpu.sgd_update(blob.mutable_gpu_data(), blob.mutable_gpu_diff(),
                               self.history[i].mutable_gpu_data(), rate * lr, p.momentum, decay,
                               p.regularization_type, p.iter_size)
                continue
            diff = blob.diff
            if p.iter_size > 1:
                diff *= np.float32(1.0 / p.iter_size)
            if decay:
                reg = blob.data if p.regularization_type == 'L2' else np.sign(blob.data)
                diff += np.float32(decay) * reg
            h = self.history[i].data
            h *= np.float32(p.momentum)
            h += np.float32(rate * lr) * diff
            blob.data[...] -= h
        return rate

    def test_all(self):
        for k, net in enumerate(self.test_nets):
            scores = {}
            loss = 0.0
            for _ in range(self.param.test_iter[k]):
                loss += net.forward_from_to()
                for name in net.outputs:
                    scores[name] = scores.get(name, 0.0) + net.blobs[name].data.astype(np.float64)
            print('Iteration %d, Testing net (#%d)' % (self.iter, k), flush=True)
            for name, total in scores.items():
                mean = total / self.param.test_iter[k]
                print('    Test net output: %s = %s' % (name, np.array2string(mean.ravel())),
                      flush=True)

    # Snapshots ----------------------------------------------------------------------------------
    def snapshot_filename(self, extension):
        prefix = self.param.snapshot_prefix or os.path.splitext(self._file)[0]
        return '%s_iter_%d%s' % (prefix, self.iter, extension)

    def snapshot(self):
        """Writes <prefix>_iter_N.caffemodel and .solverstate (atomically); returns both paths."""
        model = self.snapshot_filename('.caffemodel')
        io.write_binary(model, self.net.to_proto(write_diff=self.param.snapshot_diff))
        state = caffe_pb2.SolverState(iter=self.iter, learned_net=model,
                                      current_step=self.current_step)
        for h in self.history:
            state.history.append(io.array_to_blobproto(h.data))
        state_file = self.snapshot_filename('.solverstate')
        io.write_binary(state_file, state)
        print('Snapshotting to %s and %s' % (model, state_file), flush=True)
        return model, state_file

    def restore(self, state_file):
        state = io.read_binary(state_file, caffe_pb2.SolverState(), what='solver state')
        if len(state.history) != len(self.history):
            raise CaffeError('%s holds %d history blobs; the net %s has %d learnable parameters'
                             % (state_file, len(state.history), self.net._source,
                                len(self.history)))
        if state.learned_net:
            model = state.learned_net
            if not os.path.isfile(model):
                # Snapshots moved together with their state file stay usable.
                beside = os.path.join(os.path.dirname(os.path.abspath(state_file)),
                                      os.path.basename(model))
                model = beside if os.path.isfile(beside) else model
            self.net.copy_from(model)
        for k, (proto, h) in enumerate(zip(state.history, self.history)):
            arr = io.blobproto_to_array(proto)
            if arr.size != h.count:
                raise CaffeError('%s: history blob %d has %d values, expected %d'
                                 % (state_file, k, arr.size, h.count))
            h.data[...] = arr.reshape(h.shape)
        self.iter = state.iter
        self.current_step = state.current_step


def get_solver(solver_file):
    """The solver the prototxt asks for (only SGD is implemented)."""
    return SGDSolver(solver_file)
