// Element-wise kernels shared by several layers (ReLU, Dropout, Eltwise, Split, Concat,
// InnerProduct's bias, LRN's products). Each computes what the CPU layer's numpy expression
// computes, operation by operation, so results match in float32.
#include "common.cuh"

// y = alpha * x
extern "C" __global__ void scale(int n, float alpha, const float* x, float* y) {
  FOR_EACH_INDEX(i, n) { y[i] = alpha * x[i]; }
}

// y = a * b
extern "C" __global__ void multiply(int n, const float* a, const float* b, float* y) {
  FOR_EACH_INDEX(i, n) { y[i] = a[i] * b[i]; }
}

// y = y + alpha * x   (alpha == 1 multiplies exactly, so this is also a plain accumulation)
extern "C" __global__ void add_scaled(int n, float alpha, const float* x, float* y) {
  FOR_EACH_INDEX(i, n) { y[i] = y[i] + alpha * x[i]; }
}

// y = a + b
extern "C" __global__ void add(int n, const float* a, const float* b, float* y) {
  FOR_EACH_INDEX(i, n) { y[i] = a[i] + b[i]; }
}

// y = (float) x for an int array (Pooling's mask top is the argmax as floats)
extern "C" __global__ void int_to_float(int n, const int* x, float* y) {
  FOR_EACH_INDEX(i, n) { y[i] = (float)x[i]; }
}

// ReLU: y = max(x, 0) + slope * min(x, 0). Written with comparisons that keep NaN (as numpy's
// maximum/minimum do); for finite x this is x or slope * x.
extern "C" __global__ void relu_forward(int n, const float* x, float* y, float negative_slope) {
  FOR_EACH_INDEX(i, n) {
    float v = x[i];
    float above = v < 0.f ? 0.f : v;
    float below = v > 0.f ? 0.f : v;
    y[i] = above + negative_slope * below;
  }
}

// ReLU backward: dx = dy * ((x > 0) + slope * (x <= 0)). In place, x holds y, whose sign is x's
// for any slope >= 0.
extern "C" __global__ void relu_backward(int n, const float* x, const float* dy, float* dx,
                                         float negative_slope) {
  FOR_EACH_INDEX(i, n) {
    float v = x[i];
    float gain = (v > 0.f ? 1.f : 0.f) + negative_slope * (v <= 0.f ? 1.f : 0.f);
    dx[i] = dy[i] * gain;
  }
}

// Dropout, training: y = (x * keep) * scale, keep in {0, 1} drawn on the host (the CPU path's
// random stream); scale is 1 for the fork's scale_train: false. Backward is the same product on
// the diffs.
extern "C" __global__ void dropout(int n, const float* x, const unsigned int* keep, float scale,
                                   float* y) {
  FOR_EACH_INDEX(i, n) { y[i] = (x[i] * (float)keep[i]) * scale; }
}

// Bias of InnerProduct: y[r, c] += b[c] for a row-major (rows, columns) y.
extern "C" __global__ void add_bias(int n, int columns, const float* b, float* y) {
  FOR_EACH_INDEX(i, n) { y[i] = y[i] + b[i % columns]; }
}

// Bias gradient of InnerProduct: db[c] += sum over rows of dy[r, c], rows added in order (as
// numpy's sum over axis 0 does). One thread per column.
extern "C" __global__ void sum_rows_accumulate(int columns, int rows, const float* dy,
                                               float* db) {
  FOR_EACH_INDEX(c, columns) {
    float s = 0.f;
    for (int r = 0; r < rows; ++r) s = s + dy[(long long)r * columns + c];
    db[c] = db[c] + s;
  }
}

// Eltwise MAX, first pair: ties go to b (Caffe compares a > b); idx records the winner.
extern "C" __global__ void eltwise_max_first(int n, const float* a, const float* b, float* y,
                                             int* idx) {
  FOR_EACH_INDEX(i, n) {
    bool first = a[i] > b[i];
    y[i] = first ? a[i] : b[i];
    idx[i] = first ? 0 : 1;
  }
}

// Eltwise MAX, each further bottom k: it wins only if strictly greater.
extern "C" __global__ void eltwise_max_next(int n, const float* x, int k, float* y, int* idx) {
  FOR_EACH_INDEX(i, n) {
    if (x[i] > y[i]) {
      y[i] = x[i];
      idx[i] = k;
    }
  }
}

// Eltwise MAX backward for bottom k: the top diff where k won, else 0.
extern "C" __global__ void eltwise_max_backward(int n, const float* dy, const int* idx, int k,
                                                float* dx) {
  FOR_EACH_INDEX(i, n) { dx[i] = idx[i] == k ? dy[i] : 0.f; }
}

// Eltwise PROD backward without stable_prod_grad: dx = (top / x) * dy.
extern "C" __global__ void eltwise_prod_backward(int n, const float* top, const float* x,
                                                 const float* dy, float* dx) {
  FOR_EACH_INDEX(i, n) { dx[i] = (top[i] / x[i]) * dy[i]; }
}

// Concat: copies between one bottom, seen as (outer, chunk), and its slot in the top, seen as
// (outer, top_chunk) starting at column `offset` (chunk = bottom's axis length * inner size).
// to_top: bottom -> top (forward), else top -> bottom (backward).
extern "C" __global__ void concat_copy(int n, int chunk, int top_chunk, int offset, int to_top,
                                       float* bottom, float* top) {
  FOR_EACH_INDEX(i, n) {
    int outer = i / chunk;
    long long t = (long long)outer * top_chunk + offset + (i - outer * chunk);
    if (to_top) {
      top[t] = bottom[i];
    } else {
      bottom[i] = top[t];
    }
  }
}

