"""Training a Fast R-CNN / Faster R-CNN network: train() runs a solver (fast_rcnn.solver_wrapper)
on a roidb (fast_rcnn.train_roidb) to an iteration, resuming from a snapshot if asked, with the
output folder locked and the RNGs seeded; train_net is the release's entry point to it.

Everything comes as arguments: the net's own settings are in its prototxt (the tools write them
there: fast_rcnn.experiment), the trainer's in a TrainSettings. Data-parallel training
(caffe.solver_count() > 1): each rank draws its samples with seed + rank (see
fast_rcnn.solver_wrapper).
"""
import contextlib
import os
from dataclasses import dataclass

import numpy as np

import caffe
from fast_rcnn import folder_lock, train_state
from fast_rcnn.solver_wrapper import SolverWrapper
from fast_rcnn.training_errors import TrainingError


def seed_rngs(seed):
    """Seeds numpy (minibatch sampling) and the runtime (weight fillers, dropout)."""
    np.random.seed(seed)
    caffe.set_random_seed(seed)


def train_net(solver_prototxt, roidb, output_dir, pretrained_model=None, max_iters=40000,
              restore=None, seed=None, settings=None):
    """The release's entry point: trains a network to iteration max_iters and returns the paths
    of its snapshots. restore: a .solverstate to resume from (a snapshot of an earlier run of the
    same setup); seed: the RNGs' seed (None: as they are); settings: TrainSettings (default:
    the release's)."""
    return train(solver_prototxt, roidb, output_dir, max_iters, pretrained_model=pretrained_model,
                 restore=restore, seed=seed, settings=settings).model_paths


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


def train(solver_prototxt, roidb, output_dir, max_iters, pretrained_model=None, restore=None,
          seed=None, settings=None, uid=None):
    """Trains the solver's net on roidb to iteration max_iters, snapshots in output_dir; returns a
    TrainResult. seed: the RNGs' seed (None: unseeded); settings: TrainSettings (default: the
    release's). With caffe.solver_count() > 1 this process is rank caffe.solver_rank() of a
    data-parallel run (uid: the caffe.NCCL unique id its parent made, for GPUs started without
    mpiexec).

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
