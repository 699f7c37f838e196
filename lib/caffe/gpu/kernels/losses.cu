// The loss layers ContrastiveLoss, EuclideanLoss, HingeLoss, InfogainLoss,
// MultinomialLogisticLoss and SigmoidCrossEntropyLoss. Each kernel is the CPU kernel of the same
// name in lib/caffe/layers/loss_kernels.pyx, operation by operation. The *_partials kernels run
// one thread per run of `chunk` terms, adding them in double in order, as the CPU kernels do
// (caffe.layers._partial_sums): the host adds the partial sums, so a loss does not depend on
// how the device schedules threads, and terms without expf/logf give the CPU's loss exactly.
#include "common.cuh"

// Caffe's kLOG_THRESHOLD (loss_layer.hpp).
#define LOG_THRESHOLD 1e-20f

__device__ __forceinline__ float caffe_sigmoid(float v) {
  return (float)(0.5 * tanh(0.5 * (double)v) + 0.5);
}

__device__ __forceinline__ float clip_probability(float p) {
  return p < LOG_THRESHOLD ? LOG_THRESHOLD : p;
}

// Terms [k * chunk, min((k + 1) * chunk, n)) of run k.
#define RUN_BOUNDS(k, chunk, n, start, stop)          \
  long long start = (long long)(k) * (chunk);         \
  long long stop = start + (chunk);                   \
  if (stop > (n)) stop = (n);

// runs: the number of partial sums; n: the number of terms.
extern "C" __global__ void squared_difference_partials(int runs, int n, int chunk,
                                                       const float* a, const float* b,
                                                       double* partials) {
  FOR_EACH_INDEX(k, runs) {
    RUN_BOUNDS(k, chunk, n, start, stop)
    double total = 0.0;
    for (long long i = start; i < stop; ++i) {
      float d = a[i] - b[i];
      total = total + (double)d * (double)d;
    }
    partials[k] = total;
  }
}

extern "C" __global__ void row_squared_distances(int rows, int cols, const float* a,
                                                 const float* b, float* out) {
  FOR_EACH_INDEX(r, rows) {
    double total = 0.0;
    for (long long i = (long long)r * cols; i < (long long)(r + 1) * cols; ++i) {
      float d = a[i] - b[i];
      total = total + (double)d * (double)d;
    }
    out[r] = (float)total;
  }
}

// dx = c * (a - b), c = coef[i / cols], or alpha where coef is null.
extern "C" __global__ void scaled_difference(int n, int cols, const float* a, const float* b,
                                             const float* coef, float alpha, float* dx) {
  FOR_EACH_INDEX(i, n) {
    float c = coef ? coef[i / cols] : alpha;
    dx[i] = c * (a[i] - b[i]);
  }
}

// The signed hinge of element i: -max(0, 1 - x) at the row's label, max(0, 1 + x) elsewhere.
__device__ __forceinline__ float hinge(const float* x, const float* labels, int dim, int i) {
  int row = i / dim;
  float v = x[i];
  bool truth = i - row * dim == (int)labels[row];
  if (truth) v = v * -1.f;
  float t = 1.f + v;
  t = 0.f < t ? t : 0.f;
  return truth ? t * -1.f : t;
}

extern "C" __global__ void hinge_partials(int runs, int n, int chunk, const float* x,
                                          const float* labels, int dim, int squared,
                                          double* partials) {
  FOR_EACH_INDEX(k, runs) {
    RUN_BOUNDS(k, chunk, n, start, stop)
    double total = 0.0;
    for (long long i = start; i < stop; ++i) {
      float t = hinge(x, labels, dim, (int)i);
      if (t < 0.f) t = t * -1.f;
      total = total + (squared ? (double)t * (double)t : (double)t);
    }
    partials[k] = total;
  }
}

