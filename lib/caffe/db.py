"""Caffe's key-value databases (util/db): LMDB and LevelDB folders of serialized records, read
through a cursor in key order and written in transactions.

Bindings (requirements.txt says why these): `lmdb` (py-lmdb, with liblmdb inside its wheel) and
`plyvel` (LevelDB with Snappy inside its wheel; Caffe's LevelDB compresses blocks with Snappy, so
a binding without it cannot read Caffe's databases).

An open database is shared within the process: LevelDB allows one open handle per folder, and
LMDB's locks break when one process opens the same environment twice, while a train net and its
test net often read the same source. Cursors are independent (each in its own read transaction
or iterator) and may be used from another thread than the one that opened them.
"""
import os
import threading

from .common import CaffeError
from .io import AtomicFolder, naming_file
from .proto import caffe_pb2

LEVELDB, LMDB = 'leveldb', 'lmdb'
_ENUM = {caffe_pb2.DataParameter.LEVELDB: LEVELDB, caffe_pb2.DataParameter.LMDB: LMDB}

# LMDB's default map size (10 MiB), doubled whenever a write finds the map full, as Caffe's
# LMDBTransaction::DoubleMapSize does.
_LMDB_MAP_SIZE = 10 << 20
# Caffe's LevelDB options (db_leveldb.cpp).
_LEVELDB_OPTIONS = dict(block_size=65536, write_buffer_size=268435456, max_open_files=100)


def backend_name(backend):
    """'lmdb' or 'leveldb' from DataParameter.DB's value or from either name (any case)."""
    if isinstance(backend, str) and backend.lower() in (LMDB, LEVELDB):
        return backend.lower()
    if backend in _ENUM:
        return _ENUM[backend]
    raise CaffeError('unknown database backend %r (lmdb or leveldb)' % (backend,))


def _lmdb():
    try:
        import lmdb
    except ImportError:
        raise CaffeError('LMDB databases need the Python package lmdb: pip install lmdb (it is in '
                         'requirements.txt)') from None
    return lmdb


def _plyvel():
    try:
        import plyvel
    except ImportError:
        raise CaffeError('LevelDB databases need the Python package plyvel: pip install plyvel '
                         '(it is in requirements.txt)') from None
    return plyvel


def _kind_of_folder(path):
    """'lmdb', 'leveldb' or None, from the files a database folder holds."""
    if os.path.isfile(os.path.join(path, 'data.mdb')):
        return LMDB
    if os.path.isfile(os.path.join(path, 'CURRENT')):
        return LEVELDB
    return None


def _check_source(path, backend):
    if not os.path.exists(path):
        raise CaffeError('Could not open file %s (%s database not found)' % (path, backend))
    if not os.path.isdir(path):
        raise CaffeError('%s is a file; an %s database is a folder' % (path, backend))
    kind = _kind_of_folder(path)
    if kind is None:
        raise CaffeError('%s is not an %s database (no %s in the folder)'
                         % (path, backend, 'data.mdb' if backend == LMDB else 'CURRENT'))
    if kind != backend:
        raise CaffeError('%s is a %s database, not %s: set the backend to %s (data_param '
                         '{ backend: %s } in a net, --backend=%s in the tools)'
                         % (path, kind, backend, kind.upper(), kind.upper(), kind))


class Cursor:
    """Walks a database in key order: valid, key(), value(), next(), seek_to_first()."""

    def __init__(self, db):
        self._db = db
        self.valid = False
        if db.backend == LMDB:
            self._txn = db.handle.begin(buffers=False)
            self._cursor = self._txn.cursor()
        else:
            self._iter = db.handle.iterator()
        self.seek_to_first()

    def seek_to_first(self):
        if self._db.backend == LMDB:
            self.valid = self._cursor.first()
            return
        self._iter.seek_to_start()
        self._advance_leveldb()

    def next(self):
        if self._db.backend == LMDB:
            self.valid = self._cursor.next()
        else:
            self._advance_leveldb()

    def _advance_leveldb(self):
        try:
            self._key, self._value = next(self._iter)
            self.valid = True
        except StopIteration:
            self.valid = False

    def key(self):
        return self._cursor.key() if self._db.backend == LMDB else self._key

    def value(self):
        return self._cursor.value() if self._db.backend == LMDB else self._value

    def close(self):
        if self._db.backend == LMDB:
            self._txn.abort()
        else:
            self._iter.close()


