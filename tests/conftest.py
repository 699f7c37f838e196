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


@pytest.fixture
def fresh_cfg():
    """cfg at its defaults, with no key set, and so again after the test: for the tests of the
    tools' edge (fast_rcnn.config, fast_rcnn.experiment, the tools), the only ones that load a
    config. Everything below the edge takes its settings as arguments or from a prototxt."""
    from fast_rcnn.config import reset_cfg
    reset_cfg()
    yield
    reset_cfg()
