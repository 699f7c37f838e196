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


def device():
    """The device id set by set_device (the GPU the runtime uses in GPU mode)."""
    return _state['device']


def set_random_seed(seed):
    """Seeds the runtime's RNG (fillers, dropout); like caffe.set_random_seed."""
    _state['rng'] = np.random.RandomState(int(seed))


def rng():
    return _state['rng']
