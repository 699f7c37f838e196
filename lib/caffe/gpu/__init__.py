"""The GPU backend: device context, device arrays, and the project's CUDA kernels.

Nothing here imports pycuda until the GPU is asked for (caffe.set_mode_gpu(), a Blob's device
copy, gpu_nms), so `import caffe` and the whole CPU path work on machines without pycuda or a GPU.

- init(device_id): makes the device's *primary* context current (as pycuda.autoprimaryctx does,
  but on the chosen device). cuDNN and cuBLAS run on the primary context too, so device pointers
  from pycuda are valid in both. It also loads cuDNN and cuBLAS, so a missing library is reported
  when the GPU is switched on rather than at the first convolution.
- to_device / empty / zeros: device arrays (pycuda GPUArray) from one memory pool: Faster R-CNN
  changes the image size every iteration, and the pool turns the resulting stream of
  differently-sized blobs into reuse instead of cudaMalloc/cudaFree calls.
- Kernel: a kernel from a .cu file, compiled at first use (pycuda SourceModule, cached per device
  here and on disk by pycuda) for the device's architecture. A bare file name is one of the
  runtime's own kernels (lib/caffe/gpu/kernels/); code outside the runtime keeps its kernels
  beside itself and passes the absolute path.
- set_allow_tf32: float32 convolutions and matrix products may use TF32 tensor cores (faster on
  Ampere and newer, about 10 mantissa bits). Off by default, so GPU results stay float32 like
  the CPU path and Caffe; the environment variable CAFFE_ALLOW_TF32=1 switches it on too.

All work goes to the legacy default stream (pycuda's stream None, cuDNN's and cuBLAS's stream 0),
so kernels, library calls and copies run in the order they are issued; the one exception is
the layer-wise gradient reduction of data-parallel training (caffe.parallel), which runs NCCL and
its scaling kernel on a stream of its own, ordered after the default stream by an event. The
context is current
on the thread that called init(); the runtime is meant to be driven from that thread.
"""
import atexit
import itertools
import os
import shutil

import numpy as np

from ..common import CaffeError

KERNEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'kernels')
THREADS = 256             # threads per block for the element-wise kernels
MAX_BLOCKS = 1 << 16      # the kernels loop (grid-stride), so the grid need not cover n
# nvcc options for every kernel. --fmad=false keeps a*b+c as two rounded operations, as numpy
# computes it, so element-wise kernels give the CPU path's float32 results bit for bit (a fused
# multiply-add rounds once and can flip a comparison such as an NMS IoU against its threshold).
NVCC_OPTIONS = ('-std=c++17', '--fmad=false')

PIP_HINT = ('pip install -r requirements-gpu.txt (PyCUDA builds from source and needs the CUDA '
            'toolkit; see docs/gpu.md)')


class _State:
    def __init__(self):
        self.drv = None          # pycuda.driver, once imported
        self.device = None       # the device id whose primary context is current
        self.context = None
        self.pool = None         # pycuda.tools.DeviceMemoryPool
        self.placeholder = None  # one word that zero-size arrays point at
        self.allocated = False   # any device array made on this device yet
        self.generation = 0      # which init: compiled kernels and handles belong to one
        self.modules = {}        # kernel file -> pycuda SourceModule (this device)
        self.at_exit = []        # cleanup callbacks of the libraries, run before the pop
        self.allow_tf32 = os.environ.get('CAFFE_ALLOW_TF32', '').lower() in ('1', 'true', 'yes')


_state = _State()
_generations = itertools.count(1)


def _pycuda():
    if _state.drv is None:
        try:
            import pycuda.driver as drv
        except ImportError as e:
            raise CaffeError('the GPU backend needs PyCUDA, which cannot be imported (%s); '
                             'install it with: %s' % (e, PIP_HINT)) from None
        _state.drv = drv
    return _state.drv


def init(device_id=0):
    """Makes `device_id` the device the runtime computes on. Safe to call again for the same
    device; a different device is accepted only until the first device array exists (arrays
    cannot follow to another device), as when a tool calls set_mode_gpu() then set_device(n)."""
    device_id = int(device_id)
    drv = _pycuda()
    if _state.context is not None:
        if _state.device == device_id:
            return
        if _state.allocated:
            raise CaffeError('caffe.set_device(%d): the runtime already holds arrays on GPU %d; '
                             'choose the device before building nets or moving data to the GPU'
                             % (device_id, _state.device))
        _release()
    try:
        drv.init()
        count = drv.Device.count()
    except Exception as e:  # pycuda raises its own RuntimeError/LogicError types
        raise CaffeError('no CUDA GPU found: the CUDA driver reports "%s"' % e) from None
    if count == 0:
        raise CaffeError('no CUDA GPU found: the CUDA driver sees no device')
    if not 0 <= device_id < count:
        raise CaffeError('GPU %d does not exist: this machine has %d CUDA device(s) (0 to %d)'
                         % (device_id, count, count - 1))
    device = drv.Device(device_id)
    context = device.retain_primary_context()
    context.push()
    _state.context, _state.device = context, device_id
    _state.generation = next(_generations)
    try:
        from pycuda.tools import DeviceMemoryPool
        _state.pool = DeviceMemoryPool()
        _state.placeholder = _state.pool.allocate(4)
        # Load the libraries now: a missing one is a setup error to see before any work starts.
        from . import cublas, cudnn
        cublas.library()
        cudnn.library()
    except BaseException:
        _release()  # so that a later init() starts over instead of finding a half-made state
        raise


