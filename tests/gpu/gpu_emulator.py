"""A CPU stand-in for the GPU, so the GPU code paths run (and are tested) on machines without one.

It replaces, for the duration of a test, the three things the runtime's GPU backend talks to:

- pycuda: a fake `pycuda` package whose "device memory" is host memory. GPUArray, the memory
  pool, memset/memcpy and the context calls behave as pycuda's do (including pycuda's failure
  to reshape an empty array that has no allocation). pycuda.compiler.compile builds the project's
  .cu kernel files with the host C++ compiler against a small shim of CUDA's built-ins (grid and
  thread indices, __shared__, __syncthreads as a barrier); a launch runs an element-wise
  (grid-stride) kernel as one thread, and a kernel that synchronizes as real threads per block.
- cuBLAS: cublasSgemm_v2 implemented from the BLAS definition on column-major operands, so the
  row-major trick in caffe.gpu.cublas is exercised, not assumed.
- cuDNN: the legacy convolution calls implemented with numpy from the descriptors they are given
  (checking that each call gets tensor, filter and convolution descriptors in the header's order
  and shapes that agree), so caffe.gpu.cudnn's wiring is exercised.

What it cannot show: that the real libraries and a real device behave as these do. The tests
marked `gpu` check that on a GPU machine.
"""
import contextlib
import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import types

import numpy as np

SHIM = r'''
#pragma once
#include <algorithm>
#include <barrier>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <thread>
#include <vector>
using std::max;
using std::min;
struct EmuDim { unsigned int x = 0, y = 0, z = 0; };
static thread_local EmuDim threadIdx, blockIdx;
static EmuDim blockDim, gridDim;
static std::barrier<>* emu_barrier = nullptr;
static unsigned char* emu_dynamic_shared = nullptr;
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __syncthreads() emu_barrier->arrive_and_wait()

// An element-wise (grid-stride) kernel does the same work as one thread as with many.
extern "C" void emu_single_thread() {
  gridDim = {1, 1, 1}; blockDim = {1, 1, 1}; blockIdx = {0, 0, 0}; threadIdx = {0, 0, 0};
}

// A kernel that synchronizes runs as `threads` real threads that go through the blocks one at a
// time together (static __shared__ arrays are then each block's shared memory). Like CUDA, it
// needs every thread of a block to reach each __syncthreads, or none.
template <class Body>
static void emu_run(unsigned gx, unsigned gy, unsigned threads, size_t shared, Body body) {
  gridDim = {gx, gy, 1};
  blockDim = {threads, 1, 1};
  std::barrier<> sync(threads), block_end(threads);
  emu_barrier = &sync;
  std::vector<unsigned char> dynamic(shared + 16);
  emu_dynamic_shared = dynamic.data();
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([&, t]() {
      threadIdx = {t, 0, 0};
      for (unsigned by = 0; by < gy; ++by) {
        for (unsigned bx = 0; bx < gx; ++bx) {
          blockIdx = {bx, by, 0};
          body();
          block_end.arrive_and_wait();
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  emu_barrier = nullptr;
  emu_dynamic_shared = nullptr;
}
'''

_DYNAMIC_SHARED = re.compile(r'extern\s+__shared__\s+([\w ]+?)\s+(\w+)\[\];')
_KERNEL = re.compile(r'__global__\s+void\s+(\w+)\s*\(([^)]*)\)\s*\{')


def _kernels(source):
    """(name, parameter list text, body text) of each __global__ function."""
    out = []
    for m in _KERNEL.finditer(source):
        depth, i = 0, m.end() - 1
        while True:
            depth += {'{': 1, '}': -1}.get(source[i], 0)
            if depth == 0:
                break
            i += 1
        out.append((m.group(1), m.group(2), source[m.end():i]))
    return out