// Solver updates: one kernel per method, each running for one parameter blob the four steps of
// the host's Solver.update_cpu (caffe/solver.py, caffe/sgd_solvers.py) on every value, in the
// host's float32 order: Normalize and Regularize (solver_gradient), the method's
// ComputeUpdateValue (diff becomes the update value, the history advances), and the update
// data -= diff. Squares are products and roots sqrtf (IEEE-rounded without -use_fast_math).

// Normalize: g * iter_scale when iter_size > 1. Regularize: + decay * w (regularization 1, L2)
// or + decay * sign(w) (2, L1); 0 for none.
__device__ __forceinline__ float solver_gradient(float g, float w, int scale_diff,
                                                 float iter_scale, int regularization,
                                                 float decay) {
  if (scale_diff) g = g * iter_scale;
  if (regularization == 1) {
    g = g + decay * w;
  } else if (regularization == 2) {
    float sign = (w > 0.f ? 1.f : 0.f) - (w < 0.f ? 1.f : 0.f);
    g = g + decay * sign;
  }
  return g;
}

#define SOLVER_GRADIENT(i) \
  solver_gradient(diff[i], data[i], scale_diff, iter_scale, regularization, decay)

// The update: diff holds the update value, as Caffe leaves it, and data moves by it.
#define SOLVER_APPLY(i, u) \
  do {                     \
    diff[i] = (u);         \
    data[i] = data[i] - diff[i]; \
  } while (0)

// SGD: h = momentum * h + rate * g; u = h.
extern "C" __global__ void sgd_update(int n, float* data, float* diff, float* history,
                                      int scale_diff, float iter_scale, int regularization,
                                      float decay, float momentum, float rate) {
  FOR_EACH_INDEX(i, n) {
    float g = SOLVER_GRADIENT(i);
    float h = history[i] * momentum + g * rate;
    history[i] = h;
    SOLVER_APPLY(i, h);
  }
}

// Nesterov: h' = momentum * h + rate * g; u = (1 + momentum) * h' + (-momentum) * h.
extern "C" __global__ void nesterov_update(int n, float* data, float* diff, float* history,
                                           int scale_diff, float iter_scale, int regularization,
                                           float decay, float momentum, float one_plus_momentum,
                                           float rate) {
  FOR_EACH_INDEX(i, n) {
    float g = SOLVER_GRADIENT(i);
    float before = history[i];
    float step_back = before * -momentum;
    float h = before * momentum + g * rate;
    history[i] = h;
    SOLVER_APPLY(i, h * one_plus_momentum + step_back);
  }
}

// AdaGrad: h = h + g * g; u = rate * (g / (sqrt(h) + delta)).
extern "C" __global__ void adagrad_update(int n, float* data, float* diff, float* history,
                                          int scale_diff, float iter_scale, int regularization,
                                          float decay, float delta, float rate) {
  FOR_EACH_INDEX(i, n) {
    float g = SOLVER_GRADIENT(i);
    float h = history[i] + g * g;
    history[i] = h;
    SOLVER_APPLY(i, (g / (sqrtf(h) + delta)) * rate);
  }
}

// RMSProp: h = rms_decay * h + (1 - rms_decay) * g * g; u = rate * (g / (sqrt(h) + delta)).
extern "C" __global__ void rmsprop_update(int n, float* data, float* diff, float* history,
                                          int scale_diff, float iter_scale, int regularization,
                                          float decay, float rms_decay,
                                          float one_minus_rms_decay, float delta, float rate) {
  FOR_EACH_INDEX(i, n) {
    float g = SOLVER_GRADIENT(i);
    float h = history[i] * rms_decay + (g * g) * one_minus_rms_decay;
    history[i] = h;
    SOLVER_APPLY(i, (g / (sqrtf(h) + delta)) * rate);
  }
}

// AdaDelta: h = momentum * h + (1 - momentum) * g * g; s = g * sqrt((h2 + delta) / (h + delta));
// h2 = momentum * h2 + (1 - momentum) * s * s; u = rate * s.
extern "C" __global__ void adadelta_update(int n, float* data, float* diff, float* history,
                                           float* update_history, int scale_diff,
                                           float iter_scale, int regularization, float decay,
                                           float momentum, float one_minus_momentum,
                                           float delta, float rate) {
  FOR_EACH_INDEX(i, n) {
    float g = SOLVER_GRADIENT(i);
    float h = history[i] * momentum + (g * g) * one_minus_momentum;
    history[i] = h;
    float s = g * sqrtf((update_history[i] + delta) / (h + delta));
    update_history[i] = update_history[i] * momentum + (s * s) * one_minus_momentum;
    SOLVER_APPLY(i, s * rate);
  }
}

// Adam: m = beta1 * m + (1 - beta1) * g; v = beta2 * v + (1 - beta2) * g * g;
// u = corrected_rate * (m / (sqrt(v) + delta)), the bias correction folded into the rate.
extern "C" __global__ void adam_update(int n, float* data, float* diff, float* m, float* v,
                                       int scale_diff, float iter_scale, int regularization,
                                       float decay, float beta1, float one_minus_beta1,
                                       float beta2, float one_minus_beta2, float delta,
                                       float corrected_rate) {
  FOR_EACH_INDEX(i, n) {
    float g = SOLVER_GRADIENT(i);
    float mi = m[i] * beta1 + g * one_minus_beta1;
    float vi = v[i] * beta2 + (g * g) * one_minus_beta2;
    m[i] = mi;
    v[i] = vi;
    SOLVER_APPLY(i, (mi / (sqrtf(vi) + delta)) * corrected_rate);
  }
}
