"""Training a Fast R-CNN / Faster R-CNN network: a thin loop over the runtime's solver that feeds
the roidb to the net's data layer, reports progress (fast_rcnn.training_log), and writes
deployable snapshots (bbox_pred with the target normalization folded in:
fast_rcnn.bbox_normalization) with what an exact resume needs beside them (fast_rcnn.train_state).

This module is the training driver: its public functions read `cfg` once, at their top, and pass
plain values down.

Data-parallel training (caffe.solver_count() > 1, one process per GPU or MPI rank; see
docs/parallel.md): the solver joins the other ranks through caffe.NCCL (gradients averaged before
each update, weights broadcast from rank 0 after construction and restore), the ranks read their
own parts of one shuffled order, each draws its samples with RNG_SEED + rank, and only rank 0
reports and writes snapshots; the .trainstate keeps every rank's random state, so a resumed run
repeats the uninterrupted one exactly.
"""
import contextlib
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

import caffe
from core.roi_targets import BoxTargets
from core.sampling import RoISampling
from fast_rcnn import folder_lock, train_state
from fast_rcnn.bbox_normalization import BBoxNormalization
from fast_rcnn.config import cfg
from fast_rcnn.train_state import TRAIN_STATE_EXT  # noqa: F401  (the tools' name for it)
from fast_rcnn.training_log import TrainingReporter
import roi_data_layer.roidb as rdl_roidb


class TrainingError(RuntimeError):
    """A training setup that cannot work (no data layer, inconsistent config, bad snapshot)."""


class LossNotFinite(TrainingError):
    """A loss became NaN or Inf: the weights are spoiled, so no snapshot is written. The run
    diverged at `iteration` (the losses' values at that iteration in `losses`); `last_snapshot`
    is the last model written before it, or None."""

    def __init__(self, message, iteration, losses, last_snapshot):
        super().__init__(message)
        self.iteration = iteration
        self.losses = losses
        self.last_snapshot = last_snapshot

    def __reduce__(self):
        return (LossNotFinite, (str(self), self.iteration, self.losses, self.last_snapshot))


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM arrived: the iteration under way was finished and a snapshot written.
    exit_code is the shell's convention for death by that signal (130 SIGINT, 143 SIGTERM)."""

    def __init__(self, signum, iteration, model_path, state_path):
        self.signum = signum
        self.iteration = iteration
        self.exit_code = 128 + int(signum)
        self.model_path = model_path
        self.state_path = state_path
        super().__init__('interrupted by %s at iteration %d; snapshot written to %s; resume '
                         'with --restore %s' % (signal.Signals(signum).name, iteration,
                                                 model_path, state_path))

    def __reduce__(self):
        # Crosses process boundaries (alt-opt runs each step in its own process).
        return (TrainingInterrupted, (self.signum, self.iteration, self.model_path,
                                      self.state_path))


@dataclass(frozen=True)
class TrainSettings:
    """What the training loop needs from the config: has_rpn (end-to-end / RPN training),
    bbox_reg (the detector regresses boxes), box_targets (core.roi_targets.BoxTargets),
    snapshot_iters (0: only at the end), snapshot_infix, eps."""
    has_rpn: bool = False
    bbox_reg: bool = True
    box_targets: BoxTargets = BoxTargets()
    snapshot_iters: int = 10000
    snapshot_infix: str = ''
    eps: float = 1e-14

    @classmethod
    def from_cfg(cls, config):
        train = config.TRAIN
        return cls(bool(train.HAS_RPN), bool(train.BBOX_REG), BoxTargets.from_cfg(train),
                   int(train.SNAPSHOT_ITERS), train.SNAPSHOT_INFIX, float(config.EPS))


