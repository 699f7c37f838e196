"""A small ctypes binding of cuDNN 9's legacy convolution API, enough for Caffe's convolution layer.

The legacy API maps one to one onto what Caffe's cuDNN layer does (tensor, filter and convolution
descriptors; forward, backward data, backward filter, bias). cuDNN 9 marks these functions
deprecated in favour of its graph API but still exports them from libcudnn.so.9; a graph-API
version would replace the class Convolution below and keep its methods.

Precision: the convolution descriptor's math type is CUDNN_FMA_MATH, so float32 convolutions run
in float32 (Ampere and newer would otherwise pick TF32 tensor-core kernels for float32 under the
default math type). caffe.gpu.set_allow_tf32(True) / CAFFE_ALLOW_TF32=1 use CUDNN_DEFAULT_MATH
instead, which lets cuDNN choose TF32.

Algorithms come from cuDNN's heuristics (cudnnGet*Algorithm_v7), the first that succeeds within
WORKSPACE_LIMIT bytes, preferring deterministic ones so that a run repeats bit for bit; the choice
is cached per geometry. One workspace per device serves every layer (work is serialized on one
stream).

Signatures (cudnn_graph.h, cudnn_ops.h, cudnn_cnn.h of cuDNN 9; every enum is a C int and every
handle or descriptor an opaque pointer):
  size_t cudnnGetVersion(void)
  const char *cudnnGetErrorString(cudnnStatus_t)
  cudnnStatus_t cudnnCreate(cudnnHandle_t *), cudnnDestroy(cudnnHandle_t)
  cudnnStatus_t cudnnSetStream(cudnnHandle_t, cudaStream_t)
  cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *), cudnnDestroy...(desc)
  cudnnStatus_t cudnnSetTensor4dDescriptor(desc, cudnnTensorFormat_t, cudnnDataType_t,
      int n, int c, int h, int w)
  cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *), cudnnDestroy...(desc)
  cudnnStatus_t cudnnSetFilter4dDescriptor(desc, cudnnDataType_t, cudnnTensorFormat_t,
      int k, int c, int h, int w)
  cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *), cudnnDestroy..
  cudnnStatus_t cudnnSetConvolution2dDescriptor(desc, int pad_h, int pad_w, int u, int v,
      int dilation_h, int dilation_w, cudnnConvolutionMode_t, cudnnDataType_t computeType)
  cudnnStatus_t cudnnSetConvolutionGroupCount(desc, int)
  cudnnStatus_t cudnnSetConvolutionMathType(desc, cudnnMathType_t)
  cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(handle, xDesc, wDesc, convDesc, yDesc,
      int requested, int *returned, cudnnConvolutionFwdAlgoPerf_t *)
  cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(handle, wDesc, dyDesc, convDesc,
      dxDesc, int requested, int *returned, cudnnConvolutionBwdDataAlgoPerf_t *)
  cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle, xDesc, dyDesc, convDesc,
      dwDesc, int requested, int *returned, cudnnConvolutionBwdFilterAlgoPerf_t *)
  cudnnStatus_t cudnnGetConvolution{Forward,BackwardData,BackwardFilter}WorkspaceSize(handle,
      (the same four descriptors as the _v7 call), algo, size_t *)
  cudnnStatus_t cudnnConvolutionForward(handle, const void *alpha, xDesc, const void *x, wDesc,
      const void *w, convDesc, algo, void *workSpace, size_t, const void *beta, yDesc, void *y)
  cudnnStatus_t cudnnConvolutionBackwardData(handle, alpha, wDesc, w, dyDesc, dy, convDesc, algo,
      workSpace, size_t, beta, dxDesc, dx)
  cudnnStatus_t cudnnConvolutionBackwardFilter(handle, alpha, xDesc, x, dyDesc, dy, convDesc,
      algo, workSpace, size_t, beta, dwDesc, dw)
  cudnnStatus_t cudnnConvolutionBackwardBias(handle, alpha, dyDesc, dy, beta, dbDesc, db)
  cudnnStatus_t cudnnAddTensor(handle, alpha, aDesc, A, beta, cDesc, C)
"""
import ctypes

