"""Training a Fast R-CNN / Faster R-CNN network: a thin loop over the runtime's solver that feeds
the roidb to the net's data layer, reports progress (fast_rcnn.training_log), and writes
deployable snapshots (bbox_pred with the target normalization folded in:
fast_rcnn.bbox_normalization) with what an exact resume needs beside them (fast_rcnn.train_state).

This module is the training driver: its public functions read `cfg` once, at their top, and pass
plain values down.
"""
import os
import signal
import threading
import time
from dataclasses import dataclass

import numpy as np

import caffe
from core.roi_targets import BoxTargets
from core.sampling import RoISampling
from fast_rcnn import train_state
from fast_rcnn.bbox_normalization import BBoxNormalization
from fast_rcnn.config import cfg
from fast_rcnn.train_state import TRAIN_STATE_EXT  # noqa: F401  (the tools' name for it)
from fast_rcnn.training_log import TrainingReporter
import roi_data_layer.roidb as rdl_roidb


class TrainingError(RuntimeError):
    """A training setup that cannot work (no data layer, inconsistent config, bad snapshot)."""


class TrainingDiverged(TrainingError):
    """A loss became NaN or Inf: the run diverged at `iteration` (the losses' values at that
    iteration in `losses`); `last_snapshot` is the last model written before it, or None."""

    def __init__(self, message, iteration, losses, last_snapshot):
        super().__init__(message)
        self.iteration = iteration
        self.losses = losses
        self.last_snapshot = last_snapshot

    def __reduce__(self):
        return (TrainingDiverged, (str(self), self.iteration, self.losses, self.last_snapshot))


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

    def __init__(self, solver_prototxt, roidb, output_dir, pretrained_model=None, settings=None):
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
            self.solver.net.copy_from(pretrained_model)
        self.normalization = self._normalization(stats)
        self._data_layer().set_roidb(roidb)

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
        matching .solverstate and .trainstate, each atomically; returns the model path."""
        base = self.snapshot_base
        os.makedirs(os.path.dirname(base), exist_ok=True)
        bbox_pred = self.solver.net.params.get('bbox_pred') if self.normalization else None
        trained = self.normalization.fold(bbox_pred) if bbox_pred else None
        param = self.solver.param
        prefix = param.snapshot_prefix
        try:
            param.snapshot_prefix = base
            model_path, _ = self.solver.snapshot()
        finally:
            param.snapshot_prefix = prefix
            if trained is not None:
                BBoxNormalization.restore(bbox_pred, trained)
        train_state.save(model_path, train_state.capture(self._data_layer(), trained))
        print('Wrote snapshot to: %s' % model_path, flush=True)
        return model_path

    def restore(self, solverstate):
        """Resumes from a .solverstate written by snapshot(): iteration, momentum history and the
        weights, with bbox_pred brought back to the normalized form the training loss uses; and,
        from the .trainstate beside it, the RNGs and the data layer's position."""
        if not os.path.isfile(solverstate):
            raise TrainingError('solver state %s not found' % solverstate)
        print('Restoring solver state from %s' % solverstate, flush=True)
        self.solver.restore(solverstate)
        try:
            state = train_state.load(solverstate)
        except ValueError as e:
            raise TrainingError(str(e)) from None
        bbox_pred = self.solver.net.params.get('bbox_pred') if self.normalization else None
        if state is None:
            print('warning: no %s beside %s; the resumed run will not repeat the original '
                  'one exactly' % (TRAIN_STATE_EXT, solverstate), flush=True)
            if bbox_pred:
                self.normalization.unfold(bbox_pred)
            return
        if state['bbox_pred'] is not None:
            BBoxNormalization.restore(self.solver.net.params['bbox_pred'], state['bbox_pred'])
        train_state.apply(state, self._data_layer())

    def _loss_outputs(self):
        net = self.solver.net
        weights = net.blob_loss_weights
        return [name for name in net.outputs if weights.get(name, 0.0)]

    def train_model(self, max_iters):
        """Steps the solver up to iteration max_iters; snapshots every settings.snapshot_iters
        and at the end. Returns the paths of the written models. Progress goes to the terminal
        and, one JSON line per iteration, to <snapshot_base>_training.jsonl.

        A loss that becomes NaN or Inf raises TrainingError before any further snapshot (the
        last one written stays the last good one). SIGINT/SIGTERM let the iteration under way
        finish, then a snapshot is written and TrainingInterrupted raised."""
        solver = self.solver
        losses = self._loss_outputs()
        reporter = TrainingReporter(losses, max_iters, self.display,
                                    log_path=self.training_log_path, start_iter=solver.iter)
        model_paths = []
        last_snapshot = -1
        every = self.settings.snapshot_iters
        try:
            with _StopRequests() as stop:
                while solver.iter < max_iters:
                    tic = time.perf_counter()
                    solver.step(1)
                    elapsed = time.perf_counter() - tic
                    values = {name: float(np.sum(solver.net.blobs[name].data))
                              for name in losses}
                    self._check_finite(values, model_paths)
                    it = solver.iter
                    reporter.iteration(it, values, solver.learning_rate(), elapsed)
                    if every > 0 and it % every == 0:
                        last_snapshot = it
                        model_paths.append(self.snapshot())
                    if stop.signum is not None:
                        if last_snapshot != it:
                            model_paths.append(self.snapshot())
                        raise TrainingInterrupted(stop.signum, it, model_paths[-1],
                                                  os.path.splitext(model_paths[-1])[0]
                                                  + '.solverstate')
        finally:
            reporter.close()
        if last_snapshot != solver.iter or not model_paths:
            model_paths.append(self.snapshot())
        return model_paths

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
        raise TrainingDiverged('loss %s is %s at iteration %d; training stopped (last good '
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


def train(solver_prototxt, roidb, output_dir, pretrained_model, max_iters, restore, seed,
          settings, sampling):
    """train_net with every setting explicit (seed None: unseeded); returns a TrainResult."""
    if pretrained_model is not None and not os.path.isfile(pretrained_model):
        raise TrainingError('weights file %s not found; see data/README.md' % pretrained_model)
    if seed is not None:
        seed_rngs(seed)
    roidb = filter_roidb(roidb, sampling)
    if not roidb:
        raise TrainingError('no training image has a foreground or background RoI')
    os.makedirs(output_dir, exist_ok=True)
    sw = SolverWrapper(solver_prototxt, roidb, output_dir, pretrained_model=pretrained_model,
                       settings=settings)
    if restore:
        sw.restore(restore)
    print('Solving...', flush=True)
    model_paths = sw.train_model(max_iters)
    print('done solving', flush=True)
    return TrainResult(model_paths, sw.solver.iter, sw.training_log_path)
