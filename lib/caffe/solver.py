"""The Solver base: Caffe's training loop (Step, Solve, TestAll), the learning-rate policies, the
update skeleton every method shares (Caffe's ApplyUpdate: ClipGradients, then for each learnable
parameter Normalize, Regularize, ComputeUpdateValue, then the update data -= diff), pycaffe's
callbacks, loss display with average_loss smoothing, and snapshot/restore of the weights and of
the method's history in Caffe's formats (.caffemodel + .solverstate, or HDF5).

The update rules themselves, one small class per method (SGD, Nesterov, AdaGrad, RMSProp,
AdaDelta, Adam), are in sgd_solvers.py, as in Caffe's sgd_solvers.hpp. get_solver() picks the
class a solver file's `type` (or old `solver_type`) names.

Data-parallel hooks (Caffe's multi-GPU semantics): callbacks run where Caffe's Step runs them
(on_start before the forward/backward passes of an iteration, on_gradients_ready after them and
before the update, which is where gradients get reduced across ranks), and test, display and
snapshot happen only on the root rank (caffe.solver_rank() == 0), as Caffe::root_solver() gates
them.
"""
import io as _bytes_io
import math
import os
import time

import numpy as np

from . import common, hdf5, io
from .blob import Blob
from .common import CaffeError
from .layer import TEST, TRAIN
from .net import Net
from .proto import caffe_pb2

# Values per pass of the host update: all of a method's steps run on one chunk of a parameter
# while it is in cache, with scratch space of this size instead of blob-sized temporaries.
CHUNK = 1 << 16

# The old SolverParameter.solver_type enum and the `type` names that replaced it.
SOLVER_TYPE_NAMES = {
    caffe_pb2.SolverParameter.SGD: 'SGD',
    caffe_pb2.SolverParameter.NESTEROV: 'Nesterov',
    caffe_pb2.SolverParameter.ADAGRAD: 'AdaGrad',
    caffe_pb2.SolverParameter.RMSPROP: 'RMSProp',
    caffe_pb2.SolverParameter.ADADELTA: 'AdaDelta',
    caffe_pb2.SolverParameter.ADAM: 'Adam',
}

# Caffe's solver type name -> class; sgd_solvers.py registers the six methods.
SOLVER_CLASSES = {}

HDF5_SIGNATURE = b'\x89HDF\r\n\x1a\n'


def register_solver(cls):
    """Class decorator: makes the class the solver for its `type` name (Caffe's
    REGISTER_SOLVER_CLASS)."""
    SOLVER_CLASSES[cls.type] = cls
    return cls


def upgrade_solver_param(param, origin):
    """Caffe's UpgradeSolverAsNeeded: the deprecated `solver_type` enum becomes the `type`
    string. A file that sets both is refused, as Caffe refuses it."""
    if not param.HasField('solver_type'):
        return param
    if param.HasField('type'):
        raise CaffeError('%s: both the old solver_type (%s) and the new type ("%s") are set; '
                         'keep only `type`' % (origin, caffe_pb2.SolverParameter.SolverType.Name(
                             param.solver_type), param.type))
    param.type = SOLVER_TYPE_NAMES[param.solver_type]
    param.ClearField('solver_type')
    return param


def read_solver_param(solver_file):
    """The SolverParameter of a solver .prototxt, upgraded (ReadSolverParamsFromTextFileOrDie):
    the solver_type enum. (Caffe's snapshot-prefix rule is applied where snapshots are named.)"""
    param = io.read_prototxt(solver_file, caffe_pb2.SolverParameter())
    return upgrade_solver_param(param, solver_file)


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


def _h5py():
    try:
        import h5py
    except ImportError:
        raise CaffeError('snapshot_format: HDF5 needs h5py, which cannot be imported; install '
                         'it with: pip install h5py') from None
    return h5py


class _FunctionCallback:
    """pycaffe's add_callback(on_start, on_gradients_ready) with two callables."""

    def __init__(self, on_start, on_gradients_ready):
        self.on_start, self.on_gradients_ready = on_start, on_gradients_ready