def _release():
    """Frees what this module holds on the current device and pops its context."""
    for callback in reversed(_state.at_exit):
        callback()
    _state.at_exit = []
    _state.modules = {}
    _state.placeholder = None
    if _state.pool is not None:
        _state.pool.stop_holding()
        _state.pool = None
    if _state.context is not None:
        _state.context.pop()
        _state.context = None
        from pycuda.tools import clear_context_caches
        clear_context_caches()
    _state.device = None
    _state.allocated = False


@atexit.register
def _finish():
    if _state.context is not None:
        try:
            _state.drv.Context.synchronize()
        finally:
            _release()


def on_release(callback):
    """Registers a cleanup (destroying a library handle) to run before the context goes."""
    _state.at_exit.append(callback)


def generation():
    """Changes whenever init() makes a context current: per-context things (compiled kernels,
    library handles) made under another generation must not be used."""
    return _state.generation


def current_device():
    """The device id the runtime computes on, or None before init()."""
    return _state.device


def _ready():
    if _state.context is None:
        raise CaffeError('the GPU backend is not initialized: call caffe.set_mode_gpu() first')


def compute_capability():
    _ready()
    return _state.drv.Device(_state.device).compute_capability()


def synchronize():
    _ready()
    _state.drv.Context.synchronize()


# TF32 switch --------------------------------------------------------------------------------------

def set_allow_tf32(allow):
    """Lets cuDNN convolutions and cuBLAS products use TF32 tensor cores (see the module doc)."""
    _state.allow_tf32 = bool(allow)


def allow_tf32():
    return _state.allow_tf32


# Device arrays ------------------------------------------------------------------------------------

def empty(shape, dtype=np.float32):
    """An uninitialized device array from the runtime's memory pool."""
    _ready()
    from pycuda import gpuarray
    shape = (int(shape),) if np.isscalar(shape) else tuple(int(d) for d in shape)
    dtype = np.dtype(dtype)
    _state.allocated = True
    if int(np.prod(shape, dtype=np.int64)) == 0:
        # pycuda leaves gpudata None for an empty array, and its reshape then fails; an empty
        # array pointing at a spare word reshapes like any other and is never read or written.
        return gpuarray.GPUArray(shape, dtype, allocator=_state.pool.allocate,
                                 gpudata=_state.placeholder)
    return gpuarray.GPUArray(shape, dtype, allocator=_state.pool.allocate)


def zeros(shape, dtype=np.float32):
    a = empty(shape, dtype)
    zero(a)
    return a


def to_device(host_array):
    """A device copy of a host array (what Blob's SyncedArray keeps)."""
    host_array = np.ascontiguousarray(host_array)
    a = empty(host_array.shape, host_array.dtype)
    if a.size:
        a.set(host_array)
    return a


def zero(a):
    """Sets a device array (4-byte elements) to all-zero bits."""
    if a.size:
        if a.dtype.itemsize != 4:
            raise ValueError('zero() takes 4-byte elements, got %s' % a.dtype)
        _state.drv.memset_d32(int(a.gpudata), 0, a.size)


def copy(dst, src):
    """dst[...] = src for two contiguous device arrays of the same size and type."""
    if dst.nbytes != src.nbytes:
        raise ValueError('copy: %d bytes into %d' % (src.nbytes, dst.nbytes))
    if src.nbytes and int(dst.gpudata) != int(src.gpudata):
        _state.drv.memcpy_dtod(int(dst.gpudata), int(src.gpudata), src.nbytes)


def pointer(a):
    """The device address of a GPUArray (0 for None), for library calls."""
    return 0 if a is None else int(a.gpudata)


class Workspace:
    """A device scratch buffer that only grows (one per user: cuDNN, a layer's temporaries)."""

    def __init__(self, dtype=np.uint8):
        self.dtype = np.dtype(dtype)
        self._buffer = None

    def get(self, count):
        if self._buffer is None or self._buffer.size < count:
            self._buffer = empty(max(int(count), 1), self.dtype)
        return self._buffer[:int(count)] if count else self._buffer[:0]


