// MVN on rows (lib/caffe/layers/mvn.py): one block of MVN_THREADS per row, row sums in double
// (a tree in shared memory), the element-wise steps the CPU kernels' (mvn_kernels.pyx) float32
// operations. Input and output may be the same array (in place).
#include "common.cuh"

#define MVN_THREADS 256  // a power of two; mvn.py launches this many

__device__ void mvn_block_sum(double* partial) {
  for (int stride = MVN_THREADS / 2; stride > 0; stride >>= 1) {
    if ((int)threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
}

// y = x - mean; with normalize_variance y /= (sqrt(var) + eps) (Caffe's eps placement);
// scale[row] = sqrt(var) + eps, or 1.
extern "C" __global__ void mvn_forward(int dim, const float* x, float eps,
                                       int normalize_variance, float* y, float* scale) {
  __shared__ double partial[MVN_THREADS];
  const float* xr = x + (long long)blockIdx.x * dim;
  float* yr = y + (long long)blockIdx.x * dim;
  double total = 0;
  for (int j = threadIdx.x; j < dim; j += MVN_THREADS) total += xr[j];
  partial[threadIdx.x] = total;
  __syncthreads();
  mvn_block_sum(partial);
  float mean = (float)(partial[0] / (double)dim);
  __syncthreads();
  float s = 1.f;
  if (normalize_variance) {
    total = 0;
    for (int j = threadIdx.x; j < dim; j += MVN_THREADS) {
      float d = xr[j] - mean;
      total += (double)(d * d);
    }
    partial[threadIdx.x] = total;
    __syncthreads();
    mvn_block_sum(partial);
    s = sqrtf((float)(partial[0] / (double)dim)) + eps;
    __syncthreads();
  }
  for (int j = threadIdx.x; j < dim; j += MVN_THREADS) {
    float d = xr[j] - mean;
    yr[j] = normalize_variance ? d / s : d;
  }
  if (threadIdx.x == 0) scale[blockIdx.x] = s;
}

// Caffe's gradient: (dy - (y * sum(y dy) + sum(dy)) / dim) / scale with normalize_variance,
// else dy - mean(dy).
extern "C" __global__ void mvn_backward(int dim, const float* y, const float* dy,
                                        const float* scale, int normalize_variance, float* dx) {
  __shared__ double partial[MVN_THREADS];
  __shared__ double partial_dy[MVN_THREADS];
  long long base = (long long)blockIdx.x * dim;
  double ydy = 0, sdy = 0;
  for (int j = threadIdx.x; j < dim; j += MVN_THREADS) {
    ydy += (double)(y[base + j] * dy[base + j]);
    sdy += dy[base + j];
  }
  partial[threadIdx.x] = ydy;
  partial_dy[threadIdx.x] = sdy;
  __syncthreads();
  for (int stride = MVN_THREADS / 2; stride > 0; stride >>= 1) {
    if ((int)threadIdx.x < stride) {
      partial[threadIdx.x] += partial[threadIdx.x + stride];
      partial_dy[threadIdx.x] += partial_dy[threadIdx.x + stride];
    }
    __syncthreads();
  }
  float a = (float)partial[0], b = (float)partial_dy[0];
  float mean = (float)(partial_dy[0] / (double)dim);
  float minus_inv_dim = (float)(-1.0 / (double)dim);
  float s = scale[blockIdx.x];
  for (int j = threadIdx.x; j < dim; j += MVN_THREADS) {
    if (normalize_variance) {
      float t = y[base + j] * a + b;
      t = minus_inv_dim * t;
      dx[base + j] = (dy[base + j] + t) / s;
    } else {
      dx[base + j] = dy[base + j] - mean;
    }
  }
}
