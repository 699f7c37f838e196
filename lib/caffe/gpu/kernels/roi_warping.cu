// RoI warping (see lib/caffe/layers/roi_warping.py and docs/roi_warping.md). The CPU reference is
// lib/caffe/layers/roi_warping_kernels.pyx: every float32 operation here is the one there, in the
// same order, and sums run in the same order, so (with --fmad=false) the results agree bit for
// bit. Shapes as there: R RoIs, C channels, H x W planes, F = samples_per_bin, PH x PW bins,
// SH = F * PH sample rows and SW = F * PW sample columns; grid (R, SW + SH) holds each RoI's
// sample columns then rows in cell-index space; argmax (R, C, PH, PW) is i * F + j of the sample
// a bin took (null for F == 1). No kernel uses atomics: each output element is written by one
// thread, and each sum is formed by one thread in a fixed order.
#include "common.cuh"

// A sample has an in-map neighbour only for p in [-1, n); NaN fails both tests.
__device__ __forceinline__ bool inside(float p, int n) { return p >= -1.f && p < (float)n; }

struct Sample {
  float value, d_dy, d_dx;
};

// The sample at (py, px), inside the map, and its derivatives along y and x; neighbours off the
// map count as 0. floorf picks the cell pair to the right/below at an integer position, so the
// derivatives there are the one-sided ones in the increasing direction.
__device__ __forceinline__ Sample bilinear(const float* plane, int H, int W, float py, float px) {
  int y0 = (int)floorf(py), x0 = (int)floorf(px);
  float ty = py - (float)y0, tx = px - (float)x0;
  float v00 = 0.f, v01 = 0.f, v10 = 0.f, v11 = 0.f;
  if (y0 >= 0) {
    if (x0 >= 0) v00 = plane[y0 * W + x0];
    if (x0 + 1 < W) v01 = plane[y0 * W + x0 + 1];
  }
  if (y0 + 1 < H) {
    if (x0 >= 0) v10 = plane[(y0 + 1) * W + x0];
    if (x0 + 1 < W) v11 = plane[(y0 + 1) * W + x0 + 1];
  }
  Sample s;
  s.value = (1.f - ty) * ((1.f - tx) * v00 + tx * v01) + ty * ((1.f - tx) * v10 + tx * v11);
  s.d_dx = (1.f - ty) * (v01 - v00) + ty * (v11 - v10);
  s.d_dy = (1.f - tx) * (v10 - v00) + tx * (v11 - v01);
  return s;
}

__device__ __forceinline__ int selected(const unsigned char* argmax, long long at) {
  return argmax != nullptr ? (int)argmax[at] : 0;
}

// One thread per (roi, k), k < SW + SH: the sample position (the +1 pixel convention: the box
// spans x1 .. x2 + 1, times scale; a sample in the middle of each of SW equal steps; -0.5 from
// map coordinates to cell-index space).
extern "C" __global__ void roi_warp_grid(int n, const float* rois, float scale, int SH, int SW,
                                         float* grid) {
  FOR_EACH_INDEX(i, n) {
    int k = i % (SW + SH);
    int r = i / (SW + SH);
    const float* roi = rois + (long long)r * 5;
    bool column = k < SW;
    float lo = column ? roi[1] : roi[2];
    float hi = column ? roi[3] : roi[4];
    int steps = column ? SW : SH;
    int j = column ? k : k - SW;
    float start = lo * scale;
    float end = (hi + 1.f) * scale;
    float step = (end - start) / (float)steps;
    grid[i] = start + ((float)j + 0.5f) * step - 0.5f;
  }
}

// One thread per output (roi, channel, ph, pw): the bin's sample, or the maximum of its F x F
// samples (first in row-major order among equals) and which one it was.
extern "C" __global__ void roi_warp_forward(int n, const float* data, int C, int H, int W,
                                            const float* rois, const float* grid, int F, int PH,
                                            int PW, float* top, unsigned char* argmax) {
  FOR_EACH_INDEX(i, n) {
    int pw = i % PW;
    int ph = (i / PW) % PH;
    int c = (i / (PW * PH)) % C;
    int r = i / (PW * PH * C);
    int SW = F * PW;
    const float* g = grid + (long long)r * (SW + F * PH);
    const float* plane = data + ((long long)(int)rois[(long long)r * 5] * C + c) * H * W;
    float m = 0.f;
    int best = 0;
    for (int a = 0; a < F; ++a) {
      float py = g[SW + ph * F + a];
      for (int b = 0; b < F; ++b) {
        float px = g[pw * F + b];
        float v = 0.f;
        if (inside(py, H) && inside(px, W)) v = bilinear(plane, H, W, py, px).value;
        if ((a == 0 && b == 0) || v > m) {
          m = v;
          best = a * F + b;
        }
      }
    }
    top[i] = m;
    if (argmax != nullptr) argmax[i] = (unsigned char)best;
  }
}

// Whether some position among count ones from p (ascending or descending: the grid is
// monotone) lies in [cell - 1, cell + 1), i.e. has `cell` as a bilinear neighbour.
__device__ __forceinline__ bool touches(const float* p, int count, int cell) {
  float first = p[0], last = p[count - 1];
  float lo = fminf(first, last), hi = fmaxf(first, last);
  return hi >= (float)(cell - 1) && lo < (float)(cell + 1);
}

