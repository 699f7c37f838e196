"""Process-wide runtime state, as Caffe's `Caffe` singleton holds it: mode, device, RNG."""
import numpy as np

CPU, GPU = 'CPU', 'GPU'

_state = {'mode': CPU, 'device': 0, 'rng': np.random.RandomState()}


class CaffeError(Exception):
    """A user-facing error: bad file, bad parameter, bad shape. The message is the whole story."""


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


def set_random_seed(seed):
    """Seeds the runtime's RNG (fillers, dropout); like caffe.set_random_seed."""
    _state['rng'] = np.random.RandomState(int(seed))


def rng():
    return _state['rng']


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