from .. import gpu
from ..common import CaffeError
from . import libraries

CUDNN_DATA_FLOAT = 0
CUDNN_TENSOR_NCHW = 0
CUDNN_CROSS_CORRELATION = 1      # Caffe's convolution does not flip the kernel
CUDNN_DEFAULT_MATH = 0
CUDNN_FMA_MATH = 3
CUDNN_DETERMINISTIC = 1
WORKSPACE_LIMIT = 1 << 30        # bytes an algorithm may ask for
MAX_ALGOS = 16                   # more than cuDNN 9 has of any kind (8, 6 and 7)

_p, _i, _sz = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t


class AlgoPerf(ctypes.Structure):
    """cudnnConvolution{Fwd,BwdData,BwdFilter}AlgoPerf_t: the three share this layout."""
    _fields_ = [('algo', _i), ('status', _i), ('time', ctypes.c_float), ('memory', _sz),
                ('determinism', _i), ('mathType', _i), ('reserved', _i * 3)]


_PP = ctypes.POINTER(_p)
_IP = ctypes.POINTER(_i)
_PERF = ctypes.POINTER(AlgoPerf)
_SZP = ctypes.POINTER(_sz)

_SIGNATURES = {
    'cudnnCreate': [_PP],
    'cudnnDestroy': [_p],
    'cudnnSetStream': [_p, _p],
    'cudnnCreateTensorDescriptor': [_PP],
    'cudnnDestroyTensorDescriptor': [_p],
    'cudnnSetTensor4dDescriptor': [_p, _i, _i, _i, _i, _i, _i],
    'cudnnCreateFilterDescriptor': [_PP],
    'cudnnDestroyFilterDescriptor': [_p],
    'cudnnSetFilter4dDescriptor': [_p, _i, _i, _i, _i, _i, _i],
    'cudnnCreateConvolutionDescriptor': [_PP],
    'cudnnDestroyConvolutionDescriptor': [_p],
    'cudnnSetConvolution2dDescriptor': [_p, _i, _i, _i, _i, _i, _i, _i, _i],
    'cudnnSetConvolutionGroupCount': [_p, _i],
    'cudnnSetConvolutionMathType': [_p, _i],
    'cudnnGetConvolutionForwardAlgorithm_v7': [_p, _p, _p, _p, _p, _i, _IP, _PERF],
    'cudnnGetConvolutionBackwardDataAlgorithm_v7': [_p, _p, _p, _p, _p, _i, _IP, _PERF],
    'cudnnGetConvolutionBackwardFilterAlgorithm_v7': [_p, _p, _p, _p, _p, _i, _IP, _PERF],
    'cudnnGetConvolutionForwardWorkspaceSize': [_p, _p, _p, _p, _p, _i, _SZP],
    'cudnnGetConvolutionBackwardDataWorkspaceSize': [_p, _p, _p, _p, _p, _i, _SZP],
    'cudnnGetConvolutionBackwardFilterWorkspaceSize': [_p, _p, _p, _p, _p, _i, _SZP],
    'cudnnConvolutionForward': [_p, _p, _p, _p, _p, _p, _p, _i, _p, _sz, _p, _p, _p],
    'cudnnConvolutionBackwardData': [_p, _p, _p, _p, _p, _p, _p, _i, _p, _sz, _p, _p, _p],
    'cudnnConvolutionBackwardFilter': [_p, _p, _p, _p, _p, _p, _p, _i, _p, _sz, _p, _p, _p],
    'cudnnConvolutionBackwardBias': [_p, _p, _p, _p, _p, _p, _p],
    'cudnnAddTensor': [_p, _p, _p, _p, _p, _p, _p],
}

_lib = {}
_device = {}          # 'state': this context's handle and workspace
_algorithms = {}      # geometry -> (fwd, bwd data, bwd filter) (algo, math type) pairs