# Kernels ------------------------------------------------------------------------------------------

def _nvcc():
    for candidate in (os.environ.get('NVCC'), shutil.which('nvcc'),
                      os.path.join(os.environ.get('CUDA_HOME', '/usr/local/cuda'), 'bin', 'nvcc')):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise CaffeError('the GPU kernels compile at run time with nvcc, which was not found on PATH, '
                     'in $NVCC or in $CUDA_HOME/bin (default /usr/local/cuda); install the CUDA '
                     'toolkit (see docs/gpu.md)')


def kernel_path(filename):
    """A bare file name is a kernel file of lib/caffe/gpu/kernels; an absolute path is that file
    (a kernel kept beside the code that launches it: os.path.join(os.path.dirname(__file__),
    'x.cu'))."""
    if os.path.isabs(filename):
        return filename
    if os.path.dirname(filename):
        raise CaffeError('kernel file %r: give a bare name (a file of %s) or an absolute path'
                         % (filename, KERNEL_DIR))
    return os.path.join(KERNEL_DIR, filename)


def kernel_source(filename):
    path = kernel_path(filename)
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        raise CaffeError('cannot read CUDA kernel file %s: %s' % (path, e.strerror or e)) from None


def compile_kernels(filename, arch):
    """The cubin of one kernel file for `arch` (e.g. 'sm_90'); needs nvcc, not a GPU. The file's
    own folder and lib/caffe/gpu/kernels (common.cuh) are on the include path."""
    from pycuda.compiler import compile as nvcc_compile
    folder = os.path.dirname(kernel_path(filename))
    include_dirs = [folder] + ([KERNEL_DIR] if folder != KERNEL_DIR else [])
    return nvcc_compile(kernel_source(filename), nvcc=_nvcc(), options=list(NVCC_OPTIONS),
                        arch=arch, no_extern_c=True, include_dirs=include_dirs)


def _module(filename):
    module = _state.modules.get(filename)
    if module is None:
        _ready()
        major, minor = compute_capability()
        cubin = compile_kernels(filename, 'sm_%d%d' % (major, minor))
        module = _state.modules[filename] = _state.drv.module_from_buffer(cubin)
    return module


def _argument(value):
    # Kernels take int, float, double and pointers; Python numbers become the C int and float
    # the kernels declare, and None a null pointer.
    if value is None:
        return np.uintp(0)
    if isinstance(value, (bool, np.bool_)):
        return np.int32(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, (np.int32, np.uint32,
                                                                        np.uint64, np.uintp)):
        if not -2 ** 31 <= int(value) < 2 ** 31:
            raise OverflowError('kernel argument %d does not fit a C int' % value)
        return np.int32(value)
    if isinstance(value, float) and not isinstance(value, np.floating):
        return np.float32(value)
    return value


