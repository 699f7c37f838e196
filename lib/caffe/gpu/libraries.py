"""Finding and loading NVIDIA's shared libraries (cuDNN, cuBLAS, NCCL) for the ctypes bindings.

The NVIDIA pip wheels put their libraries in site-packages/nvidia/<package>/lib (CUDA 12 wheels,
cuDNN) or site-packages/nvidia/cu13/lib (CUDA 13 wheels); those folders are searched first, then
the system's library path by soname. A library found in a wheel folder is loaded by its full
path, after the libraries it needs from the same folder (libcublas.so.13 needs libcublasLt.so.13
but carries no RUNPATH to find it there), so nothing depends on LD_LIBRARY_PATH.
"""
import ctypes
import os
import site
import sys

from ..common import CaffeError


class LibrarySpec:
    """What to look for: sonames in order of preference, each with the sonames it needs loaded
    first; the wheel folders (relative to site-packages); and how to install it."""

    def __init__(self, what, sonames, wheel_dirs, install):
        self.what = what
        self.sonames = sonames          # [(soname, [needed sonames])]
        self.wheel_dirs = wheel_dirs
        self.install = install


CUDNN = LibrarySpec(
    'cuDNN 9', [('libcudnn.so.9', [])],
    ['nvidia/cudnn/lib', 'nvidia/cu13/lib', 'nvidia/cu12/lib'],
    'pip install nvidia-cudnn-cu13 (CUDA 13; nvidia-cudnn-cu12 for CUDA 12)')

CUBLAS = LibrarySpec(
    'cuBLAS', [('libcublas.so.13', ['libcublasLt.so.13']),
               ('libcublas.so.12', ['libcublasLt.so.12'])],
    ['nvidia/cu13/lib', 'nvidia/cublas/lib', 'nvidia/cu12/lib'],
    'pip install nvidia-cublas (CUDA 13; nvidia-cublas-cu12 for CUDA 12)')


NCCL = LibrarySpec(
    'NCCL 2', [('libnccl.so.2', [])],
    ['nvidia/nccl/lib', 'nvidia/cu13/lib', 'nvidia/cu12/lib'],
    'pip install nvidia-nccl-cu13 (CUDA 13; nvidia-nccl-cu12 for CUDA 12)')


def site_dirs():
    """Where pip installs packages: site-packages folders and anything on sys.path."""
    dirs = []
    try:
        dirs += site.getsitepackages()
    except AttributeError:  # some virtualenv layouts lack it
        pass
    try:
        dirs.append(site.getusersitepackages())
    except AttributeError:
        pass
    dirs += [p for p in sys.path if p]
    seen, out = set(), []
    for d in dirs:
        d = os.path.abspath(d)
        if d not in seen and os.path.isdir(d):
            seen.add(d)
            out.append(d)
    return out


def _load_from(folder, soname, needed):
    for dep in needed:
        path = os.path.join(folder, dep)
        if os.path.isfile(path):
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    return ctypes.CDLL(os.path.join(folder, soname), mode=ctypes.RTLD_GLOBAL)


def load(spec, search_dirs=None, system=True):
    """Loads the first of spec's libraries found: in a wheel folder under one of search_dirs
    (default: site_dirs()), else (if system) by soname. Returns (ctypes.CDLL, where loaded from).
    Raises one CaffeError naming the library, where it looked and the install command."""
    search_dirs = site_dirs() if search_dirs is None else [str(d) for d in search_dirs]
    folders = [os.path.join(base, sub) for base in search_dirs for sub in spec.wheel_dirs]
    errors = []
    for soname, needed in spec.sonames:
        for folder in folders:
            if os.path.isfile(os.path.join(folder, soname)):
                try:
                    return _load_from(folder, soname, needed), os.path.join(folder, soname)
                except OSError as e:
                    errors.append(str(e))
    if system:
        # On the system path the dynamic linker finds the needed libraries itself.
        for soname, _ in spec.sonames:
            try:
                return ctypes.CDLL(soname, mode=ctypes.RTLD_GLOBAL), soname
            except OSError as e:
                errors.append(str(e))
    names = ' or '.join(soname for soname, _ in spec.sonames)
    looked = ', '.join(spec.wheel_dirs) + ' under ' + (', '.join(search_dirs) or '(no folders)')
    if system:
        looked += ', then the system library path (LD_LIBRARY_PATH, ldconfig)'
    detail = ('; loading failed: %s' % '; '.join(errors)) if errors else ''
    raise CaffeError('%s library not found (%s): looked in %s%s. Install it with: %s'
                     % (spec.what, names, looked, detail, spec.install))
