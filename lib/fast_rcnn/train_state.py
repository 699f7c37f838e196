"""A training snapshot is one unit of three files, written in this order:

  <prefix>_iter_N.caffemodel    the weights (deployable: bbox_pred un-normalized)
  <prefix>_iter_N.solverstate   Caffe's solver state: iteration, momentum history
  <prefix>_iter_N.trainstate    what an exact resume needs beyond Caffe's state, and the seal of
                                the set: the iteration and the SHA-1 of the other two files

The .trainstate is written last, so a complete set is recognisable: a kill between the files
leaves a set without one, and a .trainstate from another run (an earlier one into the same
folder, another net) does not match the files beside it. check_snapshot refuses any set that is
not complete and consistent, naming the newest complete snapshot in the folder to use instead.

What an exact resume needs: the RNG states (numpy: minibatch and RoI sampling; the runtime's:
dropout), the data layer's place in its shuffled epoch, and bbox_pred as trained (normalized):
undoing the saved un-normalization in floating point would not give back the same bits.

The .trainstate is an .npz archive (utils.data_files): reading one runs no code.
"""
import os
import re
from dataclasses import dataclass

import numpy as np

from caffe import common as caffe_common
from utils.data_files import file_digest, load_npz, save_npz

TRAIN_STATE_EXT = '.trainstate'
KIND = 'trainstate'
VERSION = 2
_SNAPSHOT_EXTS = ('.caffemodel.h5', '.solverstate.h5', '.caffemodel', '.solverstate',
                  TRAIN_STATE_EXT)
_ITER = re.compile(r'^(?P<prefix>.*)_iter_(?P<iter>\d+)$')
# What caffe.io.atomic_write leaves behind when killed: .<name>.<random>.tmp, for the files
# written into a training's output folder (snapshots, the progress log, and alternating
# training's proposals and progress record).
_LEFTOVER = re.compile(r'^\.(?P<name>.+_(iter_\d+\.(caffemodel|solverstate|trainstate)(\.h5)?'
                       r'|training\.jsonl|proposals\.npz|alt_opt_progress\.json))'
                       r'\.[A-Za-z0-9_]+\.tmp$')


class SnapshotError(ValueError):
    """A snapshot that cannot be resumed from; the message names the files and what to use."""


@dataclass
class Snapshot:
    """A complete, consistent snapshot set: its iteration, files and training state."""
    iteration: int
    solverstate: str
    weights: str
    state: dict


def snapshot_stem(path):
    """<prefix>_iter_N of any of a snapshot's files."""
    for ext in _SNAPSHOT_EXTS:
        if path.endswith(ext):
            return path[:-len(ext)]
    return os.path.splitext(path)[0]


def train_state_path(snapshot_path):
    """The .trainstate beside a snapshot's .caffemodel or .solverstate."""
    return snapshot_stem(snapshot_path) + TRAIN_STATE_EXT


def solverstate_path(model_path):
    """The .solverstate written with a .caffemodel (.solverstate.h5 beside a .caffemodel.h5)."""
    return snapshot_stem(model_path) + ('.solverstate.h5' if model_path.endswith('.h5')
                                        else '.solverstate')


def weights_path(solverstate):
    """The .caffemodel written with a .solverstate (.caffemodel.h5 beside a .solverstate.h5)."""
    return snapshot_stem(solverstate) + ('.caffemodel.h5' if solverstate.endswith('.h5')
                                         else '.caffemodel')


# Capturing and putting back ---------------------------------------------------------------------

def capture(data_layer, normalized_bbox_pred):
    """The state to save: RNGs, the data layer's position, bbox_pred as trained (or None)."""
    return {'numpy_rng': np.random.get_state(),
            'caffe_rng': caffe_common.rng().get_state(),
            'data_layer': data_layer.get_state() if hasattr(data_layer, 'get_state') else None,
            'bbox_pred': normalized_bbox_pred}


def apply(state, data_layer):
    """Puts back the RNGs and the data layer's position (bbox_pred is the trainer's)."""
    np.random.set_state(state['numpy_rng'])
    caffe_common.rng().set_state(state['caffe_rng'])
    if state['data_layer'] is not None:
        data_layer.set_state(state['data_layer'])


# The .trainstate file ---------------------------------------------------------------------------

def save(model_path, solverstate, iteration, state):
    """Writes the .trainstate of the snapshot whose weights and solver state were just written
    to model_path and solverstate, sealing the set (atomically, last). state: capture()'s dict
    (a data-parallel run adds every rank's under 'ranks')."""
    arrays = {}
    meta = {'version': VERSION, 'iteration': int(iteration),
            'caffemodel': os.path.basename(model_path),
            'caffemodel_sha1': file_digest(model_path),
            'solverstate': os.path.basename(solverstate),
            'solverstate_sha1': file_digest(solverstate),
            'state': _encode(state, 'state', arrays)}
    save_npz(train_state_path(model_path), KIND, arrays, meta)


def load(path):
    """(state, meta) of a .trainstate file; OSError or ValueError naming it when it cannot be
    read."""
    arrays, meta = load_npz(path, KIND, 'training state')
    try:
        if meta.get('version') != VERSION:
            raise ValueError('version %r, expected %d' % (meta.get('version'), VERSION))
        missing = [key for key in ('iteration', 'caffemodel', 'caffemodel_sha1', 'solverstate',
                                   'solverstate_sha1', 'state') if key not in meta]
        if missing:
            raise KeyError(missing[0])
        state = _decode(meta['state'], arrays)
        missing = [key for key in ('numpy_rng', 'caffe_rng', 'data_layer', 'bbox_pred')
                   if key not in state]
        if missing:
            raise KeyError(missing[0])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise SnapshotError('training state %s is damaged or from another version of this '
                            'project (%s: %s)' % (path, type(e).__name__, e)) from None
    return state, meta


