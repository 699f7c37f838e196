"""Process-wide runtime state, as Caffe's `Caffe` singleton holds it: mode, device, RNG; and
pycaffe's logging switches (init_log, log)."""
import datetime
import logging
import sys
import threading

import numpy as np

CPU, GPU = 'CPU', 'GPU'

_state = {'mode': CPU, 'device': 0, 'rng': np.random.RandomState()}


class CaffeError(RuntimeError):
    """A user-facing error: bad file, bad parameter, bad shape. The message is the whole story.
    A RuntimeError, as the errors pycaffe raises from Caffe (a missing file gives
    RuntimeError("Could not open file X")), so `except RuntimeError` catches it there and here."""


def set_mode_cpu():
    _state['mode'] = CPU


def set_mode_gpu():
    from . import gpu  # imported lazily: CPU-only machines never touch pycuda
    gpu.init(_state['device'])
    _state['mode'] = GPU


def set_device(device_id):
    _state['device'] = int(device_id)
    if _state['mode'] == GPU:
        from . import gpu
        gpu.init(_state['device'])


def mode():
    return _state['mode']


def device():
    """The device id set by set_device (the GPU the runtime uses in GPU mode)."""
    return _state['device']


def set_random_seed(seed):
    """Seeds the runtime's RNG (fillers, dropout); like caffe.set_random_seed."""
    _state['rng'] = np.random.RandomState(int(seed))


def rng():
    return _state['rng']


# Logging -----------------------------------------------------------------------------------------
# pycaffe's init_log([level[, stderr]]) sets glog's minimum level (0 INFO, 1 WARNING, 2 ERROR,
# 3 FATAL) and whether everything goes to stderr; without stderr, glog writes INFO lines to log
# files and only ERROR and above to stderr. Here there are no log files: the lines that glog would
# put only in files are dropped.
_GLOG_LEVELS = (logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)
logger = logging.getLogger('caffe')


class _GlogFormatter(logging.Formatter):
    """glog's line layout: I0102 15:04:05.123456 <thread id> <logger>] message"""

    def format(self, record):
        when = datetime.datetime.fromtimestamp(record.created)
        letter = {logging.INFO: 'I', logging.WARNING: 'W',
                  logging.ERROR: 'E'}.get(record.levelno, 'F')
        return '%s%s %s %s] %s' % (letter, when.strftime('%m%d %H:%M:%S.%f'),
                                   threading.get_native_id(), record.name, record.getMessage())


def init_log(level=0, stderr=False):
    """pycaffe's caffe.init_log(): messages at `level` (glog's 0-3) and above go to stderr when
    `stderr` is true; otherwise only ERROR and FATAL do."""
    level = int(level)
    if not 0 <= level <= 3:
        raise ValueError('init_log: level must be 0 (INFO), 1 (WARNING), 2 (ERROR) or 3 (FATAL), '
                         'got %d' % level)
    threshold = _GLOG_LEVELS[level] if stderr else max(_GLOG_LEVELS[level], logging.ERROR)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_GlogFormatter())
    logger.addHandler(handler)
    logger.setLevel(threshold)
    logger.propagate = False


def log(message):
    """pycaffe's caffe.log(s): one INFO line in glog's format (shown once init_log allows it)."""
    logger.info('%s', message)


# Data-parallel settings, as pycaffe sets them on Caffe's singleton. The solver reads them: only
# the root rank (0) tests, displays and snapshots, and each rank seeds its RNG with
# random_seed + rank.
_parallel = {'count': 1, 'rank': 0, 'multiprocess': False}


def set_solver_count(count):
    """How many solvers train together (one per GPU or process)."""
    count = int(count)
    if count < 1:
        raise ValueError('solver count must be at least 1, got %d' % count)
    _parallel['count'] = count


def solver_count():
    return _parallel['count']


def set_solver_rank(rank):
    """This process's solver among solver_count(); rank 0 is the root solver."""
    rank = int(rank)
    if rank < 0:
        raise ValueError('solver rank must be at least 0, got %d' % rank)
    _parallel['rank'] = rank


def solver_rank():
    return _parallel['rank']


def root_solver():
    """Caffe::root_solver(): whether this is rank 0, which tests, displays and snapshots."""
    return _parallel['rank'] == 0


def set_multiprocess(multiprocess):
    """Whether the solvers run in separate processes (pycaffe's set_multiprocess)."""
    _parallel['multiprocess'] = bool(multiprocess)


def multiprocess():
    return _parallel['multiprocess']
