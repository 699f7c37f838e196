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

// One SGD step for one parameter blob, in the CPU solver's float32 order (caffe/solver.py,
// apply_update): diff *= iter_scale (when iter_size > 1); diff += decay * data (L2) or
// decay * sign(data) (L1, regularization 2; 0 for none); history = history * momentum
// + rate * diff; data -= history. diff is left as the solver leaves it on the host.
extern "C" __global__ void sgd_update(int n, float* data, float* diff, float* history,
                                      int scale_diff, float iter_scale, int regularization,
                                      float decay, float momentum, float rate) {
  FOR_EACH_INDEX(i, n) {
    float g = diff[i];
    if (scale_diff) g = g * iter_scale;
    if (regularization == 1) {
      g = g + decay * data[i];
    } else if (regularization == 2) {
      float w = data[i];
      float sign = (w > 0.f ? 1.f : 0.f) - (w < 0.f ? 1.f : 0.f);
      g = g + decay * sign;
    }
    diff[i] = g;
    float h = history[i] * momentum;
    h = h + rate * g;
    history[i] = h;
    data[i] = data[i] - h;
  }
}
