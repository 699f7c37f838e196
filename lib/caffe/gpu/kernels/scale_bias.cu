// Scale and Bias on a blob seen as (outer, dim, inner), the scale or bias broadcast over outer
// and inner: the float32 steps of the CPU kernels (lib/caffe/layers/scale_kernels.pyx).
// Element-wise kernels may write over their input (both layers work in place).
#include "common.cuh"

#define SB_THREADS 256  // threads per block of the per-entry sums (a power of two)

// y = x * s[j] + b[j] (product rounded before the sum); s or b may be null (skipped).
extern "C" __global__ void scale_bias_forward(int n, int dim, int inner, const float* x,
                                              const float* s, const float* b, float* y) {
  FOR_EACH_INDEX(i, n) {
    int j = (i / inner) % dim;
    float v = x[i];
    if (s) v = v * s[j];
    if (b) v = v + b[j];
    y[i] = v;
  }
}

// One block of SB_THREADS per entry j: the sum over outer and inner of dy (x null) or of the
// float32 products dy * x, accumulated in double; out[j] += sum when accumulate (a parameter's
// gradient), else out[j] = sum (a bottom's).
extern "C" __global__ void scale_bias_sum(int dim, int outer, int inner, const float* dy,
                                          const float* x, int accumulate, float* out) {
  __shared__ double partial[SB_THREADS];
  int j = blockIdx.x;
  long long m = (long long)outer * inner;
  double total = 0;
  for (long long i = threadIdx.x; i < m; i += SB_THREADS) {
    long long o = i / inner;
    long long k = (o * dim + j) * inner + (i - o * inner);
    if (x) {
      float prod = dy[k] * x[k];
      total += prod;
    } else {
      total += dy[k];
    }
  }
  partial[threadIdx.x] = total;
  __syncthreads();
  for (int stride = SB_THREADS / 2; stride > 0; stride >>= 1) {
    if ((int)threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    float sum = (float)partial[0];
    out[j] = accumulate ? out[j] + sum : sum;
  }
}
