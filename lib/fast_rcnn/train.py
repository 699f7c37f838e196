"""Training a Fast R-CNN / Faster R-CNN network: a thin loop over the runtime's solver that feeds
the roidb to the net's data layer, shows progress, and writes deployable snapshots.

Deployable means: the detector learns normalized box targets ((t - mean) / std, paper Sec. 3.1.2
and the release), so the saved bbox_pred layer has the normalization folded back into its weights
and a test net needs no means or stds.
"""
import os
import pickle
import signal
import threading
import time

import numpy as np

import caffe
from caffe import common as caffe_common
from caffe import io as caffe_io
from fast_rcnn.config import cfg
import roi_data_layer.roidb as rdl_roidb

# Beside each .solverstate: what Caffe's state file lacks for an exact resume (see snapshot()).
TRAIN_STATE_EXT = '.trainstate'


class TrainingError(RuntimeError):
    """A training setup that cannot work (no data layer, inconsistent config, bad snapshot)."""


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


class SolverWrapper:
    """Owns the solver and the box-target statistics, and writes snapshots whose bbox_pred layer is
    un-normalized (and a .solverstate beside it to resume from)."""

    def __init__(self, solver_prototxt, roidb, output_dir, pretrained_model=None):
        self.output_dir = output_dir
        if (cfg.TRAIN.HAS_RPN and cfg.TRAIN.BBOX_REG and cfg.TRAIN.BBOX_NORMALIZE_TARGETS
                and not cfg.TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED):
            # With an RPN the RoIs are made during training, so target statistics cannot be
            # computed from the roidb beforehand.
            raise TrainingError('end-to-end training with BBOX_NORMALIZE_TARGETS needs '
                                'TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED: True '
                                '(see experiments/cfgs/faster_rcnn_end2end.yml)')
        self.bbox_means = self.bbox_stds = None
        if cfg.TRAIN.BBOX_REG:
            print('Computing bounding-box regression targets...', flush=True)
            self.bbox_means, self.bbox_stds = rdl_roidb.add_bbox_regression_targets(roidb)
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
        self._data_layer().set_roidb(roidb)

    def _data_layer(self):
        for layer in self.solver.net.layers:
            if hasattr(layer, 'set_roidb'):
                return layer
        raise TrainingError('the training net has no RoI data layer (a Python layer with '
                            'set_roidb, e.g. roi_data_layer.layer.RoIDataLayer)')

    # bbox_pred normalization ------------------------------------------------------------------
    def _bbox_stats(self):
        """(means, stds) shaped like bbox_pred's outputs, or None when no un-normalization is
        due (no box regression, targets not normalized, or no bbox_pred layer)."""
        net = self.solver.net
        if not (cfg.TRAIN.BBOX_REG and cfg.TRAIN.BBOX_NORMALIZE_TARGETS
                and 'bbox_pred' in net.params and self.bbox_stds is not None):
            return None
        n_out = net.params['bbox_pred'][0].data.shape[0]
        means = np.asarray(self.bbox_means, dtype=np.float64).ravel()
        stds = np.asarray(self.bbox_stds, dtype=np.float64).ravel()
        if stds.size == 4 and n_out != 4:
            means, stds = np.tile(means, n_out // 4), np.tile(stds, n_out // 4)
        if stds.size != n_out or means.size != n_out:
            raise TrainingError('bbox_pred has %d outputs but the target statistics have %d '
                                'values (num_classes in the prototxt vs the dataset?)'
                                % (n_out, stds.size))
        return means, stds

    def _unnormalize_bbox_pred(self):
        """Folds the target normalization into bbox_pred; returns the original arrays."""
        stats = self._bbox_stats()
        if stats is None:
            return None
        means, stds = stats
        weights, biases = self.solver.net.params['bbox_pred'][:2]
        saved = (weights.data.copy(), biases.data.copy())
        weights.data[...] = weights.data * stds.reshape((-1,) + (1,) * (weights.data.ndim - 1))
        biases.data[...] = biases.data * stds + means
        return saved

    def _normalize_bbox_pred(self):
        """The inverse of _unnormalize_bbox_pred, for weights read back from a snapshot."""
        stats = self._bbox_stats()
        if stats is None:
            return
        means, stds = stats
        # Outputs with std 0 (the background class when the statistics come from the roidb)
        # were saved as 0 and never regress; they stay 0.
        inv = np.divide(1.0, stds, out=np.zeros_like(stds), where=stds != 0)
        weights, biases = self.solver.net.params['bbox_pred'][:2]
        weights.data[...] = weights.data * inv.reshape((-1,) + (1,) * (weights.data.ndim - 1))
        biases.data[...] = (biases.data - means) * inv

    # snapshots --------------------------------------------------------------------------------
    def snapshot(self):
        """Writes <output_dir>/<prefix>[_<infix>]_iter_N.caffemodel (deployable: bbox_pred
        un-normalized) and the matching .solverstate, each atomically; returns the model path."""
        infix = '_' + cfg.TRAIN.SNAPSHOT_INFIX if cfg.TRAIN.SNAPSHOT_INFIX else ''
        base = os.path.join(self.output_dir, self.snapshot_prefix + infix)
        os.makedirs(os.path.dirname(base), exist_ok=True)
        saved = self._unnormalize_bbox_pred()
        param = self.solver.param
        prefix = param.snapshot_prefix
        try:
            param.snapshot_prefix = base
            model_path, _ = self.solver.snapshot()
        finally:
            param.snapshot_prefix = prefix
            if saved is not None:
                weights, biases = self.solver.net.params['bbox_pred'][:2]
                weights.data[...] = saved[0]
                biases.data[...] = saved[1]
        self._write_train_state(model_path, saved)
        print('Wrote snapshot to: %s' % model_path, flush=True)
        return model_path

    def _write_train_state(self, model_path, normalized_bbox_pred):
        # A resumed run must continue exactly as an uninterrupted one: it needs the RNG states
        # (numpy: minibatch and RoI sampling; the runtime's: dropout), the data layer's place
        # in its shuffled epoch, and bbox_pred as trained (normalized): undoing the saved
        # un-normalization in floating point would not give back the same bits.
        layer = self._data_layer()
        state = {'numpy_rng': np.random.get_state(),
                 'caffe_rng': caffe_common.rng().get_state(),
                 'data_layer': layer.get_state() if hasattr(layer, 'get_state') else None,
                 'bbox_pred': normalized_bbox_pred}
        path = os.path.splitext(model_path)[0] + TRAIN_STATE_EXT
        caffe_io.atomic_write(path, pickle.dumps(state, pickle.HIGHEST_PROTOCOL))

    def _read_train_state(self, solverstate):
        path = os.path.splitext(solverstate)[0] + TRAIN_STATE_EXT
        if not os.path.isfile(path):
            return None
        try:
            with open(path, 'rb') as f:
                return pickle.load(f)
        except Exception as e:
            raise TrainingError('%s is unreadable (%s: %s); delete it to resume without exact '
                                'reproducibility' % (path, type(e).__name__, e)) from None

    def restore(self, solverstate):
        """Resumes from a .solverstate written by snapshot(): iteration, momentum history and the
        weights, with bbox_pred brought back to the normalized form the training loss uses; and,
        from the .trainstate beside it, the RNGs and the data layer's position."""
        if not os.path.isfile(solverstate):
            raise TrainingError('solver state %s not found' % solverstate)
        print('Restoring solver state from %s' % solverstate, flush=True)
        self.solver.restore(solverstate)
        state = self._read_train_state(solverstate)
        if state is None:
            print('warning: no %s beside %s; the resumed run will not repeat the original '
                  'one exactly' % (TRAIN_STATE_EXT, solverstate), flush=True)
            self._normalize_bbox_pred()
            return
        if state['bbox_pred'] is not None:
            weights, biases = self.solver.net.params['bbox_pred'][:2]
            weights.data[...] = state['bbox_pred'][0]
            biases.data[...] = state['bbox_pred'][1]
        np.random.set_state(state['numpy_rng'])
        caffe_common.rng().set_state(state['caffe_rng'])
        if state['data_layer'] is not None:
            self._data_layer().set_state(state['data_layer'])

    # the loop ---------------------------------------------------------------------------------
    def _loss_outputs(self):
        net = self.solver.net
        weights = net.blob_loss_weights
        return [name for name in net.outputs if weights.get(name, 0.0)]

    def train_model(self, max_iters):
        """Steps the solver up to iteration max_iters; snapshots every cfg.TRAIN.SNAPSHOT_ITERS
        and at the end. Returns the paths of the written models.

        A loss that becomes NaN or Inf raises TrainingError before any further snapshot (the
        last one written stays the last good one). SIGINT/SIGTERM let the iteration under way
        finish, then a snapshot is written and TrainingInterrupted raised."""
        solver = self.solver
        losses = self._loss_outputs()
        sums = dict.fromkeys(losses, 0.0)
        window_iters, window_time = 0, 0.0
        total_time, total_iters = 0.0, 0
        model_paths = []
        last_snapshot = -1
        start_iter = solver.iter
        with _StopRequests() as stop:
            while solver.iter < max_iters:
                tic = time.perf_counter()
                solver.step(1)
                elapsed = time.perf_counter() - tic
                window_time += elapsed
                total_time += elapsed
                window_iters += 1
                total_iters += 1
                values = {name: float(np.sum(solver.net.blobs[name].data)) for name in losses}
                self._check_finite(values, model_paths)
                for name in losses:
                    sums[name] += values[name]
                it = solver.iter
                if it % self.display == 0 or it == max_iters or it == start_iter + 1:
                    per_iter = total_time / total_iters
                    eta = per_iter * (max_iters - it)
                    parts = ', '.join('%s = %.4f' % (name, sums[name] / window_iters)
                                      for name in losses)
                    print('Iteration %d/%d: %s, lr = %g, %.3f s/iter, ETA %s'
                          % (it, max_iters, parts, solver.learning_rate(),
                             window_time / window_iters, _format_seconds(eta)), flush=True)
                    sums = dict.fromkeys(losses, 0.0)
                    window_iters, window_time = 0, 0.0
                if cfg.TRAIN.SNAPSHOT_ITERS > 0 and it % cfg.TRAIN.SNAPSHOT_ITERS == 0:
                    last_snapshot = it
                    model_paths.append(self.snapshot())
                if stop.signum is not None:
                    if last_snapshot != it:
                        model_paths.append(self.snapshot())
                    raise TrainingInterrupted(stop.signum, it, model_paths[-1],
                                              os.path.splitext(model_paths[-1])[0]
                                              + '.solverstate')
        if last_snapshot != solver.iter or not model_paths:
            model_paths.append(self.snapshot())
        return model_paths

    def _check_finite(self, values, model_paths):
        # The update that made a loss NaN/Inf has already spoiled the weights: stop before a
        # snapshot could overwrite anything good with them.
        bad = [name for name, v in values.items() if not np.isfinite(v)]
        if not bad:
            return
        last = model_paths[-1] if model_paths else 'none written in this run'
        raise TrainingError('loss %s is %s at iteration %d; training stopped (last good '
                            'snapshot: %s). Lower the learning rate or check the data.'
                            % (', '.join(bad), values[bad[0]], self.solver.iter, last))


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


def _format_seconds(seconds):
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return '%d:%02d:%02d' % (h, m, s)


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


def _has_training_rois(entry):
    # An image helps only if it yields a foreground or a background RoI.
    overlaps = entry['max_overlaps']
    fg = overlaps >= cfg.TRAIN.FG_THRESH
    bg = (overlaps < cfg.TRAIN.BG_THRESH_HI) & (overlaps >= cfg.TRAIN.BG_THRESH_LO)
    return bool(np.any(fg) or np.any(bg))


def filter_roidb(roidb):
    """Drops the entries with neither a foreground nor a background RoI."""
    kept = [entry for entry in roidb if _has_training_rois(entry)]
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
    if pretrained_model is not None and not os.path.isfile(pretrained_model):
        raise TrainingError('weights file %s not found; see data/README.md' % pretrained_model)
    if not rand:
        seed_rngs(cfg.RNG_SEED)
    roidb = filter_roidb(roidb)
    if not roidb:
        raise TrainingError('no training image has a foreground or background RoI')
    os.makedirs(output_dir, exist_ok=True)
    sw = SolverWrapper(solver_prototxt, roidb, output_dir, pretrained_model=pretrained_model)
    if restore:
        sw.restore(restore)
    print('Solving...', flush=True)
    model_paths = sw.train_model(max_iters)
    print('done solving', flush=True)
    return model_paths
