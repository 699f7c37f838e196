"""Small helpers shared by the dataset readers: box checks, atomic caches. The box filters and
formats the release kept here (unique_boxes, filter_small_boxes, xywh_to_xyxy, xyxy_to_xywh)
are core.boxes'.

Boxes are 0-based [x1, y1, x2, y2] with inclusive corners (width = x2 - x1 + 1), as everywhere
in this project.
"""
import hashlib
import os
import pickle

import numpy as np

from caffe.io import atomic_write
from core.boxes import filter_small_boxes, unique_boxes, xywh_to_xyxy, xyxy_to_xywh  # noqa: F401


def validate_boxes(boxes, width, height, source):
    """Raises ValueError naming `source` unless every box is ordered and inside the image."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.shape[0] == 0:
        return
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    bad = (x1 < 0) | (y1 < 0) | (x2 < x1) | (y2 < y1) | (x2 >= width) | (y2 >= height)
    if bad.any():
        k = int(np.where(bad)[0][0])
        raise ValueError('{}: box {} {} is not inside the {}x{} image or has x2 < x1 / y2 < y1'
                         .format(source, k, boxes[k].tolist(), width, height))


def load_pickle(path):
    with open(path, 'rb') as f:
        return pickle.load(f)


def save_pickle_atomic(obj, path):
    """Pickles obj to path atomically (caffe.io.atomic_write)."""
    atomic_write(path, lambda f: pickle.dump(obj, f, pickle.HIGHEST_PROTOCOL))


def files_fingerprint(paths, extra=()):
    """A digest of the files' names, sizes and modification times (plus `extra` values), used
    to tell a cache built from older annotations. Missing files count as such, not as errors:
    the reader that needs them reports them."""
    h = hashlib.sha1()
    for value in extra:
        h.update(repr(value).encode())
        h.update(b'\0')
    for path in paths:
        try:
            st = os.stat(path)
            h.update('{}|{}|{}\n'.format(path, st.st_size, st.st_mtime_ns).encode())
        except FileNotFoundError:
            h.update('{}|missing\n'.format(path).encode())
    return h.hexdigest()


def load_or_build(cache_file, key, build, what):
    """Returns the object pickled in cache_file if it was built for `key`; otherwise calls
    build(), caches its result under `key` and returns it. `what` names the object in messages."""
    if os.path.exists(cache_file):
        try:
            payload = load_pickle(cache_file)
        except Exception:
            payload = None  # unreadable or from an older format: rebuild it
        if isinstance(payload, dict) and payload.get('key') == key:
            print('{} loaded from {}'.format(what, cache_file))
            return payload['value']
    value = build()
    save_pickle_atomic({'key': key, 'value': value}, cache_file)
    print('wrote {} to {}'.format(what, cache_file))
    return value