class Solver:
    """What every Caffe solver shares. A method subclasses it with its `type` name, the number
    of history blobs it keeps per learnable parameter (`history_sets`), and its update rule on
    the host (compute_update_value) and on the GPU (update_gpu); see sgd_solvers.py."""
    type = None            # Caffe's name for the method ('SGD', 'Adam', ...)
    history_sets = 1       # history blobs per learnable parameter (AdaDelta and Adam keep 2)

    def __init__(self, solver_file, origin=None):
        if self.type is None:
            raise CaffeError('caffe.Solver is the base class; build a solver with '
                             'caffe.get_solver(file) or a class such as caffe.SGDSolver(file)')
        if isinstance(solver_file, caffe_pb2.SolverParameter):
            # `origin`: the file the message was read from, for relative net paths, the
            # snapshot prefix and errors (a tool that edits a solver file's message keeps them)
            self.param, self._file = solver_file, origin or '<SolverParameter>'
            upgrade_solver_param(self.param, self._file)
        else:
            self.param = read_solver_param(solver_file)
            self._file = solver_file
        p = self.param
        if p.type != self.type:
            # pycaffe's solver classes ignore `type` (caffe.SGDSolver(file) is SGD whatever the
            # file says); say so, since the file's author meant something else.
            print('Warning: %s asks for solver type "%s"; %s runs %s regardless, as pycaffe '
                  'does (caffe.get_solver follows the file)'
                  % (self._file, p.type, type(self).__name__, self.type), flush=True)
        if p.weight_decay and p.regularization_type not in ('L1', 'L2'):
            raise CaffeError('%s: unknown regularization_type "%s" (L1 or L2)'
                             % (self._file, p.regularization_type))
        self.check_param()
        if p.random_seed >= 0:
            # Each rank of a data-parallel run draws its own numbers (Caffe's Solver::Init).
            common.set_random_seed(p.random_seed + common.solver_rank())
        try:
            self.net = self._make_net(TRAIN)
            self.test_nets = self._make_test_nets()
            # Caffe's `weights` field (what `caffe train -weights a,b` sets): each entry a
            # comma-separated list of weights files copied, by layer name, into every net in
            # turn.
            for entry in p.weights:
                for path in filter(None, (w.strip() for w in entry.split(','))):
                    for net in [self.net] + self.test_nets:
                        net.copy_from(_resolve(path, self._file))
        except CaffeError as e:
            # The error names the net or weights file; the solver file that named it goes first.
            if str(e).startswith(str(self._file)):
                raise
            raise CaffeError('%s: %s' % (self._file, e)) from None
        self.iter = 0
        self.current_step = 0
        # Caffe's history_: the first set for every learnable parameter, then the second set
        # (AdaDelta, Adam). Blobs, so that in GPU mode the history stays on the device with the
        # weights.
        params = self.net.learnable_params
        self.history = [Blob(b.shape) for _ in range(self.history_sets) for b in params]
        largest = max([b.count for b in params] + [1])
        self._scratch = [np.empty(min(CHUNK, largest), dtype=np.float32) for _ in range(2)]
        self._callbacks = []
        self._losses = []
        self.smoothed_loss = 0.0
        # Caffe's SetActionFunction: a callable asked after every update whether to 'snapshot',
        # 'stop' (after that iteration) or do nothing ('none'); the caffe command sets it from
        # SIGINT/SIGHUP. requested_early_exit says a stop was asked.
        self.action_request = None
        self.requested_early_exit = False

    def check_param(self):
        """A method's checks of its hyperparameters (Caffe's constructor_sanity_check)."""

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
        """Test nets read the training net's parameters (Caffe's ShareTrainedLayersWith, whose
        checks refuse a same-named layer with other parameter counts or shapes)."""
        test_net.share_with(self.net)

    # Training -----------------------------------------------------------------------------------
    def learning_rate(self):
        return learning_rate(self.param, self.iter, self.current_step)

    def _advance_multistep(self):
        p = self.param
        if p.lr_policy == 'multistep':
            while (self.current_step < len(p.stepvalue)
                   and self.iter >= p.stepvalue[self.current_step]):
                self.current_step += 1

    def _rate_for_update(self):
        """Caffe's GetLearningRate as ApplyUpdate calls it: a float32 rate, with its effect on
        current_step (multistep advances it; step records iter // stepsize, which the
        .solverstate keeps)."""
        self._advance_multistep()
        rate = np.float32(self.learning_rate())
        if self.param.lr_policy == 'step':
            self.current_step = self.iter // self.param.stepsize
        return rate

    def step(self, iters):
        """Caffe's Solver::Step: `iters` iterations of clear diffs, test (every test_interval),
        on_start callbacks, iter_size forward/backward passes, display, on_gradients_ready
        callbacks, update, snapshot (every `snapshot`)."""
        p = self.param
        start_iter, stop_iter = self.iter, self.iter + iters
        average_loss = max(p.average_loss, 1)
        self._losses = []
        self.smoothed_loss = 0.0
        root = common.root_solver()
        while self.iter < stop_iter:
            self.net.clear_param_diffs()
            if root and p.test_interval and self.iter % p.test_interval == 0 and (
                    self.iter > 0 or p.test_initialization):
                self.test_all()
            for callback in self._callbacks:
                callback.on_start()
            display = p.display and self.iter % p.display == 0
            tic = time.time()
            loss = sum(self.net.forward_backward() for _ in range(p.iter_size)) / p.iter_size
            self._update_smoothed_loss(loss, start_iter, average_loss)
            if root and display:
                self._display(time.time() - tic)
            for callback in self._callbacks:
                callback.on_gradients_ready()
            self.apply_update()
            request = self.action_request() if self.action_request else 'none'
            if (root and p.snapshot and self.iter % p.snapshot == 0) or request == 'snapshot':
                self.snapshot()
            if request == 'stop':
                self.requested_early_exit = True
                break

    def solve(self, resume_file=None):
        """Caffe's Solver::Solve: restore if asked, step to max_iter, a final snapshot (unless
        one was just taken or snapshot_after_train is false), then the final display (one more
        forward pass, as Caffe runs) and test."""
        self.requested_early_exit = False
        if resume_file:
            self.restore(resume_file)
        start_iter = self.iter
        self.step(self.param.max_iter - self.iter)
        p = self.param
        root = common.root_solver()
        if root and p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0):
            self.snapshot()
        if self.requested_early_exit:   # Caffe snapshots, then skips the final pass and test
            print('Optimization stopped early.', flush=True)
            return
        if p.display and self.iter % p.display == 0:
            loss = self.net.forward_from_to()
            self._update_smoothed_loss(loss, start_iter, max(p.average_loss, 1))
            if root:
                print('Iteration %d, loss = %.6g' % (self.iter, self.smoothed_loss), flush=True)
        if root and p.test_interval and self.iter % p.test_interval == 0:
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

    def _display(self, seconds):
        print('Iteration %d (%.3f s/iter), loss = %.6g' % (self.iter, seconds, self.smoothed_loss),
              flush=True)
        weights = self.net.blob_loss_weights
        for k, name in enumerate(self.net.outputs):
            values = self.net.blobs[name].data.ravel()
            w = weights.get(name, 0.0)
            for v in values[:8]:
                extra = ' (* %g = %.6g loss)' % (w, w * v) if w else ''
                print('    Train net output #%d: %s = %.6g%s' % (k, name, v, extra), flush=True)

    # pycaffe hooks ------------------------------------------------------------------------------
    def share_weights(self, net):
        """Makes `net` use the training net's parameters, layer by layer name (pycaffe's
        Solver.share_weights, Caffe's ShareTrainedLayersWith), as the test nets do."""
        self._share_weights(net)

    def add_callback(self, on_start, on_gradients_ready=None):
        """pycaffe's two forms: add_callback(on_start, on_gradients_ready) with two callables,
        or add_callback(obj) with an object that has on_start() and on_gradients_ready()
        methods (as caffe.NCCL has). Step calls every on_start, in the order added, before the
        forward/backward passes of each iteration, and every on_gradients_ready after them,
        before the update."""
        if on_gradients_ready is None:
            callback = on_start
            if not (callable(getattr(callback, 'on_start', None))
                    and callable(getattr(callback, 'on_gradients_ready', None))):
                raise TypeError('add_callback(obj) needs an object with on_start() and '
                                'on_gradients_ready() methods, or two callables')
        else:
            if not (callable(on_start) and callable(on_gradients_ready)):
                raise TypeError('add_callback(on_start, on_gradients_ready) needs two callables')
            callback = _FunctionCallback(on_start, on_gradients_ready)
        self._callbacks.append(callback)

    # The update ---------------------------------------------------------------------------------
    def apply_update(self):
        """Caffe's ApplyUpdate: clip the gradients, then for every learnable parameter
        normalize (iter_size), regularize (weight decay), compute the method's update value
        into diff, and update (data -= diff). Advances iter, as pycaffe's apply_update does
        (BVLC Caffe moved the increment into ApplyUpdate when it exposed it). Returns the
        learning rate used."""
        p = self.param
        rate = self._rate_for_update()
        if p.display and self.iter % p.display == 0 and common.root_solver():
            print('Iteration %d, lr = %g' % (self.iter, rate), flush=True)
        self.clip_gradients()
        on_gpu = common.mode() == common.GPU
        for i in range(len(self.net.learnable_params)):
            if on_gpu:
                self.update_gpu(i, rate)
            else:
                self.update_cpu(i, rate)
        self.iter += 1
        return float(rate)

    def clip_gradients(self):
        """Scales all gradients together so that their L2 norm is at most clip_gradients
        (Caffe's ClipGradients; before Normalize, so the norm is of the iter_size-summed
        gradients). Runs on the host copies in GPU mode too, so both modes scale by the same
        factor."""
        p = self.param
        if p.clip_gradients < 0:
            return
        params = self.net.learnable_params
        norm = math.sqrt(sum(float(np.dot(b.diff.ravel(), b.diff.ravel())) for b in params))
        if norm > p.clip_gradients:
            scale = p.clip_gradients / norm
            print('Gradient clipping: scaling down gradients (L2 norm %g > %g) by scale '
                  'factor %g' % (norm, p.clip_gradients, scale), flush=True)
            for b in params:
                b.diff[...] *= scale

    def local_rate(self, i, rate):
        """The rate for learnable parameter i: rate * lr_mult, in float32 as Caffe's Dtype."""
        return rate * np.float32(self.net.params_lr[i])

    def local_decay(self, i):
        """The weight decay for learnable parameter i: weight_decay * decay_mult (float32)."""
        return np.float32(self.param.weight_decay) * np.float32(self.net.params_weight_decay[i])

    def histories_of(self, i):
        """The history blobs of learnable parameter i, one per history set."""
        n = len(self.net.learnable_params)
        return [self.history[k * n + i] for k in range(self.history_sets)]

    def update_cpu(self, i, rate):
        """Normalize, Regularize, ComputeUpdateValue and the update of parameter i on the host.
        Every value goes through the steps in Caffe's order; the work goes a chunk at a time,
        so the scratch space stays small and in cache."""
        blob = self.net.learnable_params[i]
        data, diff = blob.data.reshape(-1), blob.diff.reshape(-1)
        histories = [h.data.reshape(-1) for h in self.histories_of(i)]
        rate, decay = self.local_rate(i, rate), self.local_decay(i)
        for start in range(0, data.size, CHUNK):
            part = slice(start, start + CHUNK)
            w, g = data[part], diff[part]
            scratch = [s[:w.size] for s in self._scratch]
            self.normalize(g)
            self.regularize(g, w, decay, scratch[0])
            self.compute_update_value(g, [h[part] for h in histories], rate, scratch)
            w -= g  # Caffe's Net::Update: data -= diff, diff now holding the update value

    def normalize(self, g):
        """Caffe's Normalize: the gradient summed over iter_size passes becomes their mean."""
        if self.param.iter_size > 1:
            g *= np.float32(1) / np.float32(self.param.iter_size)

    def regularize(self, g, w, decay, scratch):
        """Caffe's Regularize: g += decay * w (L2) or decay * sign(w) (L1)."""
        if not decay:
            return
        kind = self.param.regularization_type
        if kind == 'L2':
            np.multiply(w, decay, out=scratch)
        elif kind == 'L1':
            np.sign(w, out=scratch)
            scratch *= decay
        else:
            raise CaffeError('%s: unknown regularization_type "%s" (L1 or L2)'
                             % (self._file, kind))
        g += scratch

    def compute_update_value(self, g, history, rate, scratch):
        """The method's rule on one chunk, in place: g (the regularized gradient) becomes the
        update value, the chunk's history arrays (one per history set) are advanced. `rate` is
        the parameter's local rate; `scratch` two float32 arrays of g's size. Every method in
        sgd_solvers.py defines it (Caffe's virtual ComputeUpdateValue)."""
        raise NotImplementedError('%s defines no update rule (compute_update_value)'
                                  % type(self).__name__)

    def update_gpu(self, i, rate):
        """The four steps of update_cpu for parameter i in one device kernel (caffe.gpu). Every
        method in sgd_solvers.py defines it."""
        raise NotImplementedError('%s defines no GPU update rule (update_gpu)'
                                  % type(self).__name__)

    def device_arrays(self, i):
        """Parameter i's data and diff and its history, as device arrays to update in place."""
        blob = self.net.learnable_params[i]
        return (blob.mutable_gpu_data(), blob.mutable_gpu_diff(),
                [h.mutable_gpu_data() for h in self.histories_of(i)])

    def gradient_terms(self, i):
        """The Normalize and Regularize settings of parameter i, as the caffe.gpu updates take
        them."""
        return dict(decay=self.local_decay(i), regularization=self.param.regularization_type,
                    iter_size=self.param.iter_size)

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
        # Caffe's UpgradeSnapshotPrefixProperty: unset, the solver file's path without its
        # extension; an existing folder, that file's name inside the folder.
        stem = os.path.splitext(self._file)[0]
        prefix = self.param.snapshot_prefix or stem
        if os.path.isdir(prefix):
            prefix = os.path.join(prefix, os.path.basename(stem))
        return '%s_iter_%d%s' % (prefix, self.iter, extension)

    def snapshot(self):
        """Caffe's Snapshot: the weights, then the solver state naming them, written atomically:
        <prefix>_iter_N.caffemodel and .solverstate (binary protos), or with snapshot_format:
        HDF5 .caffemodel.h5 and .solverstate.h5. Returns both paths."""
        hdf5 = self.param.snapshot_format == caffe_pb2.SolverParameter.HDF5
        model = self.snapshot_filename('.caffemodel.h5' if hdf5 else '.caffemodel')
        state_file = self.snapshot_filename('.solverstate.h5' if hdf5 else '.solverstate')
        if hdf5:
            self._save_net_hdf5(model)
            io.atomic_write(state_file, self._state_hdf5(model))
        else:
            io.write_binary(model, self.net.to_proto(write_diff=self.param.snapshot_diff))
            io.write_binary(state_file, self._state_proto(model))
        print('Snapshotting to %s and %s' % (model, state_file), flush=True)
        return model, state_file

    def _state_proto(self, model):
        state = caffe_pb2.SolverState(iter=self.iter, learned_net=model,
                                      current_step=self.current_step)
        for h in self.history:
            state.history.append(io.array_to_blobproto(h.cpu_data()))
        return state

    def _save_net_hdf5(self, model):
        save = getattr(self.net, 'save_hdf5', None)
        if save is None:
            raise CaffeError('%s: snapshot_format: HDF5 needs Net.save_hdf5, which this runtime '
                             'lacks; use snapshot_format: BINARYPROTO' % self._file)
        if self.param.snapshot_diff:
            save(model, write_diff=True)  # Caffe's Net::ToHDF5(filename, write_diff)
        else:
            save(model)

    def _state_hdf5(self, model):
        """The bytes of Caffe's HDF5 solver state: iter, learned_net, current_step, and the
        history blobs as datasets history/0, history/1, ... in Caffe's order."""
        h5py = _h5py()
        buffer = _bytes_io.BytesIO()
        with h5py.File(buffer, 'w') as f:
            f.create_dataset('iter', data=np.array([self.iter], dtype=np.int32))
            # NUL-terminated, as H5LTmake_dataset_string writes it (Caffe reads it as a C string).
            name = model.encode() + b'\0'
            f.create_dataset('learned_net', data=np.array(name, dtype='S%d' % len(name)))
            f.create_dataset('current_step', data=np.array([self.current_step], dtype=np.int32))
            group = f.create_group('history')
            for k, h in enumerate(self.history):
                group.create_dataset(str(k), data=h.cpu_data())
        return buffer.getvalue()

    def restore(self, state_file, weights=None):
        """Caffe's Restore: iteration, lr step, the weights (the state's learned_net) and the
        history from a .solverstate, or from an HDF5 state when the name ends in .h5.

        weights: read the weights from this file instead of learned_net (a snapshot copied to
        another folder keeps learned_net's absolute path to the original); a warning says so
        when learned_net names another file."""
        if state_file.endswith('.h5'):
            iteration, model, current_step, history = self._read_state_hdf5(state_file)
        else:
            state = io.read_binary(state_file, caffe_pb2.SolverState(), what='solver state')
            iteration, model, current_step = state.iter, state.learned_net, state.current_step
            history = []
            for k, proto in enumerate(state.history):
                # Caffe's Blob::FromProto rules (shape, legacy dims, double_data), not pycaffe's.
                try:
                    history.append(io.blob_values(proto))
                except CaffeError as e:
                    raise CaffeError('%s: history blob %d: %s' % (state_file, k, e)) from None
        if len(history) != len(self.history):
            raise CaffeError('%s holds %d history blobs; this %s keeps %d (%d per learnable '
                             'parameter of %s)' % (state_file, len(history), type(self).__name__,
                                                  len(self.history), self.history_sets,
                                                  self.net.source))
        # Everything is checked before anything changes: a bad state file leaves the solver as
        # it was.
        for k, (arr, h) in enumerate(zip(history, self.history)):
            if arr.size != h.count:
                raise CaffeError('%s: history blob %d has %d values, expected %d'
                                 % (state_file, k, arr.size, h.count))
        if weights is not None:
            if model and not (os.path.isfile(model) and os.path.samefile(model, weights)):
                print('warning: %s names its weights %s; reading %s instead'
                      % (state_file, model, weights), flush=True)
            model = weights
        elif model and not os.path.isfile(model):
            # Snapshots moved together with their state file stay usable.
            beside = os.path.join(os.path.dirname(os.path.abspath(state_file)),
                                  os.path.basename(model))
            model = beside if os.path.isfile(beside) else model
        if model:
            try:
                if hdf5.is_hdf5(model):
                    self.net.load_hdf5(model)
                else:
                    self.net.copy_from(model)
            except CaffeError as e:
                raise CaffeError('%s: its weights: %s' % (state_file, e)) from None
        for arr, h in zip(history, self.history):
            h.data[...] = arr.reshape(h.shape)
        self.iter = int(iteration)
        self.current_step = int(current_step)

    def _read_state_hdf5(self, state_file):
        h5py = _h5py()
        if not os.path.isfile(state_file):
            raise CaffeError('solver state %s not found' % state_file)
        try:
            with h5py.File(state_file, 'r') as f:
                iteration = int(np.ravel(f['iter'][()])[0])
                model = f['learned_net'][()] if 'learned_net' in f else b''
                model = model.decode() if isinstance(model, bytes) else str(model)
                current_step = int(np.ravel(f['current_step'][()])[0])
                group = f['history']
                history = [np.asarray(group[str(k)][()], dtype=np.float32)
                           for k in range(len(group))]
        except (OSError, KeyError) as e:
            raise CaffeError('solver state %s is not a valid HDF5 solver state (iter, '
                             'learned_net, current_step, history/0..): %s' % (state_file, e))
        return iteration, model, current_step, history


def get_solver(solver_file):
    """The solver the file's `type` (or old `solver_type`) names: pycaffe's caffe.get_solver."""
    from . import sgd_solvers  # noqa: F401  (registers the six methods)
    if isinstance(solver_file, caffe_pb2.SolverParameter):
        param = upgrade_solver_param(solver_file, '<SolverParameter>')
    else:
        param = read_solver_param(solver_file)
    cls = SOLVER_CLASSES.get(param.type)
    if cls is None:
        raise CaffeError('%s: unknown solver type "%s" (known types: %s)'
                         % (solver_file if isinstance(solver_file, str) else '<SolverParameter>',
                            param.type, ', '.join(sorted(SOLVER_CLASSES))))
    return cls(solver_file)