class SolverWrapper:
    """Owns the solver and the box-target statistics, and writes snapshots whose bbox_pred layer is
    un-normalized (and a .solverstate and .trainstate beside it to resume from).

    settings: TrainSettings (default: from cfg)."""

    def __init__(self, solver_prototxt, roidb, output_dir, pretrained_model=None, settings=None,
                 shuffle_seed=None, uid=None):
        self.settings = settings = settings or TrainSettings.from_cfg(cfg)
        self.output_dir = output_dir
        targets = settings.box_targets
        if settings.has_rpn and settings.bbox_reg and targets.normalize and \
                not targets.precomputed:
            # With an RPN the RoIs are made during training, so target statistics cannot be
            # computed from the roidb beforehand.
            raise TrainingError('end-to-end training with BBOX_NORMALIZE_TARGETS needs '
                                'TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED: True '
                                '(see experiments/cfgs/faster_rcnn_end2end.yml)')
        stats = None
        if settings.bbox_reg:
            print('Computing bounding-box regression targets...', flush=True)
            stats = rdl_roidb.add_bbox_regression_targets(roidb, targets, settings.eps)
            print('done', flush=True)

        self.solver = caffe.get_solver(solver_prototxt)  # the method the file's `type` names
        self.nccl = _join_ranks(self.solver, uid)
        param = self.solver.param
        self.snapshot_prefix = param.snapshot_prefix or \
            os.path.splitext(os.path.basename(solver_prototxt))[0]
        self.display = max(int(param.display), 1) if param.display else 20
        # This wrapper shows progress and takes the snapshots itself: the solver's own display
        # would print every loss again and its snapshots would keep normalized bbox_pred weights.
        param.display = 0
        param.snapshot = 0
        if pretrained_model is not None:
            print('Loading pretrained model weights from %s' % pretrained_model, flush=True)
            self._report_copied(pretrained_model, self.solver.net.copy_from(pretrained_model))
        self.normalization = self._normalization(stats)
        if self.nccl is None:
            self._data_layer().set_roidb(roidb)
            return
        self.nccl.bcast()
        if shuffle_seed is None:
            # Unseeded (--rand): rank 0 draws the order's seed for everyone.
            mine = np.random.randint(2 ** 31) if self.nccl.rank == 0 else 0
            shuffle_seed = int(self.nccl.sum_host(np.array([mine], dtype=np.float64))[0])
        self._data_layer().set_roidb(roidb, shuffle_seed=shuffle_seed)

    def _report_copied(self, pretrained_model, copied):
        """How many of the net's layers with parameters the weights file filled: a file made
        for another net fills none, and training would silently start from random weights."""
        net = self.solver.net
        learnable = [name for name, layer in net.layer_dict.items() if layer.blobs]
        copied = set(copied)
        filled = [name for name in learnable if name in copied]
        print('Copied the weights of %d of the %d layers with parameters from %s%s'
              % (len(filled), len(learnable), pretrained_model,
                 '' if len(filled) == len(learnable) else ' (not in it: %s)'
                 % _some(sorted(set(learnable) - set(filled)))), flush=True)
        if learnable and not filled and (self.nccl is None or self.nccl.rank == 0):
            print('WARNING: %s shares no layer name with the net %s: NOTHING WAS COPIED and '
                  'training starts from random weights. Is it the model this prototxt was '
                  'meant for?' % (pretrained_model, net.name), file=sys.stderr, flush=True)

    def _data_layer(self):
        for layer in self.solver.net.layers:
            if hasattr(layer, 'set_roidb'):
                return layer
        raise TrainingError('the training net has no RoI data layer (a Python layer with '
                            'set_roidb, e.g. roi_data_layer.layer.RoIDataLayer)')

    def _normalization(self, stats):
        """The BBoxNormalization of bbox_pred, or None when there is nothing to fold (no box
        regression, targets not normalized, or no bbox_pred layer)."""
        net = self.solver.net
        if stats is None or not self.settings.box_targets.normalize or \
                'bbox_pred' not in net.params:
            return None
        try:
            return BBoxNormalization(stats[0], stats[1],
                                     net.params['bbox_pred'][0].data.shape[0])
        except ValueError as e:
            raise TrainingError(str(e)) from None

    @property
    def snapshot_base(self):
        """<output_dir>/<prefix>[_<infix>]: snapshots add _iter_N.caffemodel to it."""
        infix = self.settings.snapshot_infix
        return os.path.join(self.output_dir,
                            self.snapshot_prefix + ('_' + infix if infix else ''))

    def snapshot(self):
        """Writes <snapshot_base>_iter_N.caffemodel (deployable: bbox_pred un-normalized), the
        matching .solverstate and, last, the .trainstate that seals the set (fast_rcnn.
        train_state), each atomically; returns the model path. With several ranks every rank
        calls it (their random states are gathered) and rank 0 writes."""
        rank_states = None
        if self.nccl is not None:
            rank_states = self.nccl.gather(train_state.capture(self._data_layer(), None))
            if self.nccl.rank != 0:
                return self._snapshot_path()
        base = self.snapshot_base
        os.makedirs(os.path.dirname(base), exist_ok=True)
        bbox_pred = self.solver.net.params.get('bbox_pred') if self.normalization else None
        trained = self.normalization.fold(bbox_pred) if bbox_pred else None
        param = self.solver.param
        prefix = param.snapshot_prefix
        try:
            param.snapshot_prefix = base
            model_path, state_path = self.solver.snapshot()
        finally:
            param.snapshot_prefix = prefix
            if trained is not None:
                BBoxNormalization.restore(bbox_pred, trained)
        state = train_state.capture(self._data_layer(), trained)
        if rank_states is not None:
            state['ranks'] = rank_states
        train_state.save(model_path, state_path, self.solver.iter, state)
        print('Wrote snapshot to: %s' % model_path, flush=True)
        return model_path

    def _snapshot_path(self):
        """The model path rank 0 writes at this iteration (Solver.snapshot_filename)."""
        param = self.solver.param
        hdf5 = param.snapshot_format == caffe.proto.caffe_pb2.SolverParameter.HDF5
        return '%s_iter_%d%s' % (self.snapshot_base, self.solver.iter,
                                 '.caffemodel.h5' if hdf5 else '.caffemodel')

    def restore(self, snapshot):
        """Resumes from a snapshot (its .solverstate, or the train_state.Snapshot that
        check_snapshot made of it, which refuses incomplete or mixed sets): iteration, momentum
        history and the weights (the .caffemodel beside the .solverstate), with bbox_pred as
        trained, the RNGs and the data layer's position. With several ranks, every rank restores
        from the same files, then rank 0's weights are broadcast (as Caffe broadcasts after a
        restore)."""
        if isinstance(snapshot, str):
            snapshot = train_state.check_snapshot(snapshot)
        self._restore(snapshot)
        if self.nccl is not None:
            self.nccl.bcast()

    def _restore(self, snapshot):
        print('Restoring solver state from %s' % snapshot.solverstate, flush=True)
        self.solver.restore(snapshot.solverstate, weights=snapshot.weights)
        state_file = train_state.train_state_path(snapshot.solverstate)
        if self.solver.iter != snapshot.iteration:
            raise TrainingError('%s is at iteration %d but %s records %d'
                                % (snapshot.solverstate, self.solver.iter, state_file,
                                   snapshot.iteration))
        state = snapshot.state
        if (state['bbox_pred'] is None) != (self.normalization is None):
            raise TrainingError(
                '%s was written by a run that %s bbox_pred\'s target normalization; this run '
                '%s (resume with the solver, --cfg and --set options of the first run)'
                % (state_file, 'did not fold' if state['bbox_pred'] is None else 'folded',
                   'does' if self.normalization is not None else 'does not'))
        if state['bbox_pred'] is not None:
            params = self.solver.net.params['bbox_pred']
            shapes = tuple(a.shape for a in state['bbox_pred'])
            if shapes != (params[0].data.shape, params[1].data.shape):
                raise TrainingError('%s holds bbox_pred of shapes %s; the net has %s'
                                    % (state_file, shapes,
                                       (params[0].data.shape, params[1].data.shape)))
            BBoxNormalization.restore(params, state['bbox_pred'])
        own = self._own_state(state, snapshot.solverstate)
        if own is None:
            return
        try:
            train_state.apply(own, self._data_layer())
        except caffe.CaffeError as e:
            raise TrainingError('%s: %s' % (snapshot.solverstate, e)) from None

    def _own_state(self, state, solverstate):
        """This rank's part of a .trainstate (a data-parallel snapshot keeps every rank's random
        state and reading position under 'ranks'); None, with a warning, when the snapshot was
        written by another number of ranks."""
        ranks, rank = (1, 0) if self.nccl is None else (self.nccl.count, self.nccl.rank)
        saved = state.get('ranks') or [state]
        if len(saved) != ranks:
            print('warning: %s was written by %d rank(s), this run has %d; it continues from '
                  'the weights and solver state, not exactly as the original run would'
                  % (train_state.train_state_path(solverstate), len(saved), ranks), flush=True)
            return None
        own = {k: v for k, v in saved[rank].items() if k != 'bbox_pred'}
        return dict(state, **own)

    def _loss_outputs(self):
        net = self.solver.net
        weights = net.blob_loss_weights
        return [name for name in net.outputs if weights.get(name, 0.0)]

    def train_model(self, max_iters):
        """Steps the solver up to iteration max_iters; snapshots every settings.snapshot_iters
        and at the end. Returns the paths of the written models. Progress goes to the terminal
        and, one JSON line per iteration, to <snapshot_base>_training.jsonl.

        A loss that becomes NaN or Inf raises LossNotFinite before any further snapshot (the
        last one written stays the last good one). SIGINT/SIGTERM let the iteration under way
        finish, then a snapshot is written and TrainingInterrupted raised. Any other error (a
        bad image, a full disk) writes a snapshot of the last completed iteration, as an
        interruption does, before it is raised again."""
        solver = self.solver
        losses = self._loss_outputs()
        root = self.nccl is None or self.nccl.rank == 0
        reporter = TrainingReporter(losses, max_iters, self.display,
                                    log_path=self.training_log_path if root else None,
                                    start_iter=solver.iter, quiet=not root)
        model_paths = []
        last_snapshot = start_iter = solver.iter
        every = self.settings.snapshot_iters
        # The RNG and data layer state an iteration started from, while it is under way (None
        # when the live state goes with the weights); whether its update has begun.
        pending, updating = None, [False]
        solver.add_callback(lambda: None, lambda: updating.__setitem__(0, True))
        data_layer = self._data_layer()
        try:
            with _StopRequests() as stop:
                while solver.iter < max_iters:
                    pending, updating[0] = train_state.capture(data_layer, None), False
                    tic = time.perf_counter()
                    solver.step(1)
                    pending = None
                    elapsed = time.perf_counter() - tic
                    values = {name: float(np.sum(solver.net.blobs[name].data))
                              for name in losses}
                    if self.nccl is not None:
                        values, stop.signum = self._agree(values, stop.signum)
                    self._check_finite(values, model_paths)
                    it = solver.iter
                    reporter.iteration(it, values, solver.learning_rate(), elapsed)
                    if every > 0 and it % every == 0:
                        model_paths.append(self.snapshot())
                        last_snapshot = it
                    if stop.signum is not None:
                        if last_snapshot != it:
                            model_paths.append(self.snapshot())
                        raise TrainingInterrupted(stop.signum, it, model_paths[-1],
                                                  train_state.solverstate_path(model_paths[-1]))
        except (TrainingInterrupted, LossNotFinite):
            raise
        except Exception as e:
            if pending is None or not updating[0]:
                self._snapshot_after_error(e, pending, last_snapshot, start_iter)
            raise
        finally:
            reporter.close()
        if last_snapshot != solver.iter or not model_paths:
            model_paths.append(self.snapshot())
        return model_paths

    def _snapshot_after_error(self, error, pending, last_snapshot, start_iter):
        """After `error` stopped training, writes a snapshot of the last completed iteration
        (with the RNG and data layer state it ended with: `pending`, when the error came in
        the middle of the next one) and says how to resume."""
        it = self.solver.iter
        if it == last_snapshot or it == start_iter:
            return  # that iteration's snapshot is on disk already (or nothing was learned)
        if self.nccl is not None:
            # A snapshot needs every rank, and the others are not here to help.
            print('Training stopped by an error at iteration %d on rank %d; no snapshot was '
                  'written (the ranks snapshot together)' % (it + 1, self.nccl.rank),
                  file=sys.stderr, flush=True)
            return
        print('Training stopped by an error at iteration %d (%s: %s); writing a snapshot of '
              'iteration %d first' % (it + 1, type(error).__name__, error, it),
              file=sys.stderr, flush=True)
        try:
            if pending is not None:
                train_state.apply(pending, self._data_layer())
            model_path = self.snapshot()
        except Exception as e:  # the disk that failed the run may fail this too
            print('could not write the snapshot either (%s: %s)' % (type(e).__name__, e),
                  file=sys.stderr, flush=True)
            return
        print('Wrote snapshot to %s; when the cause is fixed, resume with --restore %s'
              % (model_path, train_state.solverstate_path(model_path)),
              file=sys.stderr, flush=True)

    def _agree(self, values, signum):
        """The ranks' mean losses, and whether any rank was asked to stop (so that all stop
        together, at the same iteration)."""
        names = sorted(values)
        summed = self.nccl.sum_host(np.array([values[n] for n in names] + [signum or 0],
                                             dtype=np.float64))
        means = {n: float(v) / self.nccl.count for n, v in zip(names, summed)}
        return means, signum or (signal.SIGTERM if summed[-1] else None)

    @property
    def training_log_path(self):
        return self.snapshot_base + '_training.jsonl'

    def _check_finite(self, values, model_paths):
        # The update that made a loss NaN/Inf has already spoiled the weights: stop before a
        # snapshot could overwrite anything good with them.
        bad = [name for name, v in values.items() if not np.isfinite(v)]
        if not bad:
            return
        last = model_paths[-1] if model_paths else None
        raise LossNotFinite('loss %s is %s at iteration %d; training stopped (last good '
                            'snapshot: %s). Lower the learning rate or check the data.'
                            % (', '.join(bad), values[bad[0]], self.solver.iter,
                               last or 'none written in this run'),
                            self.solver.iter, values, last)


