// Shared by the kernel files of lib/caffe/gpu/kernels (each file compiles on its own).
#pragma once

// Element-wise kernels loop over [0, n) with a stride of the whole grid, so the host may launch
// fewer blocks than n needs (caffe.gpu.Kernel caps the grid).
#define FOR_EACH_INDEX(i, n)                                                        \
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += blockDim.x * gridDim.x)

// Caffe's clipping of an index into [lo, hi].
__device__ __forceinline__ int clip_int(int v, int lo, int hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}
