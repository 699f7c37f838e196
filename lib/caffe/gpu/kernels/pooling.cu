// MAX and AVE pooling over a stack of planes (num * channels, height, width), with Caffe's
// window rules (see lib/caffe/layers/pooling_kernels.pyx, the CPU reference): a window starts
// at out * stride - pad; MAX looks at the part inside the image (strictly greater wins, so the
// first maximum in scan order is kept; -1 for a window wholly outside); AVE sums the part inside
// the image and divides by the window clipped to in + pad.
//
// Forward runs one thread per output. Backward runs one thread per input pixel and gathers from
// the outputs whose windows cover it, in the order the CPU loop scatters to it (output rows, then
// columns), so the float32 sums are the same.
#include <cfloat>

#include "common.cuh"

extern "C" __global__ void max_pool_forward(int n, const float* x, int height, int width,
                                            int out_h, int out_w, int kernel_h, int kernel_w,
                                            int pad_h, int pad_w, int stride_h, int stride_w,
                                            float* y, int* argmax) {
  FOR_EACH_INDEX(i, n) {
    int ow = i % out_w;
    int oh = (i / out_w) % out_h;
    int plane = i / (out_w * out_h);
    int hs = oh * stride_h - pad_h;
    int ws = ow * stride_w - pad_w;
    int he = min(hs + kernel_h, height);
    int we = min(ws + kernel_w, width);
    hs = max(hs, 0);
    ws = max(ws, 0);
    const float* p = x + (long long)plane * height * width;
    float best = -FLT_MAX;
    int where = -1;
    for (int h = hs; h < he; ++h) {
      for (int w = ws; w < we; ++w) {
        if (p[h * width + w] > best) {
          best = p[h * width + w];
          where = h * width + w;
        }
      }
    }
    y[i] = best;
    argmax[i] = where;
  }
}

// The outputs along one axis whose windows [o * stride - pad, o * stride - pad + kernel) hold
// position v (0 <= v < size): first..last inclusive, clipped to [0, out - 1].
__device__ __forceinline__ void covering(int v, int pad, int kernel, int stride, int out,
                                         int* first, int* last) {
  int padded = v + pad;
  *first = padded < kernel ? 0 : (padded - kernel) / stride + 1;
  *last = min(padded / stride, out - 1);
}

extern "C" __global__ void max_pool_backward(int n, const float* dy, const int* argmax,
                                             int height, int width, int out_h, int out_w,
                                             int kernel_h, int kernel_w, int pad_h, int pad_w,
                                             int stride_h, int stride_w, float* dx) {
  FOR_EACH_INDEX(i, n) {
    int w = i % width;
    int h = (i / width) % height;
    int plane = i / (width * height);
    int oh0, oh1, ow0, ow1;
    covering(h, pad_h, kernel_h, stride_h, out_h, &oh0, &oh1);
    covering(w, pad_w, kernel_w, stride_w, out_w, &ow0, &ow1);
    long long base = (long long)plane * out_h * out_w;
    int self = h * width + w;
    float g = 0.f;
    for (int oh = oh0; oh <= oh1; ++oh) {
      for (int ow = ow0; ow <= ow1; ++ow) {
        if (argmax[base + oh * out_w + ow] == self) g = g + dy[base + oh * out_w + ow];
      }
    }
    dx[i] = g;
  }
}

// The window of output (oh, ow) clipped to the padded image, and its size (AVE's divisor).
__device__ __forceinline__ int ave_window(int oh, int ow, int height, int width, int kernel_h,
                                          int kernel_w, int pad_h, int pad_w, int stride_h,
                                          int stride_w, int* hs, int* he, int* ws, int* we) {
  *hs = oh * stride_h - pad_h;
  *ws = ow * stride_w - pad_w;
  *he = min(*hs + kernel_h, height + pad_h);
  *we = min(*ws + kernel_w, width + pad_w);
  return (*he - *hs) * (*we - *ws);
}

extern "C" __global__ void ave_pool_forward(int n, const float* x, int height, int width,
                                            int out_h, int out_w, int kernel_h, int kernel_w,
                                            int pad_h, int pad_w, int stride_h, int stride_w,
                                            float* y) {
  FOR_EACH_INDEX(i, n) {
    int ow = i % out_w;
    int oh = (i / out_w) % out_h;
    int plane = i / (out_w * out_h);
    int hs, he, ws, we;
    int size = ave_window(oh, ow, height, width, kernel_h, kernel_w, pad_h, pad_w, stride_h,
                          stride_w, &hs, &he, &ws, &we);
    const float* p = x + (long long)plane * height * width;
    float s = 0.f;
    for (int h = max(hs, 0); h < min(he, height); ++h) {
      for (int w = max(ws, 0); w < min(we, width); ++w) s = s + p[h * width + w];
    }
    y[i] = s / (float)size;
  }
}