// One thread per feature element (image, channel, h, w) gathers what the CPU loop scatters to
// it: for each RoI of its image in order, each bin in row-major order whose selected sample has
// (h, w) as an in-map neighbour adds diff * weight. Same terms, same order as the CPU, so the
// feature gradient is deterministic and equal to the CPU's. touches() only skips RoIs and bin
// rows/columns that cannot reach (h, w).
extern "C" __global__ void roi_warp_backward_features(int n, const float* top_diff, int R,
                                                      const float* rois, const float* grid,
                                                      int F, const unsigned char* argmax,
                                                      int C, int H, int W, int PH, int PW,
                                                      float* bottom_diff) {
  FOR_EACH_INDEX(i, n) {
    int w = i % W;
    int h = (i / W) % H;
    int c = (i / (W * H)) % C;
    int image = i / (W * H * C);
    int SW = F * PW, SH = F * PH;
    float sum = 0.f;
    for (int r = 0; r < R; ++r) {
      if ((int)rois[(long long)r * 5] != image) continue;
      const float* gx = grid + (long long)r * (SW + SH);
      const float* gy = gx + SW;
      if (!touches(gx, SW, w) || !touches(gy, SH, h)) continue;
      for (int ph = 0; ph < PH; ++ph) {
        if (!touches(gy + ph * F, F, h)) continue;
        for (int pw = 0; pw < PW; ++pw) {
          if (!touches(gx + pw * F, F, w)) continue;
          long long at = (((long long)r * C + c) * PH + ph) * PW + pw;
          int a = selected(argmax, at);
          float py = gy[ph * F + a / F];
          float px = gx[pw * F + a % F];
          if (!(inside(py, H) && inside(px, W))) continue;
          int y0 = (int)floorf(py), x0 = (int)floorf(px);
          float ty = py - (float)y0, tx = px - (float)x0;
          float wy, wx;
          if (y0 == h) {
            wy = 1.f - ty;
          } else if (y0 + 1 == h) {
            wy = ty;
          } else {
            continue;
          }
          if (x0 == w) {
            wx = 1.f - tx;
          } else if (x0 + 1 == w) {
            wx = tx;
          } else {
            continue;
          }
          sum = sum + top_diff[at] * (wy * wx);
        }
      }
    }
    bottom_diff[i] = sum;
  }
}

// One thread per (roi, channel): its sums over the bins (row-major) of diff * d(sample)/d(edge)
// for x1, y1, x2, y2 (without the factor scale), in double, into partial (R, C, 4).
extern "C" __global__ void roi_warp_backward_coords_partial(int n, const float* data,
                                                            const float* top_diff,
                                                            const float* rois, const float* grid,
                                                            int F, const unsigned char* argmax,
                                                            int C, int H, int W, int PH, int PW,
                                                            double* partial) {
  FOR_EACH_INDEX(i, n) {
    int c = i % C;
    int r = i / C;
    int SW = F * PW, SH = F * PH;
    const float* gx = grid + (long long)r * (SW + SH);
    const float* gy = gx + SW;
    const float* plane = data + ((long long)(int)rois[(long long)r * 5] * C + c) * H * W;
    double gx1 = 0, gy1 = 0, gx2 = 0, gy2 = 0;
    for (int ph = 0; ph < PH; ++ph) {
      for (int pw = 0; pw < PW; ++pw) {
        long long at = ((long long)i * PH + ph) * PW + pw;
        int a = selected(argmax, at);
        int ky = ph * F + a / F;
        int kx = pw * F + a % F;
        float py = gy[ky], px = gx[kx];
        if (!(inside(py, H) && inside(px, W))) continue;
        Sample s = bilinear(plane, H, W, py, px);
        double g = (double)top_diff[at];
        double ax = ((double)kx + 0.5) / (double)SW;
        double ay = ((double)ky + 0.5) / (double)SH;
        double d = g * (double)s.d_dx;
        gx1 = gx1 + d * (1.0 - ax);
        gx2 = gx2 + d * ax;
        d = g * (double)s.d_dy;
        gy1 = gy1 + d * (1.0 - ay);
        gy2 = gy2 + d * ay;
      }
    }
    double* out = partial + (long long)i * 4;
    out[0] = gx1;
    out[1] = gy1;
    out[2] = gx2;
    out[3] = gy2;
  }
}

// One thread per (roi, column) of the rois diff: 0 for the batch index; for x1, y1, x2, y2 the
// channels' partial sums added in channel order, times scale.
extern "C" __global__ void roi_warp_backward_coords_reduce(int n, const double* partial, int C,
                                                           float scale, float* rois_diff) {
  FOR_EACH_INDEX(i, n) {
    int col = i % 5;
    int r = i / 5;
    if (col == 0) {
      rois_diff[i] = 0.f;
      continue;
    }
    double total = 0;
    for (int c = 0; c < C; ++c) total = total + partial[((long long)r * C + c) * 4 + col - 1];
    rois_diff[i] = (float)(total * (double)scale);
  }
}