class Database:
    """One open database, shared by every reader of its folder in the process (open_db)."""

    def __init__(self, path, backend, handle):
        self.path, self.backend, self.handle = path, backend, handle
        self.users = 0

    def cursor(self):
        return Cursor(self)

    def __len__(self):
        if self.backend == LMDB:
            return self.handle.stat()['entries']
        return sum(1 for _ in self.handle.iterator(include_value=False))

    def close(self):
        """Releases this user's share; the last one closes the database."""
        with _OPEN_LOCK:
            self.users -= 1
            if self.users > 0:
                return
            del _OPEN[(self.backend, self.path)]
        self.handle.close()


_OPEN = {}
_OPEN_LOCK = threading.Lock()


def open_db(path, backend):
    """The database at `path` (a folder) for reading, as Caffe's db::GetDB(backend)->Open(path,
    READ); close() it when done. Raises CaffeError naming the folder when it is missing, is not
    a database, or is one of the other backend."""
    backend = backend_name(backend)
    _check_source(path, backend)
    key = (backend, os.path.realpath(path))
    with _OPEN_LOCK:
        db = _OPEN.get(key)
        if db is None:
            db = Database(key[1], backend, _open_handle(path, backend))
            _OPEN[key] = db
        db.users += 1
    return db


def _open_handle(path, backend):
    if backend == LMDB:
        lmdb = _lmdb()
        try:
            return lmdb.open(path, readonly=True, lock=True, max_readers=126)
        except lmdb.Error as e:
            if 'Permission denied' not in str(e) and 'Read-only' not in str(e):
                raise CaffeError('cannot open LMDB database %s: %s' % (path, e)) from None
        # A folder we may not write the lock file into: read without locking, as Caffe built
        # with ALLOW_LMDB_NOLOCK does (safe while nothing writes the database).
        try:
            return lmdb.open(path, readonly=True, lock=False)
        except lmdb.Error as e:
            raise CaffeError('cannot open LMDB database %s: %s' % (path, e)) from None
    plyvel = _plyvel()
    try:
        return plyvel.DB(path, create_if_missing=False, **_LEVELDB_OPTIONS)
    except (plyvel.Error, OSError) as e:
        raise CaffeError('cannot open LevelDB database %s: %s' % (path, e)) from None


class Writer:
    """A new database at `path`, built in a temporary folder beside it and renamed into place
    by close(), so `path` is never half-written; abort() (or an exception in a `with` block)
    removes it. put() records are committed in transactions (commit(); close() commits the
    rest). Refuses a path that exists, as Caffe's db->Open(path, NEW) does."""

    def __init__(self, path, backend):
        self.backend = backend_name(backend)
        self._folder = AtomicFolder(path)
        self.path = path
        self._pending = []
        try:
            if self.backend == LMDB:
                self._map_size = _LMDB_MAP_SIZE
                self._handle = _lmdb().open(self._folder.tmp, map_size=self._map_size,
                                            max_dbs=0, subdir=True)
            else:
                self._handle = _plyvel().DB(self._folder.tmp, create_if_missing=True,
                                            error_if_exists=True, **_LEVELDB_OPTIONS)
        except Exception:
            self._folder.discard()
            raise

    def put(self, key, value):
        self._pending.append((key, value))

    def commit(self):
        if not self._pending:
            return
        try:
            if self.backend == LMDB:
                self._commit_lmdb()
            else:
                with self._handle.write_batch() as batch:
                    for key, value in self._pending:
                        batch.put(key, value)
        except OSError as e:
            raise naming_file(e, self.path) from e
        self._pending = []

    def _commit_lmdb(self):
        lmdb = _lmdb()
        while True:
            try:
                with self._handle.begin(write=True) as txn:
                    for key, value in self._pending:
                        txn.put(key, value)
                return
            except lmdb.MapFullError:
                self._map_size *= 2
                self._handle.set_mapsize(self._map_size)

    def close(self):
        """Commits what is pending and moves the finished database to path."""
        try:
            self.commit()
        except BaseException:
            self.abort()
            raise
        self._handle.close()
        self._folder.commit()

    def abort(self):
        self._handle.close()
        self._folder.discard()

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is None:
            self.close()
        else:
            self.abort()
        return False