extern "C" __global__ void ave_pool_backward(int n, const float* dy, int height, int width,
                                             int out_h, int out_w, int kernel_h, int kernel_w,
                                             int pad_h, int pad_w, int stride_h, int stride_w,
                                             float* dx) {
  FOR_EACH_INDEX(i, n) {
    int w = i % width;
    int h = (i / width) % height;
    int plane = i / (width * height);
    int oh0, oh1, ow0, ow1;
    covering(h, pad_h, kernel_h, stride_h, out_h, &oh0, &oh1);
    covering(w, pad_w, kernel_w, stride_w, out_w, &ow0, &ow1);
    long long base = (long long)plane * out_h * out_w;
    float g = 0.f;
    for (int oh = oh0; oh <= oh1; ++oh) {
      for (int ow = ow0; ow <= ow1; ++ow) {
        int hs, he, ws, we;
        int size = ave_window(oh, ow, height, width, kernel_h, kernel_w, pad_h, pad_w, stride_h,
                              stride_w, &hs, &he, &ws, &we);
        g = g + dy[base + oh * out_w + ow] / (float)size;
      }
    }
    dx[i] = g;
  }
}

// STOCHASTIC pooling (Caffe's StoPool* kernels): windows start at out * stride, without
// padding, clipped to the image; sums in float32 in scan order, as the CPU kernels
// (pooling_kernels.pyx) run them.
extern "C" __global__ void stochastic_pool_forward_train(int n, const float* x, int height,
                                                         int width, int out_h, int out_w,
                                                         int kernel_h, int kernel_w,
                                                         int stride_h, int stride_w,
                                                         const float* u, float* y, int* index) {
  FOR_EACH_INDEX(i, n) {
    int ow = i % out_w;
    int oh = (i / out_w) % out_h;
    int plane = i / (out_w * out_h);
    int hs = oh * stride_h, ws = ow * stride_w;
    int he = min(hs + kernel_h, height), we = min(ws + kernel_w, width);
    const float* p = x + (long long)plane * height * width;
    float total = 0.f;
    for (int h = hs; h < he; ++h)
      for (int w = ws; w < we; ++w) total = total + p[h * width + w];
    // The first position whose running sum reaches u * sum; the last one where none does
    // (a negative sum; Caffe leaves the output unwritten there).
    float threshold = u[i] * total;
    int pick = (he - 1) * width + we - 1;
    total = 0.f;
    bool found = false;
    for (int h = hs; h < he && !found; ++h) {
      for (int w = ws; w < we; ++w) {
        total = total + p[h * width + w];
        if (total >= threshold) {
          pick = h * width + w;
          found = true;
          break;
        }
      }
    }
    y[i] = p[pick];
    index[i] = pick;
  }
}

extern "C" __global__ void stochastic_pool_forward_test(int n, const float* x, int height,
                                                        int width, int out_h, int out_w,
                                                        int kernel_h, int kernel_w,
                                                        int stride_h, int stride_w, float* y,
                                                        float* window_sum) {
  FOR_EACH_INDEX(i, n) {
    int ow = i % out_w;
    int oh = (i / out_w) % out_h;
    int plane = i / (out_w * out_h);
    int hs = oh * stride_h, ws = ow * stride_w;
    int he = min(hs + kernel_h, height), we = min(ws + kernel_w, width);
    const float* p = x + (long long)plane * height * width;
    float total = 0.f, squares = 0.f;
    for (int h = hs; h < he; ++h) {
      for (int w = ws; w < we; ++w) {
        float v = p[h * width + w];
        total = total + v;
        squares = squares + v * v;
      }
    }
    y[i] = total > 0.f ? squares / total : 0.f;
    window_sum[i] = total;
  }
}

// The gradient of the test-time weighted average: each pixel gathers dy * ((2x - y) / sum)
// from the windows (with a positive sum) that hold it, in output order, from 0.
extern "C" __global__ void stochastic_pool_backward_test(int n, const float* dy, const float* x,
                                                         const float* y, const float* window_sum,
                                                         int height, int width, int out_h,
                                                         int out_w, int kernel_h, int kernel_w,
                                                         int stride_h, int stride_w, float* dx) {
  FOR_EACH_INDEX(i, n) {
    int w = i % width;
    int h = (i / width) % height;
    int plane = i / (width * height);
    int oh0, oh1, ow0, ow1;
    covering(h, 0, kernel_h, stride_h, out_h, &oh0, &oh1);
    covering(w, 0, kernel_w, stride_w, out_w, &ow0, &ow1);
    long long base = (long long)plane * out_h * out_w;
    float v = x[i];
    float g = 0.f;
    for (int oh = oh0; oh <= oh1; ++oh) {
      for (int ow = ow0; ow <= ow1; ++ow) {
        long long o = base + oh * out_w + ow;
        float s = window_sum[o];
        if (!(s > 0.f)) continue;
        float t = 2.f * v - y[o];
        g = g + dy[o] * (t / s);
      }
    }
    dx[i] = g;
  }
}
