"""Test-time detections kept between runs: <output dir>/detections.pkl with a key beside it
(detections.pkl.key.json) saying what they were computed from, so that they are reused only for
the same weights and net (by content), image set and test settings."""
import hashlib
import json
import os
import pickle

from caffe.io import atomic_write


def file_digest(path):
    h = hashlib.sha1()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 22), b''):
            h.update(chunk)
    return h.hexdigest()


def image_set_digest(imdb):
    """A digest of the imdb's image ids, in order: detections are per image index."""
    return hashlib.sha1('\n'.join(map(str, imdb.image_index)).encode()).hexdigest()


def detections_key(prototxt, weights, imdb, settings):
    """What a test run's detections depend on: the net definition and weights files (by
    content), the image set, and `settings` (a repr-able description of every test-time setting,
    the caller's to assemble)."""
    return {
        'weights': os.path.abspath(weights),
        'weights_sha1': file_digest(weights),
        'prototxt_sha1': file_digest(prototxt),
        'imdb': imdb.name,
        'images_sha1': image_set_digest(imdb),
        'settings': repr(settings),
    }


def key_file(det_file):
    return det_file + '.key.json'


def read_key(det_file):
    """The key saved with det_file, or None when there is none (or it is unreadable)."""
    try:
        with open(key_file(det_file)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def load_if_current(det_file, key):
    """The detections in det_file when its saved key equals `key`, else None."""
    if key is None or not os.path.isfile(det_file) or read_key(det_file) != key:
        return None
    try:
        with open(det_file, 'rb') as f:
            return pickle.load(f)
    except Exception:
        return None  # unreadable: detect again


def save(det_file, all_boxes, key):
    """Writes the detections, then their key (None: no key, never reused)."""
    # The old key goes first: a crash between the two writes must not leave it vouching for
    # the new detections.
    if os.path.exists(key_file(det_file)):
        os.remove(key_file(det_file))
    atomic_write(det_file, pickle.dumps(all_boxes, pickle.HIGHEST_PROTOCOL))
    if key is not None:
        atomic_write(key_file(det_file), json.dumps(key, indent=1).encode())
