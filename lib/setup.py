"""Builds the project's Cython extensions in place: `python setup.py build_ext --inplace`.

Every .pyx under lib/ becomes an extension named by its path (nms/cpu_nms.pyx -> nms.cpu_nms);
utils/bbox.pyx keeps the release's module name, utils.cython_bbox. Extensions whose source uses
Cython's prange are built with OpenMP where the compiler has it (all cores by default,
OMP_NUM_THREADS to limit them); without it their loops run on one thread. No extension lets the
compiler fuse a product and a sum into one rounding (-ffp-contract=off): the kernels reproduce
Caffe's float32 operations one rounding at a time, whatever -march a build adds.
"""
import os
import glob
import subprocess
import sysconfig
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
RENAMED = {'utils.bbox': 'utils.cython_bbox'}


def openmp_flags():
    """['-fopenmp'] if the C compiler builds and links an OpenMP program with it, else []."""
    cc = (os.environ.get('CC') or sysconfig.get_config_var('CC') or 'cc').split()
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, 'omp.c')
        with open(src, 'w') as f:
            f.write('#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n')
        try:
            done = subprocess.run(cc + ['-fopenmp', src, '-o', os.path.join(tmp, 'omp')],
                                  capture_output=True)
        except OSError:
            return []
    return ['-fopenmp'] if done.returncode == 0 else []


def find_extensions():
    extensions = []
    openmp = None
    for path in sorted(glob.glob(os.path.join(HERE, '**', '*.pyx'), recursive=True)):
        rel = os.path.relpath(path, HERE)
        name = os.path.splitext(rel)[0].replace(os.sep, '.')
        with open(path) as f:
            parallel = 'prange' in f.read()
        if parallel and openmp is None:
            openmp = openmp_flags()
        flags = openmp if parallel else []
        extensions.append(Extension(
            RENAMED.get(name, name), [rel],
            include_dirs=[np.get_include()],
            define_macros=[('NPY_NO_DEPRECATED_API', 'NPY_1_7_API_VERSION')],
            extra_compile_args=['-O3', '-ffp-contract=off', '-Wno-unused-function',
                                '-Wno-cpp'] + flags,
            extra_link_args=flags))
    return extensions


os.chdir(HERE)
setup(name='faster_rcnn_ext',
      ext_modules=cythonize(find_extensions(), language_level=3, quiet=True,
                            compiler_directives={'boundscheck': False, 'wraparound': False,
                                                 'cdivision': True}))
