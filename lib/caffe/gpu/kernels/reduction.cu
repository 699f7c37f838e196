// Reduction (lib/caffe/layers/reduction.py): one block of REDUCTION_THREADS per output, the
// row's sum in double (a tree in shared memory), then times coeff (unless it is 1) in float32;
// the gradient element-wise as the CPU computes it. op: 1 SUM, 2 ASUM, 3 SUMSQ, 4 MEAN.
#include "common.cuh"

#define REDUCTION_THREADS 256  // a power of two; reduction.py launches this many

extern "C" __global__ void reduction_forward(int dim, const float* x, int op, float coeff,
                                             float* out) {
  __shared__ double partial[REDUCTION_THREADS];
  const float* row = x + (long long)blockIdx.x * dim;
  double total = 0;
  for (int j = threadIdx.x; j < dim; j += REDUCTION_THREADS) {
    float v = row[j];
    if (op == 2) v = fabsf(v);
    else if (op == 3) v = v * v;
    total += v;
  }
  partial[threadIdx.x] = total;
  __syncthreads();
  for (int stride = REDUCTION_THREADS / 2; stride > 0; stride >>= 1) {
    if ((int)threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    float value = (float)partial[0];
    if (coeff != 1.f) value = value * coeff;
    out[blockIdx.x] = value;
  }
}

// dx = f (SUM, MEAN), sign(x) * f (ASUM), x * (2 f) (SUMSQ), f = dy[row] * coeff.
extern "C" __global__ void reduction_backward(int n, int dim, int op, float coeff,
                                              const float* x, const float* dy, float* dx) {
  FOR_EACH_INDEX(i, n) {
    float f = dy[i / dim] * coeff;
    float v = x[i];
    if (op == 2) {
      float sign = v > 0.f ? 1.f : (v < 0.f ? -1.f : 0.f);
      dx[i] = sign * f;
    } else if (op == 3) {
      dx[i] = v * (2.f * f);
    } else {
      dx[i] = f;
    }
  }
}
