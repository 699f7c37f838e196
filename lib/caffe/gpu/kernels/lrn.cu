// Local response normalization (see lib/caffe/layers/lrn.py, the CPU reference).
//
// ACROSS_CHANNELS: one thread per (image, pixel) walks the channels with the same sliding window
// sum as the CPU code (add the entering channel's term, subtract the leaving one's), so the
// float32 scale values are the same.
// WITHIN_CHANNEL: the layer chains element-wise kernels from here with AVE pooling (pooling.cu),
// in the order of Caffe's split / square / pool / power / product network.
#include "common.cuh"

// scale[c] = k + alpha/size * (sum of x^2 over the channels within pre_pad of c);
// y = x * scale^-beta. n = num * height * width; x, scale, y are (num, channels, height, width).
extern "C" __global__ void lrn_across_forward(int n, const float* x, int channels, int spatial,
                                              int size, float alpha_over_size, float k,
                                              float neg_beta, float* scale, float* y) {
  FOR_EACH_INDEX(i, n) {
    int pre_pad = (size - 1) / 2;
    long long base = (long long)(i / spatial) * channels * spatial + i % spatial;
    const float* xs = x + base;
    float* ss = scale + base;
    float s = k;
    for (int c = 0; c < min(pre_pad + 1, channels); ++c) {
      float v = xs[(long long)c * spatial];
      s = s + alpha_over_size * (v * v);
    }
    ss[0] = s;
    for (int c = 1; c < channels; ++c) {
      if (c + pre_pad < channels) {
        float v = xs[(long long)(c + pre_pad) * spatial];
        s = s + alpha_over_size * (v * v);
      }
      if (c - pre_pad - 1 >= 0) {
        float v = xs[(long long)(c - pre_pad - 1) * spatial];
        s = s - alpha_over_size * (v * v);
      }
      ss[(long long)c * spatial] = s;
    }
    for (int c = 0; c < channels; ++c) {
      long long o = (long long)c * spatial;
      y[base + o] = powf(ss[o], neg_beta) * xs[o];
    }
  }
}

// dx[c] = dy[c] * scale[c]^-beta - ratio_coeff * x[c] * (sum over the window around c of
// dy * y / scale), the window sum slid along the channels as in the CPU code.
extern "C" __global__ void lrn_across_backward(int n, const float* x, const float* y,
                                               const float* scale, const float* dy,
                                               int channels, int spatial, int size,
                                               float neg_beta, float ratio_coeff, float* dx) {
  FOR_EACH_INDEX(i, n) {
    int pre_pad = (size - 1) / 2;
    long long base = (long long)(i / spatial) * channels * spatial + i % spatial;
#define LRN_RATIO(c) ((dy[base + (long long)(c) * spatial] * y[base + (long long)(c) * spatial]) \
                      / scale[base + (long long)(c) * spatial])
    float accum = 0.f;
    for (int c = 0; c < min(pre_pad, channels); ++c) accum = accum + LRN_RATIO(c);
    for (int c = 0; c < channels; ++c) {
      long long o = base + (long long)c * spatial;
      if (c + pre_pad < channels) accum = accum + LRN_RATIO(c + pre_pad);
      float g = powf(scale[o], neg_beta) * dy[o];
      dx[o] = g - ratio_coeff * (x[o] * accum);
      if (c - pre_pad >= 0) accum = accum - LRN_RATIO(c - pre_pad);
    }
#undef LRN_RATIO
  }
}

// WITHIN_CHANNEL's power layer: power = (1 + alpha * pooled)^-beta, computed as the CPU code
// does: (pooled * alpha + 1) ^ -beta.
extern "C" __global__ void lrn_within_power(int n, const float* pooled, float alpha,
                                            float neg_beta, float* power) {
  FOR_EACH_INDEX(i, n) { power[i] = powf(pooled[i] * alpha + 1.f, neg_beta); }
}

// The gradient reaching the pooled values through the power layer, times the gradient reaching
// the power values (x * dy). mode 0: the power layer's derivative is the constant diff_scale
// (Caffe's special case for a zero coefficient or exponent 1); mode 1: exponent 2, linear in
// pooled; mode 2: the general form diff_scale * power / (1 + alpha * pooled). times_grad says
// whether to multiply by x * dy (Caffe skips it when diff_scale is 0).
extern "C" __global__ void lrn_within_grad_pooled(int n, const float* x, const float* dy,
                                                  const float* pooled, const float* power,
                                                  float alpha, float diff_scale, int mode,
                                                  int times_grad, float* out) {
  FOR_EACH_INDEX(i, n) {
    float g;
    if (mode == 0) {
      g = diff_scale;
    } else if (mode == 1) {
      g = (diff_scale * alpha) * pooled[i] + diff_scale;
    } else {
      g = (power[i] / (pooled[i] * alpha + 1.f)) * diff_scale;
    }
    if (times_grad) g = g * (x[i] * dy[i]);
    out[i] = g;
  }
}

// dx = power * dy + grad_square * (2 * x): the product layer's share plus the square layer's.
extern "C" __global__ void lrn_within_backward(int n, const float* x, const float* dy,
                                               const float* power, const float* grad_square,
                                               float* dx) {
  FOR_EACH_INDEX(i, n) { dx[i] = power[i] * dy[i] + grad_square[i] * (2.f * x[i]); }
}
