"""What an exact resume needs beyond Caffe's .solverstate, kept in <snapshot>.trainstate.

A resumed run must continue exactly as an uninterrupted one: it needs the RNG states (numpy:
minibatch and RoI sampling; the runtime's: dropout), the data layer's place in its shuffled
epoch, and bbox_pred as trained (normalized): undoing the saved un-normalization in floating
point would not give back the same bits.
"""
import os
import pickle

import numpy as np

from caffe import common as caffe_common
from caffe.io import atomic_write

TRAIN_STATE_EXT = '.trainstate'


def train_state_path(snapshot_path):
    """The .trainstate beside a snapshot's .caffemodel or .solverstate."""
    return os.path.splitext(snapshot_path)[0] + TRAIN_STATE_EXT


def capture(data_layer, normalized_bbox_pred):
    """The state to save: RNGs, the data layer's position, bbox_pred as trained (or None)."""
    return {'numpy_rng': np.random.get_state(),
            'caffe_rng': caffe_common.rng().get_state(),
            'data_layer': data_layer.get_state() if hasattr(data_layer, 'get_state') else None,
            'bbox_pred': normalized_bbox_pred}


def save(snapshot_path, state):
    atomic_write(train_state_path(snapshot_path), pickle.dumps(state, pickle.HIGHEST_PROTOCOL))


def load(snapshot_path):
    """The state saved beside snapshot_path, or None when there is none; ValueError naming the
    file when it cannot be read."""
    path = train_state_path(snapshot_path)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, 'rb') as f:
            return pickle.load(f)
    except Exception as e:
        raise ValueError('%s is unreadable (%s: %s); delete it to resume without exact '
                         'reproducibility' % (path, type(e).__name__, e)) from None


def apply(state, data_layer):
    """Puts back the RNGs and the data layer's position (bbox_pred is the trainer's)."""
    np.random.set_state(state['numpy_rng'])
    caffe_common.rng().set_state(state['caffe_rng'])
    if state['data_layer'] is not None:
        data_layer.set_state(state['data_layer'])
