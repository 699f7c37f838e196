// Softmax over the channel axis of an (outer, channels, inner) array, and SoftmaxWithLoss's
// per-position loss and gradient. One thread per (outer, inner) position walks the channels.
#include <cfloat>

#include "common.cuh"

// y = exp(x - max) / sum(exp(x - max)) along the channels.
extern "C" __global__ void softmax_forward(int n, int channels, int inner, const float* x,
                                           float* y) {
  FOR_EACH_INDEX(i, n) {
    long long base = (long long)(i / inner) * channels * inner + i % inner;
    float m = x[base];
    for (int c = 1; c < channels; ++c) {
      float v = x[base + (long long)c * inner];
      // A NaN anywhere makes the max NaN, as numpy's max does.
      m = (v > m || v != v) ? v : m;
    }
    float s = 0.f;
    for (int c = 0; c < channels; ++c) {
      float e = expf(x[base + (long long)c * inner] - m);
      y[base + (long long)c * inner] = e;
      s = s + e;
    }
    for (int c = 0; c < channels; ++c) y[base + (long long)c * inner] /= s;
  }
}

// dx = (dy - sum(dy * y)) * y along the channels.
extern "C" __global__ void softmax_backward(int n, int channels, int inner, const float* y,
                                            const float* dy, float* dx) {
  FOR_EACH_INDEX(i, n) {
    long long base = (long long)(i / inner) * channels * inner + i % inner;
    float dot = 0.f;
    for (int c = 0; c < channels; ++c) {
      long long o = base + (long long)c * inner;
      dot = dot + dy[o] * y[o];
    }
    for (int c = 0; c < channels; ++c) {
      long long o = base + (long long)c * inner;
      dx[o] = (dy[o] - dot) * y[o];
    }
  }
}

// loss[i] = -log(max(prob[label], FLT_MIN)) at each (outer, inner) position, 0 where the label
// is ignore_label (has_ignore). Labels are floats holding integers (truncated, as C's cast and
// numpy's astype do); the host has checked they lie in [0, channels).
extern "C" __global__ void softmax_loss_forward(int n, int channels, int inner, const float* prob,
                                                const float* labels, int has_ignore,
                                                int ignore_label, float* loss) {
  FOR_EACH_INDEX(i, n) {
    int label = (int)labels[i];
    if (has_ignore && label == ignore_label) {
      loss[i] = 0.f;
    } else {
      long long o = (long long)(i / inner) * channels * inner + (long long)label * inner + i % inner;
      loss[i] = -logf(fmaxf(prob[o], FLT_MIN));
    }
  }
}

// dx = (prob - onehot(label)) * valid * scale, one thread per element of the scores.
extern "C" __global__ void softmax_loss_backward(int n, int channels, int inner, const float* prob,
                                                 const float* labels, int has_ignore,
                                                 int ignore_label, float scale, float* dx) {
  FOR_EACH_INDEX(i, n) {
    int position_inner = i % inner;
    int c = (i / inner) % channels;
    int outer = i / (inner * channels);
    int label = (int)labels[(long long)outer * inner + position_inner];
    bool valid = !(has_ignore && label == ignore_label);
    float g = prob[i];
    if (valid && c == label) g = g - 1.f;
    dx[i] = (g * (valid ? 1.f : 0.f)) * scale;
  }
}
