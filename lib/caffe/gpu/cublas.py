"""A small ctypes binding of cuBLAS (v2 API): one handle per device and a row-major sgemm.

Signatures are those of cublas_api.h (cuBLAS 12 and 13):
  cublasStatus_t cublasCreate_v2(cublasHandle_t *handle)
  cublasStatus_t cublasDestroy_v2(cublasHandle_t handle)
  cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId)
  cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode)
  cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa,
      cublasOperation_t transb, int m, int n, int k, const float *alpha, const float *A, int lda,
      const float *B, int ldb, const float *beta, float *C, int ldc)
Enums are C ints; alpha and beta are host pointers (the default pointer mode).
"""
import ctypes

from .. import gpu
from ..common import CaffeError
from . import libraries

CUBLAS_OP_N, CUBLAS_OP_T = 0, 1
CUBLAS_DEFAULT_MATH = 0          # float32 products in float32 (no tensor cores)
CUBLAS_TF32_TENSOR_OP_MATH = 3   # float32 products may use TF32 tensor cores

_STATUS = {0: 'CUBLAS_STATUS_SUCCESS', 1: 'CUBLAS_STATUS_NOT_INITIALIZED',
           3: 'CUBLAS_STATUS_ALLOC_FAILED', 7: 'CUBLAS_STATUS_INVALID_VALUE',
           8: 'CUBLAS_STATUS_ARCH_MISMATCH', 11: 'CUBLAS_STATUS_MAPPING_ERROR',
           13: 'CUBLAS_STATUS_EXECUTION_FAILED', 14: 'CUBLAS_STATUS_INTERNAL_ERROR',
           15: 'CUBLAS_STATUS_NOT_SUPPORTED', 16: 'CUBLAS_STATUS_LICENSE_ERROR'}

_c_int, _c_void_p, _c_float_p = ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_float)

_SIGNATURES = {
    'cublasCreate_v2': [ctypes.POINTER(_c_void_p)],
    'cublasDestroy_v2': [_c_void_p],
    'cublasSetStream_v2': [_c_void_p, _c_void_p],
    'cublasSetMathMode': [_c_void_p, _c_int],
    'cublasSgemm_v2': [_c_void_p, _c_int, _c_int, _c_int, _c_int, _c_int, _c_float_p, _c_void_p,
                       _c_int, _c_void_p, _c_int, _c_float_p, _c_void_p, _c_int],
}

_lib = {}
_handle = {}


def library():
    """The loaded cuBLAS (libraries.CUBLAS), with argument types declared."""
    if 'lib' not in _lib:
        lib, path = libraries.load(libraries.CUBLAS)
        for name, argtypes in _SIGNATURES.items():
            f = getattr(lib, name)
            f.argtypes = argtypes
            f.restype = _c_int
        _lib['lib'], _lib['path'] = lib, path
    return _lib['lib']


def _check(status, what):
    if status != 0:
        raise CaffeError('cuBLAS %s failed: %s (%d)' % (what, _STATUS.get(status, 'unknown status'),
                                                        status))


def handle():
    """This device's cuBLAS handle on the default stream, its math mode set by the TF32 switch."""
    lib = library()
    state = _handle.get('state')
    if state is None or state['generation'] != gpu.generation():
        h = _c_void_p()
        _check(lib.cublasCreate_v2(ctypes.byref(h)), 'cublasCreate_v2')
        _check(lib.cublasSetStream_v2(h, None), 'cublasSetStream_v2')
        state = _handle['state'] = {'handle': h, 'generation': gpu.generation(), 'math': None}

        def destroy(state=state):
            lib.cublasDestroy_v2(state['handle'])
            _handle.pop('state', None)
        gpu.on_release(destroy)
    math = CUBLAS_TF32_TENSOR_OP_MATH if gpu.allow_tf32() else CUBLAS_DEFAULT_MATH
    if state['math'] != math:
        _check(lib.cublasSetMathMode(state['handle'], math), 'cublasSetMathMode')
        state['math'] = math
    return state['handle']


def gemm(trans_a, trans_b, M, N, K, alpha, A, B, beta, C):
    """Row-major C (M x N) = alpha * op(A) op(B) + beta * C, op(X) = X^T where trans_X, with A,
    B, C contiguous float32 device arrays: A is (M, K) or, transposed, (K, M); B is (K, N) or
    (N, K).

    cuBLAS is column-major, and a row-major matrix read column-major is its transpose, so this
    asks cuBLAS for C^T = op(B)^T op(A)^T: the operands swap places and keep their flags."""
    M, N, K = int(M), int(N), int(K)
    if M == 0 or N == 0:
        return
    lda = M if trans_a else K
    ldb = K if trans_b else N
    if K == 0:
        # An empty sum: cuBLAS would reject the zero leading dimension; C = beta * C.
        if beta == 0:
            gpu.zero(C)
        elif beta != 1:
            gpu.Kernel('elementwise.cu', 'scale')(M * N, float(beta), C, C)
        return
    for name, x, size in (('A', A, M * K), ('B', B, K * N), ('C', C, M * N)):
        if x.size != size:
            raise ValueError('gemm: %s has %d elements, expected %d' % (name, x.size, size))
    a, b = ctypes.c_float(alpha), ctypes.c_float(beta)
    _check(library().cublasSgemm_v2(
        handle(), CUBLAS_OP_T if trans_b else CUBLAS_OP_N, CUBLAS_OP_T if trans_a else CUBLAS_OP_N,
        N, M, K, ctypes.byref(a), gpu.pointer(B), max(ldb, 1), gpu.pointer(A), max(lda, 1),
        ctypes.byref(b), gpu.pointer(C), max(N, 1)), 'cublasSgemm_v2')
