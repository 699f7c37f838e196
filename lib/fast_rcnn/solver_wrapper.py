"""The solver of a training run and its snapshots: a thin loop over the runtime's solver that
feeds the roidb to the net's data layer, reports progress (fast_rcnn.training_log), and writes
deployable snapshots (bbox_pred with the target normalization folded in:
fast_rcnn.bbox_normalization) with what an exact resume needs beside them (fast_rcnn.train_state).

Data-parallel training (caffe.solver_count() > 1, one process per GPU or MPI rank; see
docs/parallel.md): the solver joins the other ranks through caffe.NCCL (gradients averaged before
each update, weights broadcast from rank 0 after construction and restore), the ranks read their
own parts of one shuffled order, and only rank 0 reports and writes snapshots; the .trainstate
keeps every rank's random state, so a resumed run repeats the uninterrupted one exactly.
"""
import dataclasses
import os
import signal
import sys
import time
from dataclasses import dataclass

import numpy as np

import caffe
from core.roi_targets import BoxTargets
from fast_rcnn import train_state
from fast_rcnn.bbox_normalization import BBoxNormalization
from fast_rcnn.stop_requests import StopRequests
from fast_rcnn.train_roidb import filter_roidb
from fast_rcnn.training_errors import LossNotFinite, TrainingError, TrainingInterrupted
from fast_rcnn.training_log import TrainingReporter
import roi_data_layer.roidb as rdl_roidb
from roi_data_layer.minibatch import MinibatchSettings
from rpn.proposal_target_layer import ProposalTargetLayer


@dataclass(frozen=True)
class TrainSettings:
    """What the trainer needs besides the net: box_targets (core.roi_targets.BoxTargets: the
    roidb's regression targets in Fast R-CNN training, and whether the saved bbox_pred is
    un-normalized), snapshot_iters (0: only at the end), snapshot_infix, eps."""
    box_targets: BoxTargets = BoxTargets()
    snapshot_iters: int = 10000
    snapshot_infix: str = ''
    eps: float = 1e-14


class SolverWrapper:
    """Owns the solver and the box-target statistics, and writes snapshots whose bbox_pred layer is
    un-normalized (and a .solverstate and .trainstate beside it to resume from).

    The net describes itself: its RoI data layer says whether it has an RPN, whether it
    regresses boxes and which roidb entries can give a minibatch (filter_roidb under its RoI
    rule), and an end-to-end net's proposal-target layer how its targets are normalized. settings
    (TrainSettings) gives the rest: the roidb targets of Fast R-CNN training, the snapshots."""

    def __init__(self, solver_prototxt, roidb, output_dir, pretrained_model=None, settings=None,
                 shuffle_seed=None, uid=None):
        self.settings = settings = settings or TrainSettings()
        self.output_dir = output_dir
        self.solver = caffe.get_solver(solver_prototxt)  # the method the file's `type` names
        self.nccl = join_ranks(self.solver, uid)
        param = self.solver.param
        self.snapshot_prefix = param.snapshot_prefix or \
            os.path.splitext(os.path.basename(solver_prototxt))[0]
        self.display = max(int(param.display), 1) if param.display else 20
        # This wrapper shows progress and takes the snapshots itself: the solver's own display
        # would print every loss again and its snapshots would keep normalized bbox_pred weights.
        param.display = 0
        param.snapshot = 0
        data = self._data_layer()
        minibatch = getattr(data, 'settings', None)
        if not isinstance(minibatch, MinibatchSettings):
            raise TrainingError('the data layer %r of the training net has no settings (a '
                                'roi_data_layer.minibatch.MinibatchSettings, read from its '
                                'param_str as RoIDataLayer reads it)' % data.name)
        roidb = filter_roidb(roidb, minibatch.sampling)
        if not roidb:
            raise TrainingError('no training image has a foreground or background RoI')
        self.box_targets = targets = self._box_targets(minibatch.has_rpn)
        if minibatch.has_rpn and minibatch.bbox_reg and targets.normalize and \
                not targets.precomputed:
            # With an RPN the RoIs are made during training, so target statistics cannot be
            # computed from the roidb beforehand.
            raise TrainingError('end-to-end training with normalized box targets needs them '
                                'precomputed (cfg TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED: '
                                'True, see experiments/cfgs/faster_rcnn_end2end.yml)')
        stats = None
        if minibatch.bbox_reg:
            print('Computing bounding-box regression targets...', flush=True)
            stats = rdl_roidb.add_bbox_regression_targets(roidb, targets, settings.eps)
            print('done', flush=True)
        if pretrained_model is not None:
            print('Loading pretrained model weights from %s' % pretrained_model, flush=True)
            self._report_copied(pretrained_model, self.solver.net.copy_from(pretrained_model))
        self.normalization = self._normalization(stats)
        if self.nccl is None:
            data.set_roidb(roidb)
            return
        self.nccl.bcast()
        if shuffle_seed is None:
            # Unseeded (--rand): rank 0 draws the order's seed for everyone.
            mine = np.random.randint(2 ** 31) if self.nccl.rank == 0 else 0
            shuffle_seed = int(self.nccl.sum_host(np.array([mine], dtype=np.float64))[0])
        data.set_roidb(roidb, shuffle_seed=shuffle_seed)

    def _box_targets(self, has_rpn):
        """How the detector's box targets are normalized: an end-to-end net's proposal-target
        layer says it in its param_str (so the saved bbox_pred is un-normalized as that layer
        normalized); otherwise settings.box_targets (the roidb's targets)."""
        targets = self.settings.box_targets
        layers = [l for l in self.solver.net.layers if isinstance(l, ProposalTargetLayer)]
        if not has_rpn or not layers:
            return targets
        own = layers[0].box_targets
        return dataclasses.replace(targets, precomputed=own.precomputed, means=own.means,
                                   stds=own.stds, inside_weights=own.inside_weights)

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
        if stats is None or not self.box_targets.normalize or \
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
            with StopRequests() as stop:
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


def join_ranks(solver, uid):
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


def _some(names, limit=8):
    """The first `limit` names, and how many there are in all when that is more."""
    shown = ', '.join(names[:limit])
    return shown if len(names) <= limit else '%s, ... (%d in all)' % (shown, len(names))