class Kernel:
    """One __global__ function of a .cu file (see kernel_path). Calling it with (n, *args) runs
    enough blocks for n work items, passing n as the kernel's first (int) argument; nothing
    runs for n == 0. Construction is free; the file compiles at the first call."""

    def __init__(self, filename, name):
        self.filename, self.name = filename, name
        self._functions = {}

    def function(self):
        f = self._functions.get(_state.generation)
        if f is None:
            _ready()
            self._functions = {_state.generation: _module(self.filename).get_function(self.name)}
            f = self._functions[_state.generation]
        return f

    def __call__(self, n, *args, stream=None):
        n = int(n)
        if n <= 0:
            return
        if n >= 2 ** 31 - THREADS * MAX_BLOCKS:
            raise OverflowError('%s: %d work items exceed the kernels\' int indexing'
                                % (self.name, n))
        blocks = min((n + THREADS - 1) // THREADS, MAX_BLOCKS)
        self.function()(np.int32(n), *[_argument(a) for a in args],
                        block=(THREADS, 1, 1), grid=(blocks, 1), stream=stream)

    def launch(self, grid, block, *args, shared=0):
        """A launch with an explicit grid and block (for kernels that are not element-wise)."""
        self.function()(*[_argument(a) for a in args], block=block, grid=grid, shared=shared)


# Solver updates ------------------------------------------------------------------------------------
# One call per parameter blob, on device arrays, computing what the host solver's update_cpu
# computes for it (caffe/solver.py, caffe/sgd_solvers.py; float32, same order): the diff scaled
# by 1/iter_size and regularized, the method's update value written into diff and its history
# advanced, then data -= diff. `rate` is the parameter's local rate (the global rate times its
# lr_mult); `decay` the weight decay times its decay_mult.

_sgd_update = Kernel('elementwise.cu', 'sgd_update')
_nesterov_update = Kernel('elementwise.cu', 'nesterov_update')
_adagrad_update = Kernel('elementwise.cu', 'adagrad_update')
_rmsprop_update = Kernel('elementwise.cu', 'rmsprop_update')
_adadelta_update = Kernel('elementwise.cu', 'adadelta_update')
_adam_update = Kernel('elementwise.cu', 'adam_update')


def _gradient_arguments(decay, regularization, iter_size):
    """The kernels' Normalize and Regularize arguments: scale_diff, iter_scale,
    regularization (0 none, 1 L2, 2 L1), decay."""
    if not decay:
        kind = 0
    elif regularization == 'L2':
        kind = 1
    elif regularization == 'L1':
        kind = 2
    else:
        raise CaffeError('unknown regularization_type %r' % regularization)
    return (iter_size > 1, np.float32(1) / np.float32(iter_size), kind, np.float32(decay))


def sgd_update(data, diff, history, rate, momentum=0.0, decay=0.0, regularization='L2',
               iter_size=1):
    """SGD with momentum: history = momentum * history + rate * g; diff = history."""
    _sgd_update(data.size, data, diff, history,
                *_gradient_arguments(decay, regularization, iter_size),
                np.float32(momentum), np.float32(rate))


def nesterov_update(data, diff, history, rate, momentum=0.0, decay=0.0, regularization='L2',
                    iter_size=1):
    """Nesterov: history' = momentum * history + rate * g;
    diff = (1 + momentum) * history' - momentum * history."""
    momentum = np.float32(momentum)
    _nesterov_update(data.size, data, diff, history,
                     *_gradient_arguments(decay, regularization, iter_size),
                     momentum, np.float32(1) + momentum, np.float32(rate))


def adagrad_update(data, diff, history, rate, delta=1e-8, decay=0.0, regularization='L2',
                   iter_size=1):
    """AdaGrad: history += g * g; diff = rate * g / (sqrt(history) + delta)."""
    _adagrad_update(data.size, data, diff, history,
                    *_gradient_arguments(decay, regularization, iter_size),
                    np.float32(delta), np.float32(rate))


def rmsprop_update(data, diff, history, rate, rms_decay=0.99, delta=1e-8, decay=0.0,
                   regularization='L2', iter_size=1):
    """RMSProp: history = rms_decay * history + (1 - rms_decay) * g * g;
    diff = rate * g / (sqrt(history) + delta)."""
    rms_decay = np.float32(rms_decay)
    _rmsprop_update(data.size, data, diff, history,
                    *_gradient_arguments(decay, regularization, iter_size),
                    rms_decay, np.float32(1) - rms_decay, np.float32(delta), np.float32(rate))


def adadelta_update(data, diff, history, update_history, rate, momentum=0.0, delta=1e-8,
                    decay=0.0, regularization='L2', iter_size=1):
    """AdaDelta (Caffe's, with a learning rate): the running means of squared gradients
    (history) and of squared steps (update_history) decay by `momentum`;
    diff = rate * g * sqrt((update_history + delta) / (history + delta))."""
    momentum = np.float32(momentum)
    _adadelta_update(data.size, data, diff, history, update_history,
                     *_gradient_arguments(decay, regularization, iter_size),
                     momentum, np.float32(1) - momentum, np.float32(delta), np.float32(rate))


def adam_update(data, diff, m, v, corrected_rate, beta1=0.9, beta2=0.999, delta=1e-8,
                decay=0.0, regularization='L2', iter_size=1):
    """Adam: m = beta1 * m + (1 - beta1) * g; v = beta2 * v + (1 - beta2) * g * g;
    diff = corrected_rate * m / (sqrt(v) + delta), where corrected_rate is the local rate times
    Caffe's bias correction sqrt(1 - beta2^t) / (1 - beta1^t)."""
    beta1, beta2 = np.float32(beta1), np.float32(beta2)
    _adam_update(data.size, data, diff, m, v,
                 *_gradient_arguments(decay, regularization, iter_size),
                 beta1, np.float32(1) - beta1, beta2, np.float32(1) - beta2, np.float32(delta),
                 np.float32(corrected_rate))


__all__ = ['init', 'current_device', 'to_device', 'empty', 'zeros', 'zero', 'copy', 'pointer',
           'Kernel', 'Workspace', 'set_allow_tf32', 'allow_tf32', 'synchronize',
           'compile_kernels', 'kernel_path', 'sgd_update', 'nesterov_update', 'adagrad_update',
           'rmsprop_update', 'adadelta_update', 'adam_update', 'KERNEL_DIR']
