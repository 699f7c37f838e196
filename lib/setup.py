"""Builds the project's Cython extensions in place: `python setup.py build_ext --inplace`.

Every .pyx under lib/ becomes an extension named by its path (nms/cpu_nms.pyx -> nms.cpu_nms);
utils/bbox.pyx keeps the release's module name, utils.cython_bbox.
"""
import os
import glob

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
RENAMED = {'utils.bbox': 'utils.cython_bbox'}


def find_extensions():
    extensions = []
    for path in sorted(glob.glob(os.path.join(HERE, '**', '*.pyx'), recursive=True)):
        rel = os.path.relpath(path, HERE)
        name = os.path.splitext(rel)[0].replace(os.sep, '.')
        extensions.append(Extension(
            RENAMED.get(name, name), [rel],
            include_dirs=[np.get_include()],
            define_macros=[('NPY_NO_DEPRECATED_API', 'NPY_1_7_API_VERSION')],
            extra_compile_args=['-O3', '-Wno-unused-function', '-Wno-cpp']))
    return extensions


os.chdir(HERE)
setup(name='faster_rcnn_ext',
      ext_modules=cythonize(find_extensions(), language_level=3, quiet=True,
                            compiler_directives={'boundscheck': False, 'wraparound': False,
                                                 'cdivision': True}))
