// Kernels of the recurrent layers (LSTMUnit, LSTM, RNN): the device counterparts of
// layers/recurrent_kernels.pyx, with the same names and expressions. Sigmoid and tanh are
// evaluated in double and rounded to float, as the CPU code (and Caffe's CPU LSTMUnit) does.
#include "common.cuh"

__device__ __forceinline__ float sigmoid_d(float x) {
  return (float)(1.0 / (1.0 + exp(-(double)x)));
}

__device__ __forceinline__ float tanh2_d(float x) {
  return (float)(2.0 * (1.0 / (1.0 + exp(-2.0 * (double)x))) - 1.0);
}

// One LSTM step for count / d streams of d units; gates (streams, 4d) in Caffe's order i, f, o,
// g. (The first argument of every kernel here is the number of elements it computes.)
extern "C" __global__ void lstm_unit_forward(int count, int d, const float* c_prev,
                                             const float* gates, const float* cont, float* c,
                                             float* h) {
  FOR_EACH_INDEX(k, count) {
    const int s = k / d, j = k - s * d;
    const float* x = gates + (long long)s * 4 * d;
    const float i = sigmoid_d(x[j]);
    const float f = cont[s] == 0.f ? 0.f : cont[s] * sigmoid_d(x[d + j]);
    const float o = sigmoid_d(x[2 * d + j]);
    const float g = tanh2_d(x[3 * d + j]);
    const float cv = f * c_prev[k] + i * g;
    c[k] = cv;
    h[k] = o * tanh2_d(cv);
  }
}

extern "C" __global__ void lstm_unit_backward(int count, int d, const float* c_prev,
                                              const float* gates, const float* cont,
                                              const float* c, const float* c_diff,
                                              const float* h_diff, float* c_prev_diff,
                                              float* gates_diff) {
  FOR_EACH_INDEX(k, count) {
    const int s = k / d, j = k - s * d;
    const float* x = gates + (long long)s * 4 * d;
    float* dx = gates_diff + (long long)s * 4 * d;
    const float i = sigmoid_d(x[j]);
    const float f = cont[s] == 0.f ? 0.f : cont[s] * sigmoid_d(x[d + j]);
    const float o = sigmoid_d(x[2 * d + j]);
    const float g = tanh2_d(x[3 * d + j]);
    const float tanh_c = tanh2_d(c[k]);
    const float c_term = c_diff[k] + h_diff[k] * o * (1.f - tanh_c * tanh_c);
    c_prev_diff[k] = c_term * f;
    dx[j] = c_term * g * i * (1.f - i);
    dx[d + j] = c_term * c_prev[k] * f * (1.f - f);
    dx[2 * d + j] = h_diff[k] * tanh_c * o * (1.f - o);
    dx[3 * d + j] = c_term * i * (1.f - g * g);
  }
}

// y[s, :] = x[s, :] * scale[s]
extern "C" __global__ void scale_rows(int count, int d, const float* x, const float* scale,
                                      float* y) {
  FOR_EACH_INDEX(k, count) { y[k] = x[k] * scale[k / d]; }
}

// y[s, :] += x[s, :] * scale[s]
extern "C" __global__ void add_scaled_rows(int count, int d, const float* x, const float* scale,
                                           float* y) {
  FOR_EACH_INDEX(k, count) { y[k] = y[k] + x[k] * scale[k / d]; }
}

extern "C" __global__ void tanh_forward(int n, float* x) {
  FOR_EACH_INDEX(k, n) { x[k] = (float)tanh((double)x[k]); }
}

// dx (=, or += with accumulate) dy * (1 - y * y)
extern "C" __global__ void tanh_backward_add(int n, const float* y, const float* dy, float* dx,
                                             int accumulate) {
  FOR_EACH_INDEX(k, n) {
    const float v = dy[k] * (1.f - y[k] * y[k]);
    dx[k] = accumulate ? dx[k] + v : v;
  }
}