extern "C" __global__ void hinge_backward(int n, const float* x, const float* labels, int dim,
                                          int squared, float scale, float* dx) {
  FOR_EACH_INDEX(i, n) {
    float u = hinge(x, labels, dim, i);
    if (squared) {
      dx[i] = scale * u;
    } else {
      float sign = (u > 0.f ? 1.f : 0.f) - (u < 0.f ? 1.f : 0.f);
      dx[i] = scale * sign;
    }
  }
}

extern "C" __global__ void sigmoid_ce_partials(int runs, int n, int chunk, const float* x,
                                               const float* target, int has_ignore,
                                               int ignore_label, double* partials,
                                               long long* counts) {
  FOR_EACH_INDEX(k, runs) {
    RUN_BOUNDS(k, chunk, n, start, stop)
    double total = 0.0;
    long long valid = 0;
    for (long long i = start; i < stop; ++i) {
      if (has_ignore && (int)target[i] == ignore_label) continue;
      float v = x[i];
      float positive = v >= 0.f ? 1.f : 0.f;
      total = total + (double)(v * (target[i] - positive) -
                               logf(1.f + expf(v - (2.f * v) * positive)));
      valid = valid + 1;
    }
    partials[k] = total;
    counts[k] = valid;
  }
}

extern "C" __global__ void sigmoid_ce_backward(int n, const float* x, const float* target,
                                               int has_ignore, int ignore_label, float scale,
                                               float* dx) {
  FOR_EACH_INDEX(i, n) {
    if (has_ignore && (int)target[i] == ignore_label) {
      dx[i] = scale * 0.f;
    } else {
      dx[i] = scale * (caffe_sigmoid(x[i]) - target[i]);
    }
  }
}

// prob (outer, K, inner), labels (outer * inner), H (K, K) with the true label's row.
extern "C" __global__ void infogain_partials(int runs, int positions, int chunk,
                                             const float* prob, const float* labels,
                                             const float* H, int K, int inner, int has_ignore,
                                             int ignore_label, double* partials,
                                             long long* counts) {
  FOR_EACH_INDEX(k, runs) {
    RUN_BOUNDS(k, chunk, positions, start, stop)
    double total = 0.0;
    long long valid = 0;
    for (long long p = start; p < stop; ++p) {
      int label = (int)labels[p];
      if (has_ignore && label == ignore_label) continue;
      long long i = p / inner;
      long long base = i * K * inner + (p - i * inner);
      for (int l = 0; l < K; ++l) {
        total = total + (double)(H[label * K + l] *
                                 logf(clip_probability(prob[base + (long long)l * inner])));
      }
      valid = valid + 1;
    }
    partials[k] = total;
    counts[k] = valid;
  }
}

extern "C" __global__ void infogain_backward(int n, const float* prob, const float* labels,
                                             const float* H, const float* row_sums, int K,
                                             int inner, int has_ignore, int ignore_label,
                                             float scale, float* dx) {
  FOR_EACH_INDEX(e, n) {
    int i = e / (K * inner);
    int l = (e / inner) % K;
    int j = e % inner;
    int label = (int)labels[i * inner + j];
    if (has_ignore && label == ignore_label) {
      dx[e] = scale * 0.f;
    } else {
      dx[e] = scale * (prob[e] * row_sums[label] - H[label * K + l]);
    }
  }
}

// MultinomialLogisticLoss: out[r] = p[r, label[r]] for rows of dim probabilities.
extern "C" __global__ void pick_by_label(int rows, int dim, const float* p, const float* labels,
                                         float* out) {
  FOR_EACH_INDEX(r, rows) { out[r] = p[(long long)r * dim + (int)labels[r]]; }
}

// dx[r, label[r]] = scale / max(p[r, label[r]], 1e-20); the rest of dx is zeroed before.
extern "C" __global__ void multinomial_logistic_backward(int rows, int dim, const float* p,
                                                         const float* labels, float scale,
                                                         float* dx) {
  FOR_EACH_INDEX(r, rows) {
    long long i = (long long)r * dim + (int)labels[r];
    dx[i] = scale / clip_probability(p[i]);
  }
}
