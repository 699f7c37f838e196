"""Test-time detections kept between runs: <output dir>/detections.npz, all_boxes[cls][image]
((N, 5) [x1, y1, x2, y2, score] arrays; [] for the background class), with a key beside it
(detections.npz.key.json) saying what they were computed from, so that they are reused only for
the same weights and net (by content), image set and test settings.

The file is an .npz archive (utils.data_files: read without running code). The release's
detections.pkl is still read (tools/reval.py), through the restricted unpickler.
"""
import hashlib
import json
import os

import numpy as np

from caffe.io import atomic_write
from utils.data_files import (DataFileError, file_digest, load_npz, load_release_pickle,
                              pack_rows, save_npz, unpack_rows)

DETECTIONS_FILE = 'detections.npz'
RELEASE_DETECTIONS_FILE = 'detections.pkl'
KIND = 'detections'
WHAT = 'detections file'


def detections_file(output_dir):
    """The detections in output_dir: detections.npz, else the release's detections.pkl (the
    .npz path when neither exists)."""
    ours = os.path.join(output_dir, DETECTIONS_FILE)
    release = os.path.join(output_dir, RELEASE_DETECTIONS_FILE)
    return release if not os.path.isfile(ours) and os.path.isfile(release) else ours


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
            key = json.load(f)
    except (OSError, ValueError):
        return None
    return key if isinstance(key, dict) else None


def load_if_current(det_file, key):
    """The detections in det_file when its saved key equals `key`, else None."""
    if key is None or not os.path.isfile(det_file) or read_key(det_file) != key:
        return None
    try:
        return load_detections(det_file)
    except (OSError, ValueError):
        return None  # unreadable: detect again


def load_detections(det_file, num_classes=None, num_images=None):
    """all_boxes from det_file (detections.npz, or the release's detections.pkl), checked to be
    a list per class of a list per image of (N, 5) arrays (or []), for num_classes x num_images
    when given. DataFileError naming the file otherwise."""
    if det_file.endswith('.pkl'):
        all_boxes = _checked(load_release_pickle(det_file, WHAT), det_file)
    else:
        arrays, _ = load_npz(det_file, KIND, WHAT)
        counts = arrays.get('counts')
        if 'boxes' not in arrays or counts is None or counts.ndim != 2:
            raise DataFileError('%s %s lacks its boxes array or its (classes, images) counts'
                                % (WHAT, det_file))
        flat = unpack_rows(arrays['boxes'], counts.ravel(), '%s %s' % (WHAT, det_file))
        images = counts.shape[1]
        all_boxes = _checked([flat[c * images:(c + 1) * images]
                              for c in range(counts.shape[0])], det_file)
    found = (len(all_boxes), len(all_boxes[0]) if all_boxes else 0)
    if num_classes is not None and found != (num_classes, num_images):
        raise DataFileError('%s %s holds detections for %d classes x %d images; expected %d x %d'
                            % ((WHAT, det_file) + found + (num_classes, num_images)))
    return all_boxes


def _checked(obj, det_file):
    def bad(expected, got):
        return DataFileError('%s %s: expected %s, found %s' % (WHAT, det_file, expected, got))

    if not isinstance(obj, (list, tuple)):
        raise bad('a list of per-class lists of (N, 5) arrays', 'a %s' % type(obj).__name__)
    images = None
    out = []
    for c, per_class in enumerate(obj):
        if not isinstance(per_class, (list, tuple)):
            raise bad('a list of per-image arrays for class %d' % c,
                      'a %s' % type(per_class).__name__)
        if images is None:
            images = len(per_class)
        elif len(per_class) != images:
            raise bad('%d images for every class' % images,
                      '%d for class %d' % (len(per_class), c))
        row = []
        for i, dets in enumerate(per_class):
            if isinstance(dets, list) and not dets:
                row.append([])
                continue
            if not isinstance(dets, np.ndarray) or dets.dtype.kind not in 'iuf':
                raise bad('an (N, 5) array for class %d, image %d' % (c, i),
                          'a %s' % type(dets).__name__)
            if dets.size == 0:
                dets = dets.reshape(0, 5)
            if dets.ndim != 2 or dets.shape[1] != 5:
                raise bad('an (N, 5) array [x1, y1, x2, y2, score] for class %d, image %d'
                          % (c, i), 'shape %s' % (dets.shape,))
            row.append(dets)
        out.append(row)
    return out


def save(det_file, all_boxes, key):
    """Writes the detections, then their key (None: no key, never reused)."""
    # The old key goes first: a crash between the two writes must not leave it vouching for
    # the new detections.
    if os.path.exists(key_file(det_file)):
        os.remove(key_file(det_file))
    flat = [dets for per_class in all_boxes for dets in per_class]
    rows, counts = pack_rows(flat, 5, np.float32, det_file)
    images = len(all_boxes[0]) if all_boxes else 0
    save_npz(det_file, KIND, {'boxes': rows, 'counts': counts.reshape(len(all_boxes), images)})
    if key is not None:
        atomic_write(key_file(det_file), json.dumps(key, indent=1).encode())