class _StopRequests:
    """While active, SIGINT and SIGTERM only record that a stop was asked for (signum); the
    training loop finishes its iteration, snapshots and stops. Outside the main thread signal
    handlers cannot be set, and it does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum is not None:
            # A second request: the user means it; stop now (the last snapshot is intact).
            raise KeyboardInterrupt
        self.signum = signum
        print('\n%s received: finishing this iteration, then writing a snapshot (send it '
              'again to stop at once)' % signal.Signals(signum).name, flush=True)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


def _join_ranks(solver, uid):
    """With several solvers, this one joined to the others through caffe.NCCL, as Caffe's
    python/train.py does (the callback, and the layer-wise reduction where the solver asks for
    it and no layers share weights); None for a single solver."""
    if caffe.solver_count() == 1:
        return None
    nccl = caffe.NCCL(solver, uid)
    solver.add_callback(nccl)
    if solver.param.layer_wise_reduce and not nccl.shares_weights:
        solver.net.after_backward(nccl)
    print('Rank %d of %d: gradients exchanged over %s' % (nccl.rank, nccl.count, nccl.engine),
          flush=True)
    return nccl


def get_training_roidb(imdb):
    """The roidb to train on: with cfg.TRAIN.USE_FLIPPED, every image also mirrored; entries
    prepared for the data layer (image paths, sizes, max overlaps)."""
    if cfg.TRAIN.USE_FLIPPED:
        print('Appending horizontally-flipped training examples...', flush=True)
        imdb.append_flipped_images()
        print('done', flush=True)
    print('Preparing training data...', flush=True)
    rdl_roidb.prepare_roidb(imdb)
    print('done', flush=True)
    return imdb.roidb


def training_roidb(imdb_names, rpn_files=None):
    """The imdb and training roidb of one dataset name, or of several joined with '+' (the
    paper's 07+12), with cfg.TRAIN.PROPOSAL_METHOD's boxes. rpn_files: the proposals file of
    each dataset for PROPOSAL_METHOD 'rpn' (one path, or a list parallel to the names)."""
    from datasets.factory import get_imdb
    from datasets.imdb import imdb as imdb_class
    names = imdb_names.split('+')
    if not isinstance(rpn_files, (list, tuple)):
        rpn_files = [rpn_files] * len(names)
    if len(rpn_files) != len(names):
        raise TrainingError('%d proposal files for the %d datasets of %s'
                            % (len(rpn_files), len(names), imdb_names))
    imdbs, roidb = [], []
    for name, rpn_file in zip(names, rpn_files):
        imdb = get_imdb(name)
        print('Loaded dataset `%s` for training' % imdb.name, flush=True)
        if rpn_file is not None:
            imdb.config['rpn_file'] = rpn_file
        # Dense windows (Table 10) are made for images scaled as training scales them.
        imdb.config['dense_scales'] = tuple(cfg.TRAIN.SCALES)
        imdb.config['dense_max_size'] = cfg.TRAIN.MAX_SIZE
        imdb.set_proposal_method(cfg.TRAIN.PROPOSAL_METHOD)
        print('Set proposal method: %s' % cfg.TRAIN.PROPOSAL_METHOD, flush=True)
        roidb.extend(get_training_roidb(imdb))
        imdbs.append(imdb)
    if len(imdbs) == 1:
        return imdbs[0], roidb
    if len({im.classes for im in imdbs}) != 1:
        raise TrainingError('datasets %s do not share one class list' % imdb_names)
    return imdb_class(imdb_names, imdbs[0].classes), roidb


def filter_roidb(roidb, sampling=None):
    """Drops the entries with neither a foreground nor a background RoI under the RoI rule
    (sampling: core.sampling.RoISampling; default: cfg.TRAIN's)."""
    sampling = sampling or RoISampling.from_cfg(cfg.TRAIN)

    def has_training_rois(entry):
        fg, bg = sampling.fg_bg_masks(entry['max_overlaps'])
        return bool(fg.any() or bg.any())

    kept = [entry for entry in roidb if has_training_rois(entry)]
    print('Filtered %d roidb entries: %d -> %d' % (len(roidb) - len(kept), len(roidb), len(kept)),
          flush=True)
    return kept


def seed_rngs(seed):
    """Seeds numpy (minibatch sampling) and the runtime (weight fillers, dropout)."""
    np.random.seed(seed)
    caffe.set_random_seed(seed)


def train_net(solver_prototxt, roidb, output_dir, pretrained_model=None, max_iters=40000,
              restore=None, rand=False):
    """Trains a network to iteration max_iters and returns the paths of its snapshots.

    restore: a .solverstate to resume from (a snapshot of an earlier run of the same setup).
    rand: leave the RNGs unseeded; by default they are seeded with cfg.RNG_SEED.
    """
    return train(solver_prototxt, roidb, output_dir, pretrained_model, max_iters, restore,
                 None if rand else cfg.RNG_SEED, TrainSettings.from_cfg(cfg),
                 RoISampling.from_cfg(cfg.TRAIN)).model_paths


@dataclass
class TrainResult:
    """What a training run produced: its snapshots (the last is the final model), the iteration
    it reached, and its .jsonl progress log."""
    model_paths: list
    iterations: int
    training_log: str

    @property
    def final_model(self):
        return self.model_paths[-1]


def check_max_iters(max_iters):
    """TrainingError unless max_iters (--iters) is a number of iterations."""
    if int(max_iters) < 0:
        raise TrainingError('--iters is %d; expected the iteration to train to (>= 0)'
                            % max_iters)


def train(solver_prototxt, roidb, output_dir, pretrained_model, max_iters, restore, seed,
          settings, sampling, uid=None):
    """train_net with every setting explicit (seed None: unseeded); returns a TrainResult.
    With caffe.solver_count() > 1 this process is rank caffe.solver_rank() of a data-parallel
    run (uid: the caffe.NCCL unique id its parent made, for GPUs started without mpiexec).

    One training at a time writes into output_dir (fast_rcnn.folder_lock; the root solver of a
    data-parallel run holds the lock); temporary files left there by a killed run are removed.
    restore must name the .solverstate of a complete snapshot set (train_state.check_snapshot)
    at an iteration <= max_iters."""
    check_max_iters(max_iters)
    if pretrained_model is not None and not os.path.isfile(pretrained_model):
        raise TrainingError('weights file %s not found; see data/README.md' % pretrained_model)
    os.makedirs(output_dir, exist_ok=True)
    with _training_lock(output_dir):
        if caffe.solver_rank() == 0:  # the writer of the folder
            for path in train_state.remove_leftover_temporaries(output_dir):
                print('Removed %s, left by a run that was killed while writing it' % path,
                      flush=True)
        snapshot = None
        if restore:
            snapshot = train_state.check_snapshot(restore)
            if snapshot.iteration > max_iters:
                raise TrainingError('--restore %s is at iteration %d, past --iters %d: there is '
                                    'nothing to train (pass --iters above %d to go on)'
                                    % (restore, snapshot.iteration, max_iters,
                                       snapshot.iteration))
        if seed is not None:
            # Each rank samples its own images with its own stream (Caffe seeds rank r with
            # random_seed + r); rank 0, and a single process, with the seed itself.
            seed_rngs(seed + caffe.solver_rank())
        roidb = filter_roidb(roidb, sampling)
        if not roidb:
            raise TrainingError('no training image has a foreground or background RoI')
        sw = SolverWrapper(solver_prototxt, roidb, output_dir,
                           pretrained_model=pretrained_model, settings=settings,
                           shuffle_seed=seed, uid=uid)
        if snapshot is not None:
            sw.restore(snapshot)
            if snapshot.iteration == max_iters:
                print('%s is at iteration %d already: nothing to train' % (restore, max_iters),
                      flush=True)
                return TrainResult([snapshot.weights], max_iters, sw.training_log_path)
        print('Solving...', flush=True)
        model_paths = sw.train_model(max_iters)
        print('done solving', flush=True)
        return TrainResult(model_paths, sw.solver.iter, sw.training_log_path)


@contextlib.contextmanager
def _training_lock(output_dir):
    if caffe.solver_rank() != 0:
        yield  # the root solver alone writes snapshots and holds the lock
        return
    try:
        with folder_lock.training_lock(output_dir):
            yield
    except folder_lock.FolderInUse as e:
        raise TrainingError(str(e)) from None


def _some(names, limit=8):
    """The first `limit` names, and how many there are in all when that is more."""
    shown = ', '.join(names[:limit])
    return shown if len(names) <= limit else '%s, ... (%d in all)' % (shown, len(names))
