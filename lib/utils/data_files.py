"""Data files that run no code when read.

What this project writes and reads back (training state, dataset caches, detections, proposals)
is a NumPy .npz archive read with allow_pickle=False, or JSON: an archive holds only arrays of
numbers and text, so a file received from anyone can at worst be refused. Every archive names
its kind (`__kind__`), so a valid file of the wrong kind is refused with one clear error instead
of being misread; small non-array facts go in `__meta__`, a JSON text.

The release's .pkl files (proposals from rpn_generate, detections.pkl) are still read, by one
reader: load_release_pickle, an unpickler that builds only NumPy arrays, dtypes and scalars and
plain containers, and refuses anything else before it is built. Unpickling in general runs
whatever code the file names; this one cannot.
"""
import hashlib
import io
import json
import os
import pickle

import numpy as np
from numpy._core import multiarray as _multiarray, numeric as _numeric

from caffe.io import atomic_write

KIND_KEY = '__kind__'
META_KEY = '__meta__'


class DataFileError(ValueError):
    """A data file that is not what it should be (unreadable, another kind, refused); the
    message names the file."""


def file_digest(path):
    """The SHA-1 of a file's content (hex)."""
    h = hashlib.sha1()
    hash_file_into(h, path)
    return h.hexdigest()


def hash_file_into(h, path):
    """Feeds a file's content to the hash object h, in 4 MiB pieces."""
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 22), b''):
            h.update(chunk)


# .npz archives ----------------------------------------------------------------------------------

def save_npz(path, kind, arrays, meta=None):
    """Writes `arrays` ({name: array}) and `meta` (a JSON-able dict) to path, atomically, as an
    .npz archive of the given kind. Arrays of Python objects are refused: they would need
    pickling to read back."""
    for name, value in arrays.items():
        if name in (KIND_KEY, META_KEY):
            raise ValueError('save_npz: %r is a reserved name' % name)
        if np.asarray(value).dtype.hasobject:
            raise ValueError('save_npz: %s: array %r holds Python objects' % (path, name))
    contents = dict(arrays)
    contents[KIND_KEY] = np.array(kind)
    contents[META_KEY] = np.array(json.dumps(meta or {}, sort_keys=True))
    atomic_write(path, lambda f: np.savez(f, **contents))