def _launchers(source):
    """For each kernel that calls __syncthreads, emu_launch_<name>(params..., grid x, grid y,
    threads, shared bytes), which runs it on real threads (see emu_run in the shim)."""
    code = []
    for name, params, body in _kernels(source):
        if '__syncthreads' not in body:
            continue
        names = [re.findall(r'\w+', p)[-1] for p in params.split(',')]
        code.append('extern "C" void emu_launch_%s(%s, unsigned gx, unsigned gy, unsigned threads, '
                    'size_t shared) {\n  emu_run(gx, gy, threads, shared, [&]() { %s(%s); });\n}\n'
                    % (name, params, name, ', '.join(names)))
    return '\n'.join(code)


def compiler():
    """The host C++ compiler, or None."""
    for name in (os.environ.get('CXX'), 'g++', 'c++', 'clang++'):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


_BUILD_DIR = os.path.join(tempfile.gettempdir(), 'caffe-gpu-emulator-%d' % os.getuid())


def build(source, include_dirs):
    """Compiles a kernel source for the host; returns the shared library's path."""
    source = _DYNAMIC_SHARED.sub(r'\1* \2 = (\1*)emu_dynamic_shared;', source)
    source += '\n' + _launchers(source)
    os.makedirs(_BUILD_DIR, exist_ok=True)
    shim = os.path.join(_BUILD_DIR, 'emu_shim.h')
    if not os.path.isfile(shim) or open(shim).read() != SHIM:
        with open(shim, 'w') as f:
            f.write(SHIM)
    includes = ''.join(open(os.path.join(d, f)).read() for d in include_dirs
                       for f in sorted(os.listdir(d)) if f.endswith('.cuh'))
    key = hashlib.sha1((SHIM + includes + source).encode()).hexdigest()[:16]
    out = os.path.join(_BUILD_DIR, 'kernels-%s.so' % key)
    if not os.path.isfile(out):
        src = os.path.join(_BUILD_DIR, 'kernels-%s.cpp' % key)
        with open(src, 'w') as f:
            f.write(source)
        # -ffp-contract=off: no fused multiply-add, like the real kernels' --fmad=false.
        cmd = [compiler(), '-std=c++20', '-O1', '-fPIC', '-shared', '-pthread',
               '-ffp-contract=off', '-include', shim] + \
              ['-I%s' % d for d in include_dirs] + [src, '-o', out + '.tmp']
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        os.replace(out + '.tmp', out)
    return out


# Fake pycuda -------------------------------------------------------------------------------------

class FakeAllocation:
    """Host memory standing in for a device allocation; int() is its address."""

    def __init__(self, nbytes):
        self._buffer = np.zeros(int(nbytes) + 256, np.uint8)
        address = self._buffer.ctypes.data
        self.address = address + (-address % 256)   # cudaMalloc's alignment
        self.nbytes = int(nbytes)

    def __int__(self):
        return self.address

    __index__ = __int__


def _view(address, shape, dtype):
    dtype = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    if count == 0:
        return np.empty(shape, dtype)
    raw = (ctypes.c_char * (count * dtype.itemsize)).from_address(address)
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


