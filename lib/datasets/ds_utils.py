"""Small helpers shared by the dataset readers: box checks, and the dataset caches. The box
filters and formats the release kept here (unique_boxes, filter_small_boxes, xywh_to_xyxy,
xyxy_to_xywh) are in core.boxes.

Boxes are 0-based [x1, y1, x2, y2] with inclusive corners (width = x2 - x1 + 1), as everywhere
in this project.

Caches (data/cache/*_roidb.npz, the evaluation's parsed annotations *_annots.json) are written
in formats that run no code when read (utils.data_files) and keyed on the content of the files
they were built from, so an edited annotation is never answered from a stale cache.
"""
import hashlib
import json
import os

import numpy as np
import scipy.io
import scipy.sparse

from caffe.io import atomic_write
from utils.data_files import DataFileError, hash_file_into, load_npz, save_npz


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


def read_mat_variable(path, name):
    """One variable of a MATLAB .mat file (the proposal files: `boxes`); errors name the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError('proposals file not found: {}'.format(path))
    try:
        raw = scipy.io.loadmat(path, variable_names=[name])
    except (ValueError, NotImplementedError, OSError, TypeError) as err:
        # NotImplementedError: a v7.3 (HDF5) file, which scipy does not read
        raise ValueError('{}: cannot read as a MATLAB file: {}'.format(path, err)) from None
    if name not in raw:
        raise ValueError("{}: no '{}' variable".format(path, name))
    return raw[name]


def files_fingerprint(paths, extra=(), content=True):
    """A digest of the files' names and contents (plus `extra` values), used to tell a cache
    built from other annotations. Content, not size and modification time: an edit that keeps
    both (a copy with preserved times, a coarse file system clock) still counts. Missing files
    count as such, not as errors: the reader that needs them reports them.
    content=False digests each file's size and modification time instead, for inputs too big to
    read at every start (COCO's per-image proposal files: gigabytes over 80k files)."""
    h = hashlib.sha1()
    for value in extra:
        h.update(repr(value).encode())
        h.update(b'\0')
    for path in paths:
        h.update(('%s\0' % path).encode())
        if not content:
            try:
                st = os.stat(path)
                h.update(b'%d %d\n' % (st.st_size, st.st_mtime_ns))
            except FileNotFoundError:
                h.update(b'missing\n')
            continue
        try:
            hash_file_into(h, path)
        except FileNotFoundError:
            h.update(b'\0missing')
        h.update(b'\0\n')
    return h.hexdigest()


def load_or_build(cache_file, key, build, what):
    """Returns the value cached in cache_file if it was built for `key`; otherwise calls
    build(), caches its result under `key` and returns it. A cache_file ending in .npz holds a
    roidb (a list of dicts of arrays, sparse matrices and scalars), one ending in .json any
    JSON value. `what` names the object in messages."""
    codec = _CODECS[os.path.splitext(cache_file)[1]]
    if os.path.exists(cache_file):
        try:
            cached_key, value = codec[1](cache_file, what)
        except (OSError, ValueError):
            cached_key = None  # unreadable, or from an older format: rebuild it
        if cached_key == key:
            print('{} loaded from {}'.format(what, cache_file))
            return value
    value = build()
    codec[0](cache_file, key, value, what)
    print('wrote {} to {}'.format(what, cache_file))
    return value


# JSON caches -------------------------------------------------------------------------------------

def _save_json(path, key, value, what):
    atomic_write(path, json.dumps({'key': key, 'value': value}))


def _load_json(path, what):
    with open(path) as f:
        payload = json.load(f)
    if not isinstance(payload, dict) or 'key' not in payload:
        raise DataFileError('{} cache {} is not one of ours'.format(what, path))
    return payload['key'], payload.get('value')


# roidb caches: each field of the entries stored as one array over all entries ------------------

ROIDB_KIND = 'roidb'
_SCALAR_TYPES = {'bool': bool, 'int': int, 'float': float, 'str': str}


def _save_roidb(path, key, roidb, what):
    arrays, fields = {}, {}
    names = sorted({name for entry in roidb for name in entry})
    for name in names:
        present = np.array([name in entry for entry in roidb])
        if not present.all():
            arrays[name + '.present'] = present
        values = [entry[name] for entry in roidb if name in entry]
        fields[name] = _encode_field(name, values, arrays, path)
    save_npz(path, ROIDB_KIND, arrays, {'key': key, 'entries': len(roidb), 'fields': fields})


def _encode_field(name, values, arrays, path):
    if all(scipy.sparse.issparse(v) for v in values):
        rows = [v.shape[0] for v in values]
        stacked = scipy.sparse.vstack([scipy.sparse.csr_matrix(v) for v in values],
                                      format='csr') if values else scipy.sparse.csr_matrix((0, 0))
        arrays.update({name + '.data': stacked.data, name + '.indices': stacked.indices,
                       name + '.indptr': stacked.indptr, name + '.shape': np.array(stacked.shape),
                       name + '.counts': np.array(rows, dtype=np.int64)})
        return 'csr'
    for kind, python_type in _SCALAR_TYPES.items():
        if all(isinstance(v, (python_type, np.generic)) and not isinstance(v, np.ndarray)
               and _scalar_kind(v) == kind for v in values):
            arrays[name] = np.array(values)
            return kind
    if all(isinstance(v, np.ndarray) and v.ndim >= 1 for v in values) and \
            len({(v.dtype.str, v.shape[1:]) for v in values}) <= 1:
        arrays[name] = np.concatenate(values) if values else np.zeros(0)
        arrays[name + '.counts'] = np.array([v.shape[0] for v in values], dtype=np.int64)
        return 'rows'
    if all(isinstance(v, np.ndarray) for v in values):
        for i, v in enumerate(values):
            arrays['%s.%d' % (name, i)] = v
        return 'arrays'
    raise ValueError('{}: roidb field {!r} holds {} values, which the cache cannot store'
                     .format(path, name, sorted({type(v).__name__ for v in values})))


def _scalar_kind(value):
    if isinstance(value, (bool, np.bool_)):
        return 'bool'
    if isinstance(value, (int, np.integer)):
        return 'int'
    if isinstance(value, (float, np.floating)):
        return 'float'
    return 'str' if isinstance(value, (str, np.str_)) else None


def _load_roidb(path, what):
    arrays, meta = load_npz(path, ROIDB_KIND, '{} cache'.format(what))
    try:
        count = int(meta['entries'])
        roidb = [{} for _ in range(count)]
        for name, kind in meta['fields'].items():
            present = arrays.get(name + '.present', np.ones(count, dtype=bool))
            holders = [entry for entry, has in zip(roidb, present) if has]
            for entry, value in zip(holders, _decode_field(name, kind, arrays, len(holders))):
                entry[name] = value
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise DataFileError('{} cache {} is damaged ({}: {})'
                            .format(what, path, type(e).__name__, e)) from None
    return meta.get('key'), roidb


def _decode_field(name, kind, arrays, count):
    if kind == 'csr':
        stacked = scipy.sparse.csr_matrix(
            (arrays[name + '.data'], arrays[name + '.indices'], arrays[name + '.indptr']),
            shape=tuple(arrays[name + '.shape']))
        return _split(stacked, arrays[name + '.counts'], count)
    if kind == 'rows':
        return [part.copy() for part in _split(arrays[name], arrays[name + '.counts'], count)]
    if kind == 'arrays':
        return [arrays['%s.%d' % (name, i)] for i in range(count)]
    values = arrays[name]
    if values.shape != (count,):
        raise ValueError('field {!r} has {} values for {} entries'.format(name, values.size, count))
    return [_SCALAR_TYPES[kind](v) for v in values.tolist()]


def _split(stacked, counts, count):
    counts = np.asarray(counts, dtype=np.int64)
    if counts.shape != (count,) or counts.sum() != stacked.shape[0] or (counts < 0).any():
        raise ValueError('row counts do not match the stored rows')
    ends = np.cumsum(counts)
    return [stacked[end - n:end] for n, end in zip(counts, ends)]


_CODECS = {'.npz': (_save_roidb, _load_roidb), '.json': (_save_json, _load_json)}
