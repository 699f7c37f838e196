// SmoothL1Loss (the Fast R-CNN fork's; see lib/caffe/layers/smooth_l1_loss.py, the CPU
// reference). Per element d = inside * (pred - target); the error branches are evaluated in
// double, as the fork's kernel does with its double literals, then rounded to float.
#include "common.cuh"

// d[i] and the per-element error (times outside); inside/outside may be null (no weights).
extern "C" __global__ void smooth_l1_forward(int n, const float* pred, const float* target,
                                             const float* inside, const float* outside,
                                             float sigma2, double threshold, float* d,
                                             float* error) {
  FOR_EACH_INDEX(i, n) {
    float di = pred[i] - target[i];
    if (inside) di = inside[i] * di;
    d[i] = di;
    double v = di;
    double a = fabs(v);
    double s2 = sigma2;
    float e = (float)(a < threshold ? 0.5 * v * v * s2 : a - 0.5 / s2);
    if (outside) e = outside[i] * e;
    error[i] = e;
  }
}

// dx = outside * (inside * (alpha * g)), g = sigma2 * d where |d| < threshold, else sign(d);
// alpha = +-(loss weight) / num, formed on the host as the CPU layer forms it.
extern "C" __global__ void smooth_l1_backward(int n, const float* d, const float* inside,
                                              const float* outside, float sigma2,
                                              double threshold, float alpha, float* dx) {
  FOR_EACH_INDEX(i, n) {
    float di = d[i];
    float sign = (di > 0.f ? 1.f : 0.f) - (di < 0.f ? 1.f : 0.f);
    float g = fabs((double)di) < threshold ? sigma2 * di : sign;
    g = alpha * g;
    if (inside) g = outside[i] * (inside[i] * g);
    dx[i] = g;
  }
}