def library():
    """The loaded cuDNN (libraries.CUDNN), with argument and result types declared."""
    if 'lib' not in _lib:
        lib, path = libraries.load(libraries.CUDNN)
        for name, argtypes in _SIGNATURES.items():
            f = getattr(lib, name)
            f.argtypes = argtypes
            f.restype = _i
        lib.cudnnGetErrorString.argtypes = [_i]
        lib.cudnnGetErrorString.restype = ctypes.c_char_p
        lib.cudnnGetVersion.argtypes = []
        lib.cudnnGetVersion.restype = _sz
        version = lib.cudnnGetVersion()
        if version // 10000 != 9:
            raise CaffeError('%s is cuDNN %d.%d; this binding needs cuDNN 9 (%s)'
                             % (path, version // 10000, version // 100 % 100,
                                libraries.CUDNN.install))
        _lib['lib'], _lib['path'], _lib['version'] = lib, path, version
    return _lib['lib']


def version():
    library()
    return _lib['version']


def _call(name, *args):
    lib = library()
    status = getattr(lib, name)(*args)
    if status != 0:
        message = lib.cudnnGetErrorString(status)
        raise CaffeError('cuDNN %s failed: %s (%d)'
                         % (name, message.decode() if message else 'unknown status', status))


def _state():
    """This context's cuDNN handle (on the default stream) and its shared workspace."""
    state = _device.get('state')
    if state is None or state['generation'] != gpu.generation():
        h = _p()
        _call('cudnnCreate', ctypes.byref(h))
        _call('cudnnSetStream', h, None)
        state = _device['state'] = {'handle': h, 'generation': gpu.generation(),
                                    'workspace': gpu.Workspace()}
        _algorithms.clear()

        def destroy(state=state):
            state['workspace'] = None
            library().cudnnDestroy(state['handle'])
            _device.pop('state', None)
        gpu.on_release(destroy)
    return state


class _Descriptor:
    """An owned cuDNN descriptor, destroyed with this object."""

    def __init__(self, kind):
        self.kind = kind
        self.value = _p()
        _call('cudnnCreate%sDescriptor' % kind, ctypes.byref(self.value))
        self._lib = library()

    def __del__(self):
        if self.value:
            try:
                getattr(self._lib, 'cudnnDestroy%sDescriptor' % self.kind)(self.value)
            except Exception:  # interpreter shutdown: the library may already be unloaded
                pass
            self.value = _p()


def _tensor4d(desc, shape):
    _call('cudnnSetTensor4dDescriptor', desc.value, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
          *[int(d) for d in shape])


_ONE, _ZERO = ctypes.c_float(1.0), ctypes.c_float(0.0)


def _scalar(value):
    return ctypes.byref(_ONE if value == 1 else _ZERO if value == 0 else ctypes.c_float(value))


def _pick(kind, perfs, count, allow_tf32):
    """The first (fastest by cuDNN's estimate) usable algorithm, deterministic if one is, and
    the math type to run it with."""
    # Without TF32 only algorithms that do not need tensor cores qualify (reported as FMA or
    # default math), and they run under CUDNN_FMA_MATH.
    usable = [perfs[i] for i in range(count)
              if perfs[i].status == 0 and perfs[i].memory <= WORKSPACE_LIMIT and
              (allow_tf32 or perfs[i].mathType in (CUDNN_FMA_MATH, CUDNN_DEFAULT_MATH))]
    if not usable:
        raise CaffeError('cuDNN offers no %s convolution algorithm for this geometry within %d '
                         'bytes of workspace%s' % (kind, WORKSPACE_LIMIT,
                                                   '' if allow_tf32 else ' in float32 (FMA) math'))
    deterministic = [p for p in usable if p.determinism == CUDNN_DETERMINISTIC]
    best = (deterministic or usable)[0]
    return best.algo, best.mathType if allow_tf32 else CUDNN_FMA_MATH