def load_npz(path, kind, what):
    """(arrays, meta) of an .npz archive of `kind` written by save_npz. Anything else (missing,
    not an archive, another kind, arrays of Python objects) raises DataFileError (an OSError for
    a missing file) naming the file; `what` says what the file should be."""
    if not os.path.isfile(path):
        raise FileNotFoundError(2, '%s not found' % what, path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not hasattr(archive, 'files'):
                raise DataFileError('%s %s is a single .npy array, not an .npz archive'
                                    % (what, path))
            contents = {name: archive[name] for name in archive.files}
    except DataFileError:
        raise
    except Exception as e:
        # np.load refuses a pickle or an array of objects (ValueError); a damaged archive
        # raises zipfile's or the OS's errors.
        raise DataFileError('%s %s is not a readable .npz archive (%s)'
                            % (what, path, _reason(e))) from None
    found = contents.pop(KIND_KEY, None)
    found = str(found) if found is not None and found.ndim == 0 else None
    if found != kind:
        raise DataFileError('%s %s is %s, not a %s file' % (
            what, path, 'a %s file' % found if found else 'an .npz archive of another program',
            kind))
    meta = contents.pop(META_KEY, None)
    try:
        meta = json.loads(str(meta)) if meta is not None else {}
    except ValueError as e:
        raise DataFileError('%s %s: damaged %s entry (%s)' % (what, path, META_KEY, e)) from None
    return contents, meta




def _reason(e):
    return ('%s: %s' % (type(e).__name__, e)).rstrip(': ')


# Lists of arrays as one array -------------------------------------------------------------------

def pack_rows(arrays, columns, dtype, what):
    """A list of (N_i, columns) arrays (or empty lists) as one (sum N_i, columns) array and the
    row counts, -1 marking an entry that was an empty list rather than an array (the release's
    detections hold [] for the background class)."""
    counts = np.empty(len(arrays), dtype=np.int64)
    parts = []
    for i, value in enumerate(arrays):
        if isinstance(value, list) and not value:
            counts[i] = -1
            continue
        a = np.asarray(value)
        if a.size == 0:
            a = a.reshape(0, columns)
        if a.ndim != 2 or a.shape[1] != columns:
            raise ValueError('%s: entry %d has shape %s; expected (N, %d)'
                             % (what, i, a.shape, columns))
        counts[i] = a.shape[0]
        parts.append(a.astype(dtype, copy=False))
    rows = np.concatenate(parts) if parts else np.zeros((0, columns), dtype=dtype)
    return rows, counts


def unpack_rows(rows, counts, what):
    """The inverse of pack_rows: a list of arrays (copies), [] where counts is -1."""
    counts = np.asarray(counts).ravel()
    if counts.dtype.kind not in 'iu' or rows.ndim != 2 or \
            counts.clip(0, None).sum() != rows.shape[0]:
        raise DataFileError('%s: the row counts (%d entries, %d rows) do not match the %s array'
                            % (what, counts.size, counts.clip(0, None).sum(),
                               'x'.join(map(str, rows.shape))))
    out, start = [], 0
    for n in counts:
        if n < 0:
            out.append([])
            continue
        out.append(rows[start:start + n].copy())
        start += n
    return out


# The release's pickles --------------------------------------------------------------------------

class _Refused(pickle.UnpicklingError):
    """What the file asks for that is not built."""


def _checked_dtype(*args):
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise _Refused('an array of Python objects')
    return dtype


def _reconstruct(subtype, shape, dtype):
    if subtype is not np.ndarray:
        raise _Refused('an array subclass %r' % (subtype,))
    return _multiarray._reconstruct(np.ndarray, shape, _checked_dtype(dtype))


def _frombuffer(buffer, dtype, shape, order):
    return _numeric._frombuffer(buffer, _checked_dtype(dtype), shape, order)


def _scalar(dtype, data=None):
    # With a dtype that holds no objects, numpy's scalar() only copies the raw bytes.
    if not isinstance(data, (bytes, str)):
        raise _Refused('a NumPy scalar built from a Python object')
    return _multiarray.scalar(_checked_dtype(dtype), data)


def _latin1_bytes(text, encoding='latin1'):
    # Python 3 pickles bytes for protocol 2 as _codecs.encode(text, 'latin1').
    if encoding not in ('latin1', 'latin-1') or not isinstance(text, str):
        raise _Refused('_codecs.encode with encoding %r' % (encoding,))
    return text.encode('latin1')


_ALLOWED = {}
for _module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
    _ALLOWED[(_module, '_reconstruct')] = _reconstruct
    _ALLOWED[(_module, 'scalar')] = _scalar
for _module in ('numpy.core.numeric', 'numpy._core.numeric'):
    _ALLOWED[(_module, '_frombuffer')] = _frombuffer
_ALLOWED[('numpy', 'ndarray')] = np.ndarray
_ALLOWED[('numpy', 'dtype')] = _checked_dtype
_ALLOWED[('_codecs', 'encode')] = _latin1_bytes
for _module in ('builtins', '__builtin__'):
    for _name, _value in (('set', set), ('frozenset', frozenset), ('bytes', bytes),
                          ('bytearray', bytearray), ('complex', complex)):
        _ALLOWED[(_module, _name)] = _value
_ALLOWED[('collections', 'OrderedDict')] = dict


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Finds only the callables of _ALLOWED: everything an unpickler can run comes through
    find_class, so nothing else can be called."""

    def find_class(self, module, name):
        found = _ALLOWED.get((module, name))
        if found is None:
            raise _Refused('%s.%s' % (module, name))
        return found

    def persistent_load(self, pid):
        raise _Refused('a persistent object reference')


def load_release_pickle(path, what):
    """The object in a .pkl file written by the release (or by pickle from NumPy arrays and
    lists, tuples, dicts, numbers and strings), built without running any code the file names.
    Python 2 pickles are read as Python 3 reads them (encoding latin1). Raises DataFileError
    naming the file for anything else."""
    if not os.path.isfile(path):
        raise FileNotFoundError(2, '%s not found' % what, path)
    with open(path, 'rb') as f:
        data = f.read()
    if not data:
        raise DataFileError('%s %s is empty' % (what, path))
    try:
        obj = _ArraysOnlyUnpickler(io.BytesIO(data), encoding='latin1').load()
    except _Refused as e:
        raise DataFileError(
            '%s %s was refused: it asks for %s, and .pkl files are read only when they hold '
            'NumPy arrays and plain lists, tuples, dicts, numbers and strings (anything else '
            'could run code; see docs/troubleshooting.md)' % (what, path, e)) from None
    except Exception as e:  # a damaged or foreign file: whatever the unpickler trips on
        raise DataFileError('%s %s is not a readable pickle (empty, truncated or another '
                            'format?): %s' % (what, path, _reason(e))) from None
    _check_no_objects(obj, path, what)
    return obj


def _check_no_objects(obj, path, what):
    stack = [obj]
    while stack:
        value = stack.pop()
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                raise DataFileError('%s %s was refused: it holds an array of Python '
                                    'objects' % (what, path))
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, (list, tuple, set, frozenset)):
            stack.extend(value)
