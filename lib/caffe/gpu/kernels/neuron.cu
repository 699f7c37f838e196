// The neuron layers (AbsVal, BNLL, Clip, ELU, Exp, Log, Power, PReLU, Sigmoid, Swish, TanH,
// Threshold). Each kernel is the CPU kernel of the same name in
// lib/caffe/layers/neuron_kernels.pyx, operation by operation (that file says why each step is
// float or double); only expf/logf/powf/tanhf/tanh are the device's, a few ulp from the host's.
#include "common.cuh"

__device__ __forceinline__ float sign_of(float v) {
  return (v > 0.f ? 1.f : 0.f) - (v < 0.f ? 1.f : 0.f);
}

// Caffe's sigmoid(): 0.5 * tanh(0.5 * x) + 0.5 in double, returned as float.
__device__ __forceinline__ float caffe_sigmoid(float v) {
  return (float)(0.5 * tanh(0.5 * (double)v) + 0.5);
}

// scale * x, + shift only where Caffe adds it (shift != 0): -0 + 0 is +0, and 1 / -0 is -inf.
__device__ __forceinline__ float affine(float v, float scale, float shift) {
  float t = scale * v;
  if (shift != 0.f) t = t + shift;
  return t;
}

extern "C" __global__ void absval_forward(int n, const float* x, float* y) {
  FOR_EACH_INDEX(i, n) { y[i] = fabsf(x[i]); }
}

extern "C" __global__ void absval_backward(int n, const float* x, const float* dy, float* dx) {
  FOR_EACH_INDEX(i, n) { dx[i] = sign_of(x[i]) * dy[i]; }
}

extern "C" __global__ void bnll_forward(int n, const float* x, float* y) {
  FOR_EACH_INDEX(i, n) {
    float v = x[i];
    y[i] = v > 0.f ? (float)((double)v + log(1.0 + (double)expf(-v)))
                   : (float)log(1.0 + (double)expf(v));
  }
}

// e = exp(min(x, 50)) as a float (Caffe's kBNLL_THRESHOLD); dx = dy * e / (e + 1.).
extern "C" __global__ void bnll_backward(int n, const float* x, const float* dy, float* dx) {
  FOR_EACH_INDEX(i, n) {
    float v = x[i];
    float e = expf(50.f < v ? 50.f : v);
    dx[i] = (float)((double)(dy[i] * e) / ((double)e + 1.0));
  }
}

// std::max(lo, std::min(x, hi)) as Caffe's CPU path computes it: NaN gives lo.
extern "C" __global__ void clip_forward(int n, const float* x, float* y, float lo, float hi) {
  FOR_EACH_INDEX(i, n) {
    float t = hi < x[i] ? hi : x[i];
    y[i] = lo < t ? t : lo;
  }
}

extern "C" __global__ void clip_backward(int n, const float* x, const float* dy, float* dx,
                                         float lo, float hi) {
  FOR_EACH_INDEX(i, n) {
    float v = x[i];
    dx[i] = dy[i] * ((v >= lo && v <= hi) ? 1.f : 0.f);
  }
}

extern "C" __global__ void elu_forward(int n, const float* x, float* y, float alpha) {
  FOR_EACH_INDEX(i, n) {
    float v = x[i];
    float above = v < 0.f ? 0.f : v;
    float below = 0.f < v ? 0.f : v;
    y[i] = above + alpha * (expf(below) - 1.f);
  }
}

extern "C" __global__ void elu_backward(int n, const float* x, const float* y, const float* dy,
                                        float* dx, float alpha) {
  FOR_EACH_INDEX(i, n) {
    float v = x[i];
    dx[i] = dy[i] * ((v > 0.f ? 1.f : 0.f) + (alpha + y[i]) * (v <= 0.f ? 1.f : 0.f));
  }
}

extern "C" __global__ void exp_forward(int n, const float* x, float* y, float inner_scale,
                                       float outer_scale) {
  FOR_EACH_INDEX(i, n) { y[i] = outer_scale * expf(inner_scale * x[i]); }
}

extern "C" __global__ void exp_backward(int n, const float* y, const float* dy, float* dx,
                                        float inner_scale) {
  FOR_EACH_INDEX(i, n) { dx[i] = (y[i] * dy[i]) * inner_scale; }
}

extern "C" __global__ void log_forward(int n, const float* x, float* y, float scale, float shift,
                                       float base_scale) {
  FOR_EACH_INDEX(i, n) { y[i] = base_scale * logf(affine(x[i], scale, shift)); }
}

// caffe_gpu_powx(t, -1) is powf(t, -1).
extern "C" __global__ void log_backward(int n, const float* x, const float* dy, float* dx,
                                        float scale, float shift, float backward_num_scale) {
  FOR_EACH_INDEX(i, n) {
    dx[i] = dy[i] * (powf(affine(x[i], scale, shift), -1.f) * backward_num_scale);
  }
}

// No pow where power == 1 (Caffe skips caffe_powx there).
extern "C" __global__ void power_forward(int n, const float* x, float* y, float scale,
                                         float shift, float power) {
  FOR_EACH_INDEX(i, n) {
    float t = affine(x[i], scale, shift);
    y[i] = power != 1.f ? powf(t, power) : t;
  }
}

