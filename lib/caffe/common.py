"""Process-wide runtime state, as Caffe's `Caffe` singleton holds it: mode, device, RNG."""
import sys

import numpy as np

CPU, GPU = 'CPU', 'GPU'

# sys.path as it was when the runtime was first imported: the interpreter's own entries (the
# working directory, the script's folder, the standard library, site-packages). Python layers
# are not imported from these (see layers/python_layer.py); folders the program adds later are
# its deliberate choice.
STARTUP_SYS_PATH = tuple(sys.path)

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
