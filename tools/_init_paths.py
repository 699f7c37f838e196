"""Puts lib/ first on sys.path so `import caffe` (and the detection packages) resolve to this
project, ahead of tools/ itself (whose caffe.py is the `caffe` command, not the package) even
where PYTHONPATH already names lib/ further down, and asks numpy's OpenBLAS and OpenCV, not
loaded yet, for the runtime's thread settings (caffe/blas_threads.py)."""
import importlib.util
import os
import sys

TOOLS = os.path.dirname(os.path.abspath(__file__))
LIB = os.path.join(os.path.dirname(TOOLS), 'lib')


def _lib_ahead_of_tools():
    # Where tools/ comes first (a script's own folder is sys.path[0]), lib/ goes just before it;
    # a path set up by the caller ahead of tools/ (another checkout's lib/: benchmark_cpu --lib)
    # stays ahead.
    entries = [os.path.abspath(p or os.curdir) for p in sys.path]
    tools_at = entries.index(TOOLS) if TOOLS in entries else len(entries)
    if LIB in entries[:tools_at]:
        return
    sys.path[:] = [p for p, e in zip(sys.path, entries) if e != LIB]
    sys.path.insert(min(tools_at, len(sys.path)), LIB)


_lib_ahead_of_tools()

# Loaded by path, not as caffe.blas_threads: importing the caffe package would load numpy first.
_spec = importlib.util.spec_from_file_location('_blas_threads',
                                               os.path.join(LIB, 'caffe', 'blas_threads.py'))
_blas_threads = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_blas_threads)
_blas_threads.ask_before_numpy()
_blas_threads.opencv_on_the_calling_thread()
