import os
import sys

LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'lib')
if LIB not in sys.path:
    sys.path.insert(0, LIB)


def pytest_configure(config):
    config.addinivalue_line('markers', 'gpu: needs a CUDA GPU and pycuda; skipped without one')
    config.addinivalue_line('markers', 'slow: end-to-end runs (seconds to minutes)')
