import copy
import os
import sys

import pytest

LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'lib')
if LIB not in sys.path:
    sys.path.insert(0, LIB)


def pytest_configure(config):
    config.addinivalue_line('markers', 'gpu: needs a CUDA GPU and pycuda; skipped without one')
    config.addinivalue_line('markers', 'slow: end-to-end runs (seconds to minutes)')


def _gpu_available():
    try:
        import pycuda.driver as cuda
        cuda.init()
        return cuda.Device.count() > 0
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    # the marker, not the keyword: a folder named gpu/ would otherwise count as one
    gpu_items = [item for item in items if item.get_closest_marker('gpu') is not None]
    if gpu_items and not _gpu_available():
        skip = pytest.mark.skip(reason='no CUDA GPU / pycuda on this machine')
        for item in gpu_items:
            item.add_marker(skip)


def _restore(target, saved):
    for key, value in saved.items():
        if isinstance(value, dict):
            _restore(target[key], value)
        else:
            target[key] = value


@pytest.fixture(autouse=True)
def restore_cfg():
    """Every test sees the default cfg and CPU mode, whatever an earlier test changed. The cfg is
    restored in place: modules hold references to its sub-dicts."""
    from fast_rcnn.config import cfg
    import caffe
    saved = copy.deepcopy(dict(cfg))
    yield
    _restore(cfg, saved)
    caffe.set_mode_cpu()