class GPUArray:
    """pycuda.gpuarray.GPUArray's behaviour on host memory (contiguous arrays only)."""

    def __init__(self, shape, dtype, allocator=None, base=None, gpudata=None, strides=None,
                 order='C'):
        if isinstance(shape, (int, np.integer)):
            shape = (int(shape),)
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.size = int(np.prod(self.shape, dtype=np.int64))
        self.nbytes = self.size * self.dtype.itemsize
        self.itemsize = self.dtype.itemsize
        self.allocator = allocator or FakeAllocation
        if gpudata is None:
            gpudata = self.allocator(self.nbytes) if self.size else None
        self.gpudata = gpudata
        self.base = base

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def __cuda_array_interface__(self):
        return {'shape': self.shape, 'typestr': self.dtype.str, 'version': 3, 'strides': None,
                'data': (int(self.gpudata) if self.gpudata is not None else 0, False)}

    def _host_view(self):
        return _view(int(self.gpudata), self.shape, self.dtype) if self.size else \
            np.empty(self.shape, self.dtype)

    def reshape(self, *shape, order='C'):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        if shape == self.shape:
            return self
        if -1 in shape:
            known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
            shape = tuple(self.size // known if d == -1 else d for d in shape)
        if int(np.prod(shape, dtype=np.int64)) != self.size:
            raise ValueError('total size of new array must be unchanged')
        # As pycuda: int(None) fails for an empty array without an allocation.
        return GPUArray(shape, self.dtype, self.allocator, base=self, gpudata=int(self.gpudata))

    def ravel(self):
        return self.reshape(self.size)

    def __getitem__(self, index):
        if self.ndim != 1 or not isinstance(index, slice) or index.step not in (None, 1):
            raise NotImplementedError('the emulator slices 1-D arrays only')
        start, stop, _ = index.indices(self.size)
        stop = max(stop, start)
        return GPUArray((stop - start,), self.dtype, self.allocator, base=self,
                        gpudata=int(self.gpudata) + start * self.itemsize)

    def set(self, ary):
        ary = np.asarray(ary)
        if ary.size != self.size:
            raise ValueError('ary and self must be the same size')
        if ary.dtype != self.dtype:
            raise ValueError('ary and self must have the same dtype')
        if self.size:
            self._host_view()[...] = ary.reshape(self.shape)

    def get(self, ary=None):
        if ary is None:
            ary = np.empty(self.shape, self.dtype)
        elif ary.size != self.size or ary.dtype != self.dtype:
            raise ValueError('get: size or dtype mismatch')
        if self.size:
            ary.reshape(self.shape)[...] = self._host_view()
        return ary


class FakeMemoryPool:
    def __init__(self):
        self.held = True

    def allocate(self, nbytes):
        return FakeAllocation(nbytes)

    def stop_holding(self):
        self.held = False

    def free_held(self):
        pass


class FakeContext:
    stack = []

    def __init__(self, device):
        self.device = device

    def push(self):
        FakeContext.stack.append(self)

    def pop(self):
        FakeContext.stack.pop()

    @staticmethod
    def synchronize():
        pass

    def get_device(self):
        return self.device


class FakeDevice:
    count_value = 1

    def __init__(self, ordinal):
        if not 0 <= ordinal < FakeDevice.count_value:
            raise ValueError('invalid device ordinal')
        self.ordinal = ordinal

    @staticmethod
    def count():
        return FakeDevice.count_value

    def compute_capability(self):
        return (9, 0)

    def retain_primary_context(self):
        return FakeContext(self)


class FakeStream:
    """pycuda.driver.Stream: work is synchronous here; the handle is what libraries get."""
    _handles = iter(range(0x5000, 1 << 30))

    def __init__(self, flags=0):
        self.flags = flags
        self.handle = next(FakeStream._handles)
        self.waited_for = []

    def synchronize(self):
        pass

    def wait_for_event(self, event):
        self.waited_for.append(event)


class FakeEvent:
    def __init__(self, flags=0):
        self.recorded_on = 'never'

    def record(self, stream=None):
        self.recorded_on = stream
        return self

    def synchronize(self):
        return self


_CTYPES = {np.dtype(np.int32): ctypes.c_int, np.dtype(np.uint32): ctypes.c_uint,
           np.dtype(np.float32): ctypes.c_float, np.dtype(np.float64): ctypes.c_double,
           np.dtype(np.uint64): ctypes.c_uint64, np.dtype(np.int64): ctypes.c_int64}


class FakeFunction:
    def __init__(self, library, name, cooperative):
        self.name = name
        self.library = library
        self.cooperative = cooperative
        self.function = getattr(library, 'emu_launch_' + name if cooperative else name)
        self.function.restype = None

    def _arguments(self, args):
        out = []
        for a in args:
            if isinstance(a, np.number):
                out.append(_CTYPES[a.dtype](a.item()))
            elif hasattr(a, '__cuda_array_interface__'):
                out.append(ctypes.c_void_p(a.__cuda_array_interface__['data'][0]))
            else:
                raise TypeError('%s: the emulator cannot pass %r' % (self.name, a))
        return out

    def __call__(self, *args, block=(1, 1, 1), grid=(1, 1), shared=0, stream=None):
        cargs = self._arguments(args)
        if not self.cooperative:
            self.library.emu_single_thread()
            self.function(*cargs)
            return
        threads = block[0] * (block[1] if len(block) > 1 else 1)
        self.function(*cargs, ctypes.c_uint(grid[0]),
                      ctypes.c_uint(grid[1] if len(grid) > 1 else 1), ctypes.c_uint(threads),
                      ctypes.c_size_t(shared))


class FakeModule:
    def __init__(self, blob):
        path, source = blob
        self.library = ctypes.CDLL(path)
        self.cooperative = {name for name, _, body in _kernels(source)
                            if '__syncthreads' in body}
        self.library.emu_single_thread.argtypes = []

    def get_function(self, name):
        return FakeFunction(self.library, name, name in self.cooperative)


def fake_compile(source, nvcc='nvcc', options=None, keep=False, no_extern_c=False, arch=None,
                 code=None, cache_dir=None, include_dirs=None, target='cubin'):
    assert no_extern_c, 'the project\'s kernels declare extern "C" themselves'
    assert arch and arch.startswith('sm_'), arch
    return (build(source, include_dirs or []), source)


def _memset_d32(dest, data, size):
    if data == 0:
        ctypes.memset(int(dest), 0, int(size) * 4)
    else:
        _view(int(dest), (int(size),), np.uint32)[...] = data


def _memcpy_dtod(dest, src, size):
    ctypes.memmove(int(dest), int(src), int(size))


def fake_pycuda_modules():
    """The fake pycuda package and its submodules, keyed as sys.modules keys them."""
    pycuda = types.ModuleType('pycuda')
    driver = types.ModuleType('pycuda.driver')
    driver.init = lambda flags=0: None
    driver.Device = FakeDevice
    driver.Context = FakeContext
    driver.memset_d32 = _memset_d32
    driver.memcpy_dtod = _memcpy_dtod
    driver.module_from_buffer = FakeModule
    driver.mem_alloc = FakeAllocation
    driver.Stream = FakeStream
    driver.Event = FakeEvent
    driver.stream_flags = types.SimpleNamespace(DEFAULT=0, NON_BLOCKING=1)
    gpuarray = types.ModuleType('pycuda.gpuarray')
    gpuarray.GPUArray = GPUArray

    def to_gpu(ary, allocator=None):
        a = GPUArray(ary.shape, ary.dtype, allocator)
        a.set(ary)
        return a
    gpuarray.to_gpu = to_gpu
    tools = types.ModuleType('pycuda.tools')
    tools.DeviceMemoryPool = FakeMemoryPool
    tools.clear_context_caches = lambda: None
    compiler_module = types.ModuleType('pycuda.compiler')
    compiler_module.compile = fake_compile
    pycuda.driver, pycuda.gpuarray, pycuda.tools, pycuda.compiler = \
        driver, gpuarray, tools, compiler_module
    return {'pycuda': pycuda, 'pycuda.driver': driver, 'pycuda.gpuarray': gpuarray,
            'pycuda.tools': tools, 'pycuda.compiler': compiler_module}


# Fake cuBLAS ------------------------------------------------------------------------------------

def _value(x):
    """The value behind a ctypes byref / c_void_p / int argument."""
    if hasattr(x, '_obj'):
        return x._obj.value
    if isinstance(x, ctypes.c_void_p):
        return x.value or 0
    return x


def _column_major(address, rows, cols, ld):
    assert ld >= max(1, rows), 'leading dimension %d < rows %d' % (ld, rows)
    return _view(address, (cols, ld), np.float32).T[:rows, :]


class FakeCublas:
    """cublasSgemm_v2 from the BLAS definition: C = alpha op(A) op(B) + beta C, column-major."""

    def __init__(self):
        self.calls = []
        self.math_mode = None

    def cublasCreate_v2(self, handle):
        handle._obj.value = 0xB1A5
        return 0

    def cublasDestroy_v2(self, handle):
        return 0

    def cublasSetStream_v2(self, handle, stream):
        assert _value(stream) in (None, 0)
        return 0

    def cublasSetMathMode(self, handle, mode):
        self.math_mode = mode
        return 0

    def cublasSgemm_v2(self, handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C,
                       ldc):
        self.calls.append((transa, transb, m, n, k))
        a_rows, a_cols = (m, k) if transa == 0 else (k, m)
        b_rows, b_cols = (k, n) if transb == 0 else (n, k)
        a = _column_major(_value(A), a_rows, a_cols, lda).astype(np.float64)
        b = _column_major(_value(B), b_rows, b_cols, ldb).astype(np.float64)
        c = _column_major(_value(C), m, n, ldc)
        product = _value(alpha) * ((a if transa == 0 else a.T) @ (b if transb == 0 else b.T))
        beta = _value(beta)
        c[...] = (product if beta == 0 else product + beta * c.astype(np.float64)) \
            .astype(np.float32)
        return 0


# Fake cuDNN -------------------------------------------------------------------------------------

def _conv_out(size, k, pad, stride, dilation):
    return (size + 2 * pad - (dilation * (k - 1) + 1)) // stride + 1


def _patches(xp, kh, kw, oh, ow, stride, dilation):
    """(kh, kw) list of (N, C, oh, ow) strided views of the padded input."""
    (sh, sw), (dh, dw) = stride, dilation
    return [[xp[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
             for j in range(kw)] for i in range(kh)]


class FakeCudnn:
    """The cuDNN 9 legacy convolution calls, computed with numpy from their descriptors."""

    ALGOS = 8

    def __init__(self):
        self.descs = {}
        self.next_id = 1
        self.calls = []

    def cudnnGetVersion(self):
        return 92801

    def cudnnGetErrorString(self, status):
        return b'CUDNN_STATUS_FAKE_%d' % status

    def cudnnCreate(self, handle):
        handle._obj.value = 0xC0DE
        return 0

    def cudnnDestroy(self, handle):
        return 0

    def cudnnSetStream(self, handle, stream):
        assert _value(stream) in (None, 0)
        return 0

    def _create(self, kind, out):
        out._obj.value = self.next_id
        self.descs[self.next_id] = {'kind': kind}
        self.next_id += 1
        return 0

    def _get(self, desc, kind):
        d = self.descs[_value(desc)]
        assert d['kind'] == kind, 'expected a %s descriptor, got a %s one' % (kind, d['kind'])
        return d

    def cudnnCreateTensorDescriptor(self, out):
        return self._create('tensor', out)

    def cudnnCreateFilterDescriptor(self, out):
        return self._create('filter', out)

    def cudnnCreateConvolutionDescriptor(self, out):
        return self._create('conv', out)

    def _destroy(self, desc):
        self.descs.pop(_value(desc), None)
        return 0

    cudnnDestroyTensorDescriptor = cudnnDestroyFilterDescriptor = \
        cudnnDestroyConvolutionDescriptor = _destroy

    def cudnnSetTensor4dDescriptor(self, desc, fmt, dtype, n, c, h, w):
        assert (fmt, dtype) == (0, 0) and min(n, c, h, w) > 0
        self._get(desc, 'tensor')['shape'] = (n, c, h, w)
        return 0

    def cudnnSetFilter4dDescriptor(self, desc, dtype, fmt, k, c, h, w):
        assert (fmt, dtype) == (0, 0) and min(k, c, h, w) > 0
        self._get(desc, 'filter')['shape'] = (k, c, h, w)
        return 0

    def cudnnSetConvolution2dDescriptor(self, desc, ph, pw, sh, sw, dh, dw, mode, compute):
        assert mode == 1 and compute == 0, 'cross-correlation in float expected'
        d = self._get(desc, 'conv')
        d.update(pad=(ph, pw), stride=(sh, sw), dilation=(dh, dw))
        d.setdefault('group', 1)
        d.setdefault('math', 0)
        return 0

    def cudnnSetConvolutionGroupCount(self, desc, group):
        self._get(desc, 'conv')['group'] = group
        return 0

    def cudnnSetConvolutionMathType(self, desc, math):
        self._get(desc, 'conv')['math'] = math
        return 0

    def _geometry(self, x_desc, w_desc, conv_desc, y_desc):
        x = self._get(x_desc, 'tensor')['shape']
        w = self._get(w_desc, 'filter')['shape']
        conv = self._get(conv_desc, 'conv')
        y = self._get(y_desc, 'tensor')['shape']
        g = conv['group']
        assert x[1] == w[1] * g and w[0] % g == 0, 'channels %s vs filter %s, group %d' % (x, w, g)
        expect = (x[0], w[0]) + tuple(_conv_out(s, k, p, st, d) for s, k, p, st, d in zip(
            x[2:], w[2:], conv['pad'], conv['stride'], conv['dilation']))
        assert y == expect, 'output descriptor %s, the convolution gives %s' % (y, expect)
        return x, w, conv, y

    def _perf(self, conv, count, perfs):
        # One fast non-deterministic algorithm that needs workspace, one deterministic, one
        # unsupported: the binding should take the deterministic one under FMA math.
        entries = [(1, 0, 1 << 12, 0), (0, 0, 0, 1), (2, 3000, 0, 1)]
        for i, (algo, status, memory, determinism) in enumerate(entries):
            perfs[i].algo, perfs[i].status, perfs[i].memory = algo, status, memory
            perfs[i].determinism, perfs[i].mathType = determinism, conv['math']
        count._obj.value = len(entries)
        return 0

    def cudnnGetConvolutionForwardAlgorithm_v7(self, h, x, w, conv, y, requested, count, perfs):
        _, _, c, _ = self._geometry(x, w, conv, y)
        return self._perf(c, count, perfs)

    def cudnnGetConvolutionBackwardDataAlgorithm_v7(self, h, w, dy, conv, dx, requested, count,
                                                    perfs):
        _, _, c, _ = self._geometry(dx, w, conv, dy)
        return self._perf(c, count, perfs)

    def cudnnGetConvolutionBackwardFilterAlgorithm_v7(self, h, x, dy, conv, dw, requested, count,
                                                      perfs):
        _, _, c, _ = self._geometry(x, dw, conv, dy)
        return self._perf(c, count, perfs)

    def _workspace(self, algo, size):
        size._obj.value = 1 << 12 if algo == 1 else 0
        return 0

    def cudnnGetConvolutionForwardWorkspaceSize(self, h, x, w, conv, y, algo, size):
        self._geometry(x, w, conv, y)
        return self._workspace(algo, size)

    def cudnnGetConvolutionBackwardDataWorkspaceSize(self, h, w, dy, conv, dx, algo, size):
        self._geometry(dx, w, conv, dy)
        return self._workspace(algo, size)

    def cudnnGetConvolutionBackwardFilterWorkspaceSize(self, h, x, dy, conv, dw, algo, size):
        self._geometry(x, dw, conv, dy)
        return self._workspace(algo, size)

    def _check_run(self, conv, algo, ws, ws_size):
        assert conv['math'] == 3 or conv['math'] == 0
        assert algo in (0, 1)
        if algo == 1:
            assert _value(ws) and ws_size >= 1 << 12, 'workspace missing'

    def cudnnConvolutionForward(self, h, alpha, x_desc, x, w_desc, w, conv_desc, algo, ws,
                                ws_size, beta, y_desc, y):
        xs, wsh, conv, ys = self._geometry(x_desc, w_desc, conv_desc, y_desc)
        self._check_run(conv, algo, ws, ws_size)
        self.calls.append(('forward', conv['math']))
        xa = _view(_value(x), xs, np.float32).astype(np.float64)
        wa = _view(_value(w), wsh, np.float32).astype(np.float64)
        ya = _view(_value(y), ys, np.float32)
        g, (ph, pw) = conv['group'], conv['pad']
        xp = np.pad(xa, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        patches = _patches(xp, wsh[2], wsh[3], ys[2], ys[3], conv['stride'], conv['dilation'])
        out = np.zeros(ys)
        cg, kg = wsh[1], wsh[0] // g
        for gi in range(g):
            for i in range(wsh[2]):
                for j in range(wsh[3]):
                    out[:, gi * kg:(gi + 1) * kg] += np.einsum(
                        'nchw,kc->nkhw', patches[i][j][:, gi * cg:(gi + 1) * cg],
                        wa[gi * kg:(gi + 1) * kg, :, i, j])
        self._blend(ya, out, alpha, beta)
        return 0

    @staticmethod
    def _blend(target, value, alpha, beta):
        beta = _value(beta)
        value = _value(alpha) * value
        target[...] = (value if beta == 0 else value + beta * target.astype(np.float64)) \
            .astype(np.float32)

    def cudnnConvolutionBackwardData(self, h, alpha, w_desc, w, dy_desc, dy, conv_desc, algo, ws,
                                     ws_size, beta, dx_desc, dx):
        xs, wsh, conv, ys = self._geometry(dx_desc, w_desc, conv_desc, dy_desc)
        self._check_run(conv, algo, ws, ws_size)
        wa = _view(_value(w), wsh, np.float32).astype(np.float64)
        dya = _view(_value(dy), ys, np.float32).astype(np.float64)
        g, (ph, pw) = conv['group'], conv['pad']
        grad = np.zeros((xs[0], xs[1], xs[2] + 2 * ph, xs[3] + 2 * pw))
        patches = _patches(grad, wsh[2], wsh[3], ys[2], ys[3], conv['stride'], conv['dilation'])
        cg, kg = wsh[1], wsh[0] // g
        for gi in range(g):
            for i in range(wsh[2]):
                for j in range(wsh[3]):
                    patches[i][j][:, gi * cg:(gi + 1) * cg] += np.einsum(
                        'nkhw,kc->nchw', dya[:, gi * kg:(gi + 1) * kg],
                        wa[gi * kg:(gi + 1) * kg, :, i, j])
        self._blend(_view(_value(dx), xs, np.float32), grad[:, :, ph:ph + xs[2], pw:pw + xs[3]],
                    alpha, beta)
        return 0

    def cudnnConvolutionBackwardFilter(self, h, alpha, x_desc, x, dy_desc, dy, conv_desc, algo,
                                       ws, ws_size, beta, dw_desc, dw):
        xs, wsh, conv, ys = self._geometry(x_desc, dw_desc, conv_desc, dy_desc)
        self._check_run(conv, algo, ws, ws_size)
        xa = _view(_value(x), xs, np.float32).astype(np.float64)
        dya = _view(_value(dy), ys, np.float32).astype(np.float64)
        g, (ph, pw) = conv['group'], conv['pad']
        xp = np.pad(xa, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        patches = _patches(xp, wsh[2], wsh[3], ys[2], ys[3], conv['stride'], conv['dilation'])
        grad = np.zeros(wsh)
        cg, kg = wsh[1], wsh[0] // g
        for gi in range(g):
            for i in range(wsh[2]):
                for j in range(wsh[3]):
                    grad[gi * kg:(gi + 1) * kg, :, i, j] = np.einsum(
                        'nkhw,nchw->kc', dya[:, gi * kg:(gi + 1) * kg],
                        patches[i][j][:, gi * cg:(gi + 1) * cg])
        self._blend(_view(_value(dw), wsh, np.float32), grad, alpha, beta)
        return 0

    def cudnnConvolutionBackwardBias(self, h, alpha, dy_desc, dy, beta, db_desc, db):
        ys = self._get(dy_desc, 'tensor')['shape']
        bs = self._get(db_desc, 'tensor')['shape']
        assert bs == (1, ys[1], 1, 1)
        dya = _view(_value(dy), ys, np.float32).astype(np.float64)
        self._blend(_view(_value(db), bs, np.float32), dya.sum(axis=(0, 2, 3)).reshape(bs),
                    alpha, beta)
        return 0

    def cudnnAddTensor(self, h, alpha, a_desc, a, beta, c_desc, c):
        as_ = self._get(a_desc, 'tensor')['shape']
        cs = self._get(c_desc, 'tensor')['shape']
        assert as_ == (1, cs[1], 1, 1)
        aa = _view(_value(a), as_, np.float32).astype(np.float64)
        # cuDNN adds in float32: C = alpha * A + beta * C with alpha = beta = 1 is C + A.
        ca = _view(_value(c), cs, np.float32)
        assert _value(alpha) == 1 and _value(beta) == 1
        ca[...] = ca + aa.astype(np.float32)
        return 0


class _FakeLibrary:
    """Attribute access gives the fake's methods as plain functions (so ctypes-style attributes
    such as argtypes can be set on them)."""

    def __init__(self, impl):
        self._impl = impl

    def __getattr__(self, name):
        method = getattr(self._impl, name)

        def call(*args):
            return method(*args)
        call.__name__ = name
        setattr(self, name, call)
        return call


# Installing it -----------------------------------------------------------------------------------

@contextlib.contextmanager
def emulated_gpu():
    """Within the block, caffe's GPU backend runs on the emulator (and caffe is in GPU mode).
    Everything it replaced is restored afterwards, so real GPU tests can run in the same
    process."""
    import caffe
    import caffe.gpu as gpu
    from caffe.gpu import cublas, cudnn

    saved_modules = {k: v for k, v in sys.modules.items()
                     if k == 'pycuda' or k.startswith('pycuda.')}
    saved_state = gpu._state
    saved = [(m, name, dict(getattr(m, name))) for m, name in
             ((cublas, '_lib'), (cublas, '_handle'), (cudnn, '_lib'), (cudnn, '_device'),
              (cudnn, '_algorithms'))]
    saved_nvcc = gpu._nvcc
    saved_mode, saved_device = caffe.common._state['mode'], caffe.common._state['device']
    fake_cublas, fake_cudnn = FakeCublas(), FakeCudnn()
    try:
        for k in saved_modules:
            del sys.modules[k]
        sys.modules.update(fake_pycuda_modules())
        gpu._state = gpu._State()
        for m, name, _ in saved:
            getattr(m, name).clear()
        cublas._lib.update(lib=_FakeLibrary(fake_cublas), path='<emulated cuBLAS>')
        cudnn._lib.update(lib=_FakeLibrary(fake_cudnn), path='<emulated cuDNN>', version=92801)
        _register_signatures(cublas, cudnn)
        gpu._nvcc = lambda: 'nvcc'
        caffe.common._state['device'] = 0
        caffe.set_mode_gpu()
        yield types.SimpleNamespace(cublas=fake_cublas, cudnn=fake_cudnn)
    finally:
        caffe.common._state['mode'], caffe.common._state['device'] = saved_mode, saved_device
        try:
            gpu._release()
        finally:
            gpu._state = saved_state
            gpu._nvcc = saved_nvcc
            for m, name, contents in saved:
                getattr(m, name).clear()
                getattr(m, name).update(contents)
            for k in [k for k in sys.modules if k == 'pycuda' or k.startswith('pycuda.')]:
                del sys.modules[k]
            sys.modules.update(saved_modules)


def _register_signatures(cublas, cudnn):
    # The bindings declare argument types when they load a real library; the fakes take the
    # Python values as they are, so only the declared names must exist.
    for module in (cublas, cudnn):
        lib = module._lib['lib']
        for name in module._SIGNATURES:
            getattr(lib, name)
