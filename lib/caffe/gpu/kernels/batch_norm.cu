// BatchNorm on a blob seen as (num, channels, spatial): the float32 steps of the CPU kernels
// (lib/caffe/layers/batch_norm_kernels.pyx). Per-channel sums run one block per channel and
// accumulate in double, like the CPU's; element-wise kernels may write over their input (in place).
#include "common.cuh"

#define BN_THREADS 256  // threads per block of the per-channel reductions (a power of two)

__device__ __forceinline__ long long bn_offset(long long i, int channels, int spatial, int c) {
  long long n = i / spatial;
  return (n * channels + c) * spatial + (i - n * spatial);
}

// Sums partial[0..BN_THREADS) into partial[0], once every thread has written its entry and
// synchronized; every thread of the block must call it.
__device__ void bn_block_sum(double* partial) {
  for (int stride = BN_THREADS / 2; stride > 0; stride >>= 1) {
    if ((int)threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
}

// Global statistics: mean = blobs[0] * f, std = sqrt(blobs[1] * f + eps), f = 1 / blobs[2]
// (0 when blobs[2] is 0), as Caffe scales the stored sums.
extern "C" __global__ void batch_norm_global_stats(int channels, const float* mean_sum,
                                                   const float* var_sum, const float* weight,
                                                   float eps, float* mean, float* std) {
  float factor = weight[0] == 0.f ? 0.f : 1.f / weight[0];
  FOR_EACH_INDEX(c, channels) {
    mean[c] = factor * mean_sum[c];
    float v = factor * var_sum[c];
    v = v + eps;
    std[c] = sqrtf(v);
  }
}

// Batch statistics, one block of BN_THREADS per channel: mean, biased variance (the mean of
// float32 (x - mean)^2) and std = sqrt(var + eps).
extern "C" __global__ void batch_norm_batch_stats(int num, int channels, int spatial,
                                                  const float* x, float eps, float* mean,
                                                  float* var, float* std) {
  __shared__ double partial[BN_THREADS];
  int c = blockIdx.x;
  long long m = (long long)num * spatial;
  double total = 0;
  for (long long i = threadIdx.x; i < m; i += BN_THREADS) {
    total += x[bn_offset(i, channels, spatial, c)];
  }
  partial[threadIdx.x] = total;
  __syncthreads();
  bn_block_sum(partial);
  float mu = (float)(partial[0] / (double)m);
  __syncthreads();  // all threads have read partial[0] before it is reused
  total = 0;
  for (long long i = threadIdx.x; i < m; i += BN_THREADS) {
    float d = x[bn_offset(i, channels, spatial, c)] - mu;
    total += (double)(d * d);
  }
  partial[threadIdx.x] = total;
  __syncthreads();
  bn_block_sum(partial);
  if (threadIdx.x == 0) {
    float v = (float)(partial[0] / (double)m);
    mean[c] = mu;
    var[c] = v;
    v = v + eps;
    std[c] = sqrtf(v);
  }
}

// Caffe's moving averages: weight = weight * f + 1; mean_sum = mean_sum * f + mean;
// var_sum = var_sum * f + correction * var (correction m / (m - 1): the unbiased variance).
extern "C" __global__ void batch_norm_moving_average(int channels, const float* mean,
                                                     const float* var, float fraction,
                                                     float correction, float* mean_sum,
                                                     float* var_sum, float* weight) {
  FOR_EACH_INDEX(c, channels) {
    float s = mean_sum[c] * fraction;
    mean_sum[c] = s + mean[c];
    s = var_sum[c] * fraction;
    var_sum[c] = s + correction * var[c];
    if (c == 0) {
      float w = weight[0] * fraction;
      weight[0] = w + 1.f;
    }
  }
}

// y = (x - mean[c]) / std[c]; kept (may be null) receives a copy of y.
extern "C" __global__ void batch_norm_normalize(int n, int channels, int spatial, const float* x,
                                                const float* mean, const float* std, float* y,
                                                float* kept) {
  FOR_EACH_INDEX(i, n) {
    int c = (i / spatial) % channels;
    float v = x[i] - mean[c];
    v = v / std[c];
    y[i] = v;
    if (kept) kept[i] = v;
  }
}

// Backward with global statistics: dx = dy / std[c].
extern "C" __global__ void batch_norm_backward_global(int n, int channels, int spatial,
                                                      const float* dy, const float* std,
                                                      float* dx) {
  FOR_EACH_INDEX(i, n) { dx[i] = dy[i] / std[(i / spatial) % channels]; }
}

// Backward through batch statistics, per channel: sum_dy_y = sum(dy * y), sum_dy = sum(dy).
extern "C" __global__ void batch_norm_backward_sums(int num, int channels, int spatial,
                                                    const float* dy, const float* y,
                                                    float* sum_dy_y, float* sum_dy) {
  __shared__ double partial[BN_THREADS];
  __shared__ double partial_dy[BN_THREADS];
  int c = blockIdx.x;
  long long m = (long long)num * spatial;
  double a = 0, b = 0;
  for (long long i = threadIdx.x; i < m; i += BN_THREADS) {
    long long o = bn_offset(i, channels, spatial, c);
    a += (double)(dy[o] * y[o]);
    b += dy[o];
  }
  partial[threadIdx.x] = a;
  partial_dy[threadIdx.x] = b;
  __syncthreads();
  bn_block_sum(partial);
  bn_block_sum(partial_dy);
  if (threadIdx.x == 0) {
    sum_dy_y[c] = (float)partial[0];
    sum_dy[c] = (float)partial_dy[0];
  }
}

// dx = (((y * sum_dy_y) + sum_dy) * (-1/m) + dy) / std, each step rounded as on the CPU.
extern "C" __global__ void batch_norm_backward_batch(int n, int channels, int spatial,
                                                     const float* dy, const float* y,
                                                     const float* std, const float* sum_dy_y,
                                                     const float* sum_dy, float neg_inv_m,
                                                     float* dx) {
  FOR_EACH_INDEX(i, n) {
    int c = (i / spatial) % channels;
    float t = y[i] * sum_dy_y[c];
    t = t + sum_dy[c];
    t = t * neg_inv_m;
    t = t + dy[i];
    dx[i] = t / std[c];
  }
}
