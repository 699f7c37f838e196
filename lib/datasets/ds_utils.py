"""Small helpers shared by the dataset readers: box filters, box formats, atomic caches.

Boxes are 0-based [x1, y1, x2, y2] with inclusive corners (width = x2 - x1 + 1), as everywhere
in this project.
"""
import hashlib
import os
import pickle
import tempfile

import numpy as np


def unique_boxes(boxes, scale=1.0):
    """Indices of the first occurrence of each distinct box (after scaling), in input order."""
    boxes = np.asarray(boxes)
    if boxes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    keys = np.round(boxes[:, :4] * scale).astype(np.int64)
    _, index = np.unique(keys, axis=0, return_index=True)
    return np.sort(index)


def filter_small_boxes(boxes, min_size):
    """Indices of boxes whose width and height are both at least min_size pixels."""
    boxes = np.asarray(boxes)
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    return np.where((w >= min_size) & (h >= min_size))[0]


def xywh_to_xyxy(boxes):
    """[x, y, w, h] -> [x1, y1, x2, y2] with the inclusive-corner convention."""
    boxes = np.asarray(boxes)
    return np.hstack((boxes[:, 0:2], boxes[:, 0:2] + boxes[:, 2:4] - 1))


def xyxy_to_xywh(boxes):
    """[x1, y1, x2, y2] -> [x, y, w, h] with the inclusive-corner convention."""
    boxes = np.asarray(boxes)
    return np.hstack((boxes[:, 0:2], boxes[:, 2:4] - boxes[:, 0:2] + 1))


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
    """Pickles obj to path through a temporary file in the same folder, so readers never see
    a half-written file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            pickle.dump(obj, f, pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_text_atomic(text, path):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', dir=folder)
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


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