extern "C" __global__ void fill(int n, float* y, float value) {
  FOR_EACH_INDEX(i, n) { y[i] = value; }
}

// Power's four backward cases (Caffe's PowerLayer::Backward_cpu).
extern "C" __global__ void power_backward_constant(int n, const float* dy, float* dx,
                                                   float diff_scale) {
  FOR_EACH_INDEX(i, n) { dx[i] = diff_scale != 0.f ? dy[i] * diff_scale : diff_scale; }
}

// (diff_scale * scale) * x, + diff_scale * shift where shift != 0.
extern "C" __global__ void power_backward_square(int n, const float* x, const float* dy,
                                                 float* dx, float slope, float offset,
                                                 float shift) {
  FOR_EACH_INDEX(i, n) {
    float d = slope * x[i];
    if (shift != 0.f) d = d + offset;
    dx[i] = dy[i] * d;
  }
}

extern "C" __global__ void power_backward_unshifted(int n, const float* x, const float* y,
                                                    const float* dy, float* dx, float power) {
  FOR_EACH_INDEX(i, n) { dx[i] = dy[i] * ((y[i] / x[i]) * power); }
}

extern "C" __global__ void power_backward_general(int n, const float* x, const float* y,
                                                  const float* dy, float* dx, float scale,
                                                  float shift, float diff_scale) {
  FOR_EACH_INDEX(i, n) { dx[i] = dy[i] * ((y[i] / affine(x[i], scale, shift)) * diff_scale); }
}

extern "C" __global__ void sigmoid_forward(int n, const float* x, float* y) {
  FOR_EACH_INDEX(i, n) { y[i] = caffe_sigmoid(x[i]); }
}

extern "C" __global__ void sigmoid_backward(int n, const float* y, const float* dy, float* dx) {
  FOR_EACH_INDEX(i, n) {
    float s = y[i];
    dx[i] = (float)((double)(dy[i] * s) * (1.0 - (double)s));
  }
}

extern "C" __global__ void swish_forward(int n, const float* x, float* y, float* s,
                                         float beta) {
  FOR_EACH_INDEX(i, n) {
    float v = x[i];
    float g = caffe_sigmoid(beta * v);
    s[i] = g;
    y[i] = v * g;
  }
}

extern "C" __global__ void swish_backward(int n, const float* y, const float* s,
                                          const float* dy, float* dx, float beta) {
  FOR_EACH_INDEX(i, n) {
    float by = beta * y[i];
    dx[i] = (float)((double)dy[i] * ((double)by + (double)s[i] * (1.0 - (double)by)));
  }
}

extern "C" __global__ void tanh_forward(int n, const float* x, float* y) {
  FOR_EACH_INDEX(i, n) { y[i] = tanhf(x[i]); }
}

extern "C" __global__ void tanh_backward(int n, const float* y, const float* dy, float* dx) {
  FOR_EACH_INDEX(i, n) {
    float t = y[i];
    dx[i] = dy[i] * (1.f - t * t);
  }
}

extern "C" __global__ void threshold_forward(int n, const float* x, float* y, float threshold) {
  FOR_EACH_INDEX(i, n) { y[i] = x[i] > threshold ? 1.f : 0.f; }
}

// PReLU: element i is in row i / dim, channel (i / dim) % channels (slope[0] when shared).
// kept (may be null) receives a copy of x: in place, Caffe's bottom_memory_.
extern "C" __global__ void prelu_forward(int n, int channels, int dim, int shared,
                                         const float* x, float* y, const float* slope,
                                         float* kept) {
  FOR_EACH_INDEX(i, n) {
    float v = x[i];
    if (kept) kept[i] = v;
    float s = slope[shared ? 0 : (i / dim) % channels];
    float above = v < 0.f ? 0.f : v;
    float below = 0.f < v ? 0.f : v;
    y[i] = above + s * below;
  }
}

extern "C" __global__ void prelu_backward(int n, int channels, int dim, int shared,
                                          const float* x, const float* dy, float* dx,
                                          const float* slope) {
  FOR_EACH_INDEX(i, n) {
    float v = x[i];
    float s = slope[shared ? 0 : (i / dim) % channels];
    dx[i] = dy[i] * ((v > 0.f ? 1.f : 0.f) + s * (v <= 0.f ? 1.f : 0.f));
  }
}

// The slope gradient's terms (dy * x) * (x <= 0), summed in double over run k of `chunk`
// elements of row r (rows of dim): partials[r * runs + k], n = rows * runs. The same runs, in
// the same order, as prelu_slope_partials on the CPU, so the partial sums are equal.
extern "C" __global__ void prelu_slope_partials(int n, int dim, int chunk, int runs,
                                                const float* x, const float* dy,
                                                double* partials) {
  FOR_EACH_INDEX(p, n) {
    int r = p / runs;
    long long start = (long long)r * dim + (long long)(p - r * runs) * chunk;
    long long stop = start + chunk;
    long long row_end = (long long)(r + 1) * dim;
    if (stop > row_end) stop = row_end;
    double total = 0.0;
    for (long long j = start; j < stop; ++j) {
      float v = x[j];
      total = total + (double)((dy[j] * v) * (v <= 0.f ? 1.f : 0.f));
    }
    partials[p] = total;
  }
}
