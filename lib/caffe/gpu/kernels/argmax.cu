// ArgMax's top-k selection, one thread per row: the device twin of
// lib/caffe/layers/argmax_kernels.pyx (the same scan, so the same indices). A row is `dim`
// values `inner` apart, rows indexed r = outer * inner + position; layout 0 writes k indices,
// 1 k values (both `inner` apart), 2 k indices then k values (contiguous, inner == 1).
#include "common.cuh"

extern "C" __global__ void argmax_top_k(int rows, const float* x, int dim, int inner, int k,
                                        int layout, float* out) {
  FOR_EACH_INDEX(r, rows) {
    long long o = r / inner, p = r % inner;
    long long base = layout == 2 ? 2 * o * k : o * k * inner + p;
    long long stride = layout == 2 ? 1 : inner;
    const float* row = x + o * dim * inner + p;
    float* dst = out + base;
    int filled = 0;
    for (int i = 0; i < dim; ++i) {
      float v = row[(long long)i * inner];
      // A kept pair (w, b) has b < i, so (v, i) goes before it exactly when v >= w (Caffe's
      // std::greater on (value, index) pairs: equal values, larger index first).
      int at = filled;
      while (at > 0 && v >= row[(long long)dst[(at - 1) * stride] * inner]) --at;
      if (at >= k) continue;
      for (int j = filled < k ? filled : k - 1; j > at; --j) dst[j * stride] = dst[(j - 1) * stride];
      dst[at * stride] = (float)i;
      if (filled < k) ++filled;
    }
    if (layout == 2) {
      for (int j = 0; j < k; ++j) dst[k + j] = row[(long long)dst[j]];
    } else if (layout == 1) {
      for (int j = 0; j < k; ++j) dst[j * stride] = row[(long long)dst[j * stride] * inner];
    }
  }
}
