import os
import sys

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
    import pytest
    gpu_items = [item for item in items if 'gpu' in item.keywords]
    if gpu_items and not _gpu_available():
        skip = pytest.mark.skip(reason='no CUDA GPU / pycuda on this machine')
        for item in gpu_items:
            item.add_marker(skip)
