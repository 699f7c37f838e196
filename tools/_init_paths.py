"""Puts lib/ first on sys.path so `import caffe` (and the detection packages) resolve to this
project, ahead of tools/ itself (whose caffe.py is the `caffe` command, not the package) even
where PYTHONPATH already names lib/ further down, and asks numpy's OpenBLAS and OpenCV, not
loaded yet, for the runtime's thread settings (caffe/blas_threads.py)."""
import importlib.util
import os
import sys

LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'lib')
if sys.path[:1] != [LIB]:
    while LIB in sys.path:
        sys.path.remove(LIB)
    sys.path.insert(0, LIB)

# Loaded by path, not as caffe.blas_threads: importing the caffe package would load numpy first.
_spec = importlib.util.spec_from_file_location('_blas_threads',
                                               os.path.join(LIB, 'caffe', 'blas_threads.py'))
_blas_threads = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_blas_threads)
_blas_threads.ask_before_numpy()
_blas_threads.opencv_on_the_calling_thread()