# The state as JSON with its arrays beside it: arrays, tuples (RNG states), lists, dicts and
# plain values, each tagged so that it reads back as the same type.
def _encode(value, name, arrays):
    if isinstance(value, np.ndarray):
        arrays[name] = value
        return {'array': name}
    if isinstance(value, tuple):
        return {'tuple': [_encode(v, '%s.%d' % (name, i), arrays) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return {'list': [_encode(v, '%s.%d' % (name, i), arrays) for i, v in enumerate(value)]}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError('%s: a training state dict needs text keys' % name)
        return {'dict': {k: _encode(v, '%s.%s' % (name, k), arrays) for k, v in value.items()}}
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return {'value': value}
    raise TypeError('%s is a %s; a .trainstate holds arrays, tuples, lists, dicts and plain '
                    'values' % (name, type(value).__name__))


def _decode(node, arrays):
    (kind, value), = node.items()
    if kind == 'array':
        return arrays[value]
    if kind == 'tuple':
        return tuple(_decode(v, arrays) for v in value)
    if kind == 'list':
        return [_decode(v, arrays) for v in value]
    if kind == 'dict':
        return {k: _decode(v, arrays) for k, v in value.items()}
    if kind == 'value':
        return value
    raise ValueError('unknown entry %r' % kind)


# Checking a set ---------------------------------------------------------------------------------

def check_snapshot(solverstate):
    """The Snapshot of a .solverstate, after checking that its set is complete and belongs
    together: a .trainstate beside it that records this .solverstate and the .caffemodel beside
    it (by name and content). SnapshotError otherwise, naming the newest complete snapshot in the
    folder to resume from instead."""
    problem, snapshot = _examine(solverstate)
    if problem is None:
        return snapshot
    raise SnapshotError('cannot resume from %s: %s. %s'
                        % (solverstate, problem, _instead(solverstate)))


def _examine(solverstate):
    """(None, Snapshot) for a complete, consistent set; (what is wrong, None) otherwise."""
    if not os.path.isfile(solverstate):
        return 'no such file', None
    state_file = train_state_path(solverstate)
    weights = weights_path(solverstate)
    if not os.path.isfile(state_file):
        return ('there is no %s beside it: the snapshot is incomplete (training stopped while '
                'writing it) or was not written by this project' % os.path.basename(state_file),
                None)
    try:
        state, meta = load(state_file)
    except (OSError, ValueError) as e:
        return str(e), None
    if not os.path.isfile(weights):
        return 'its weights %s are missing' % weights, None
    for path, name_key, digest_key in ((solverstate, 'solverstate', 'solverstate_sha1'),
                                       (weights, 'caffemodel', 'caffemodel_sha1')):
        if meta[name_key] != os.path.basename(path) or meta[digest_key] != file_digest(path):
            return ('%s does not belong to %s (it was written with another %s: the files '
                    'come from different runs or were changed since)'
                    % (state_file, path, os.path.basename(meta[name_key])), None)
    return None, Snapshot(int(meta['iteration']), solverstate, weights, state)


def _instead(solverstate):
    folder = os.path.dirname(os.path.abspath(solverstate))
    newest = newest_complete_snapshot(folder, _prefix(solverstate), exclude=solverstate)
    if newest is not None:
        return 'The newest complete snapshot there is %s: resume with --restore %s' % (
            weights_path(newest), newest)
    return ('There is no complete snapshot of this run in %s: train again without --restore'
            % folder)


def _prefix(path):
    m = _ITER.match(os.path.basename(snapshot_stem(path)))
    return m.group('prefix') if m else None


def newest_complete_snapshot(folder, prefix=None, exclude=None):
    """The .solverstate of the newest (highest iteration) complete, consistent snapshot set in
    folder whose files are named <prefix>_iter_N (any prefix when None), or None."""
    candidates = []
    for name in os.listdir(folder) if os.path.isdir(folder) else ():
        if not name.endswith(TRAIN_STATE_EXT):
            continue
        m = _ITER.match(name[:-len(TRAIN_STATE_EXT)])
        if m and (prefix is None or m.group('prefix') == prefix):
            candidates.append((int(m.group('iter')), name[:-len(TRAIN_STATE_EXT)]))
    for _, stem in sorted(candidates, reverse=True):
        for ext in ('.solverstate', '.solverstate.h5'):
            path = os.path.join(folder, stem + ext)
            if os.path.isfile(path) and (exclude is None or not _same(path, exclude)) \
                    and _examine(path)[0] is None:
                return path
    return None


def _same(a, b):
    return os.path.abspath(a) == os.path.abspath(b)


def remove_leftover_temporaries(folder):
    """Removes the temporary files that a training killed while writing a snapshot or its log
    left in folder (caffe.io.atomic_write's .<name>.<random>.tmp); returns their paths. Call it
    only while holding the folder's training lock: no other training writes there then."""
    removed = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
        if _LEFTOVER.match(name):
            path = os.path.join(folder, name)
            try:
                os.remove(path)
            except FileNotFoundError:
                continue
            removed.append(path)
    return removed
