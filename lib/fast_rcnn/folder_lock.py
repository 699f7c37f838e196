"""One training at a time in an output folder.

Two trainings writing snapshots into one folder would overwrite each other's files and could
leave a snapshot whose three files come from different runs. A training holds an exclusive
lock on <folder>/.training.lock (flock: the kernel releases it when the process ends, even by
kill -9, so a crashed run never leaves the folder locked); a second one stops at once with a
message naming the first.
"""
import contextlib
import fcntl
import os
import socket
import time

LOCK_FILE = '.training.lock'


class FolderInUse(RuntimeError):
    """Another process holds the folder's training lock."""


@contextlib.contextmanager
def training_lock(folder):
    """Holds the training lock of `folder` (made if needed) for the block; FolderInUse when
    another process holds it."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, LOCK_FILE)
    # Not caffe.io.atomic_write: the lock lives on this very file (inode); a file renamed over
    # it would be a new, unlocked one.
    f = open(path, 'a+')
    try:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or 'another process'
            raise FolderInUse(
                '%s is in use by another training (%s): two runs writing snapshots into one '
                'folder would mix their files. Wait for it to end, or train into another folder '
                '(--set EXP_DIR NAME)' % (folder, holder)) from None
        f.seek(0)
        f.truncate()
        f.write('pid %d on %s since %s' % (os.getpid(), socket.gethostname(),
                                          time.strftime('%Y-%m-%d %H:%M:%S')))
        f.flush()
        yield path
    finally:
        f.close()