class Convolution:
    """Caffe's 2-D convolution (cross-correlation) on cuDNN for one layer: weights
    (num_output, channels/group, kh, kw), NCHW float32 tensors. reshape() sets the input and
    output shapes (cheap when they did not change); then forward / add_bias / backward_data /
    backward_filter / backward_bias, whose arguments are contiguous float32 device arrays."""

    def __init__(self, num_output, channels, kernel, pad, stride, dilation, group):
        self.geometry = (int(num_output), int(channels), tuple(kernel), tuple(pad), tuple(stride),
                         tuple(dilation), int(group))
        self.x_desc, self.y_desc = _Descriptor('Tensor'), _Descriptor('Tensor')
        self.bias_desc = _Descriptor('Tensor')
        self.w_desc = _Descriptor('Filter')
        self.conv_desc = _Descriptor('Convolution')
        _call('cudnnSetFilter4dDescriptor', self.w_desc.value, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW,
              int(num_output), int(channels) // int(group), *[int(k) for k in kernel])
        _call('cudnnSetConvolution2dDescriptor', self.conv_desc.value, int(pad[0]), int(pad[1]),
              int(stride[0]), int(stride[1]), int(dilation[0]), int(dilation[1]),
              CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT)
        _call('cudnnSetConvolutionGroupCount', self.conv_desc.value, int(group))
        _tensor4d(self.bias_desc, (1, int(num_output), 1, 1))
        self.shapes = None
        self.generation = None
        self.math = None

    def reshape(self, x_shape, y_shape):
        x_shape, y_shape = tuple(int(d) for d in x_shape), tuple(int(d) for d in y_shape)
        allow = gpu.allow_tf32()
        if self.shapes == (x_shape, y_shape, allow) and \
                self.generation == gpu.generation():
            return
        _tensor4d(self.x_desc, x_shape)
        _tensor4d(self.y_desc, y_shape)
        key = (self.geometry, x_shape, allow)
        if key not in _algorithms:
            _algorithms[key] = self._choose(allow)
        (self.fwd, self.fwd_math), (self.bwd_data, self.bwd_data_math), \
            (self.bwd_filter, self.bwd_filter_math) = _algorithms[key]
        handle = _state()['handle']
        sizes = []
        for name, algo, math, descs in (
                ('Forward', self.fwd, self.fwd_math,
                 (self.x_desc, self.w_desc, self.conv_desc, self.y_desc)),
                ('BackwardData', self.bwd_data, self.bwd_data_math,
                 (self.w_desc, self.y_desc, self.conv_desc, self.x_desc)),
                ('BackwardFilter', self.bwd_filter, self.bwd_filter_math,
                 (self.x_desc, self.y_desc, self.conv_desc, self.w_desc))):
            self._set_math(math)
            size = _sz()
            _call('cudnnGetConvolution%sWorkspaceSize' % name, handle,
                  *[d.value for d in descs], algo, ctypes.byref(size))
            sizes.append(size.value)
        self.workspace_sizes = sizes
        self.shapes = (x_shape, y_shape, allow)
        self.generation = gpu.generation()

    def _set_math(self, math):
        if self.math != math:
            _call('cudnnSetConvolutionMathType', self.conv_desc.value, math)
            self.math = math

    def _choose(self, allow_tf32):
        # FMA math restricts the heuristics to float32 algorithms; with TF32 allowed, each
        # algorithm reports the math type it must then be run with.
        self._set_math(CUDNN_DEFAULT_MATH if allow_tf32 else CUDNN_FMA_MATH)
        handle = _state()['handle']
        chosen = []
        for kind, name, descs in (
                ('forward', 'cudnnGetConvolutionForwardAlgorithm_v7',
                 (self.x_desc, self.w_desc, self.conv_desc, self.y_desc)),
                ('backward-data', 'cudnnGetConvolutionBackwardDataAlgorithm_v7',
                 (self.w_desc, self.y_desc, self.conv_desc, self.x_desc)),
                ('backward-filter', 'cudnnGetConvolutionBackwardFilterAlgorithm_v7',
                 (self.x_desc, self.y_desc, self.conv_desc, self.w_desc))):
            perfs = (AlgoPerf * MAX_ALGOS)()
            count = _i()
            _call(name, handle, *[d.value for d in descs], MAX_ALGOS, ctypes.byref(count), perfs)
            chosen.append(_pick(kind, perfs, count.value, allow_tf32))
        return chosen

    def _workspace(self, i):
        size = self.workspace_sizes[i]
        return (gpu.pointer(_state()['workspace'].get(size)) if size else None), size

    def forward(self, x, w, y, beta=0.0):
        """y = conv(x, w) + beta * y."""
        self._set_math(self.fwd_math)
        ws, size = self._workspace(0)
        _call('cudnnConvolutionForward', _state()['handle'], _scalar(1), self.x_desc.value,
              gpu.pointer(x), self.w_desc.value, gpu.pointer(w), self.conv_desc.value, self.fwd,
              ws, size, _scalar(beta), self.y_desc.value, gpu.pointer(y))

    def add_bias(self, b, y):
        """y[:, k] += b[k]."""
        _call('cudnnAddTensor', _state()['handle'], _scalar(1), self.bias_desc.value,
              gpu.pointer(b), _scalar(1), self.y_desc.value, gpu.pointer(y))

    def backward_data(self, w, dy, dx, beta=0.0):
        """dx = conv^T(dy, w) + beta * dx."""
        self._set_math(self.bwd_data_math)
        ws, size = self._workspace(1)
        _call('cudnnConvolutionBackwardData', _state()['handle'], _scalar(1), self.w_desc.value,
              gpu.pointer(w), self.y_desc.value, gpu.pointer(dy), self.conv_desc.value,
              self.bwd_data, ws, size, _scalar(beta), self.x_desc.value, gpu.pointer(dx))

    def backward_filter(self, x, dy, dw, beta=1.0):
        """dw = (gradient of the weights) + beta * dw: by default it accumulates, as Caffe's
        parameter gradients do."""
        self._set_math(self.bwd_filter_math)
        ws, size = self._workspace(2)
        _call('cudnnConvolutionBackwardFilter', _state()['handle'], _scalar(1), self.x_desc.value,
              gpu.pointer(x), self.y_desc.value, gpu.pointer(dy), self.conv_desc.value,
              self.bwd_filter, ws, size, _scalar(beta), self.w_desc.value, gpu.pointer(dw))

    def backward_bias(self, dy, db, beta=1.0):
        """db[k] = sum of dy[:, k] + beta * db[k] (accumulating by default)."""
        _call('cudnnConvolutionBackwardBias', _state()['handle'], _scalar(1), self.y_desc.value,
              gpu.pointer(dy), _scalar(beta), self.bias_desc.value, gpu.pointer(db))


class Deconvolution(Convolution):
    """Caffe's 2-D deconvolution on cuDNN, as CuDNNDeconvolutionLayer runs it: the convolution
    that maps the deconvolution's top (its input x) to its bottom (its output y), called the
    other way round. Weights (channels, num_output/group, kh, kw); bias over the top's
    num_output channels. Methods as Convolution's, with the deconvolution's arguments."""

    def __init__(self, num_output, channels, kernel, pad, stride, dilation, group):
        super().__init__(channels, num_output, kernel, pad, stride, dilation, group)
        _tensor4d(self.bias_desc, (1, int(num_output), 1, 1))

    def reshape(self, bottom_shape, top_shape):
        super().reshape(top_shape, bottom_shape)

    def forward(self, bottom, w, top, beta=0.0):
        """top = deconv(bottom, w): cuDNN's backward-data of the convolution."""
        super().backward_data(w, bottom, top, beta)

    def add_bias(self, b, top):
        """top[:, k] += b[k]."""
        _call('cudnnAddTensor', _state()['handle'], _scalar(1), self.bias_desc.value,
              gpu.pointer(b), _scalar(1), self.x_desc.value, gpu.pointer(top))

    def backward_data(self, w, top_diff, bottom_diff, beta=0.0):
        """bottom_diff = the convolution of top_diff with w (cuDNN's forward)."""
        super().forward(top_diff, w, bottom_diff, beta)

    def backward_filter(self, bottom, top_diff, dw, beta=1.0):
        """dw += the weight gradient: backward-filter with the top diff as the convolution's
        input and the bottom as its output gradient."""
        super().backward_filter(top_diff, bottom, dw, beta)

    def backward_bias(self, top_diff, db, beta=1.0):
        """db[k] = sum of top_diff[:, k] + beta * db[k]."""
        _call('cudnnConvolutionBackwardBias', _state()['handle'], _scalar(1), self.x_desc.value,
              gpu.pointer(top_diff), _scalar(beta), self.bias_desc.value, gpu.pointer(db))
