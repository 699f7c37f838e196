"""Builds tests/parallel/fake_nccl.c (a libnccl.so.2 stand-in; see its header) with the host C
compiler into a folder laid out as the nvidia-nccl wheel installs it (nvidia/nccl/lib/), and points
caffe.gpu.nccl at it through the binding's own wheel-folder lookup."""
import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, 'fake_nccl.c')


def compiler():
    for name in (os.environ.get('CC'), 'gcc', 'cc', 'clang'):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def build():
    """The site folder holding nvidia/nccl/lib/libnccl.so.2 (built once per source version)."""
    source = open(SOURCE).read()
    key = hashlib.sha1(source.encode()).hexdigest()[:16]
    site = os.path.join(tempfile.gettempdir(), 'caffe-fake-nccl-%d' % os.getuid(), key)
    lib_dir = os.path.join(site, 'nvidia', 'nccl', 'lib')
    out = os.path.join(lib_dir, 'libnccl.so.2')
    if not os.path.isfile(out):
        os.makedirs(lib_dir, exist_ok=True)
        subprocess.run([compiler(), '-O1', '-fPIC', '-shared', '-pthread', SOURCE, '-o',
                        out + '.tmp', '-lrt'], check=True, capture_output=True, text=True)
        os.replace(out + '.tmp', out)
    return site


def install(site):
    """Makes caffe.gpu.nccl load the fake from `site` (as it would load the wheel) and returns
    the loaded ctypes library, whose test hooks the tests read."""
    from caffe.gpu import nccl
    nccl._lib.clear()
    lib = nccl.library(search_dirs=[site], system=False)
    lib.fakeNcclCalls.argtypes = [ctypes.c_char_p]
    lib.fakeNcclCalls.restype = ctypes.c_long
    lib.fakeNcclLastStream.restype = ctypes.c_void_p
    return lib
