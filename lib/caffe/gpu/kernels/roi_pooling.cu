// RoI max pooling (the Fast R-CNN fork's ROIPooling; see lib/caffe/layers/roi_pooling.py and
// roi_pooling_kernels.pyx, the CPU reference). Coordinate arithmetic is float32, as the fork's,
// so bin edges land on the same pixels.
#include <cfloat>

#include "common.cuh"

// The RoI's corners on the feature map (rounded half away from zero) and its bin sizes; a box
// whose end lies before its start still pools one pixel.
struct RoiBox {
  int start_w, start_h, end_w, end_h;
  float bin_h, bin_w;
};

__device__ __forceinline__ RoiBox roi_box(const float* roi, float scale, int pooled_h,
                                          int pooled_w) {
  RoiBox b;
  b.start_w = (int)roundf(roi[1] * scale);
  b.start_h = (int)roundf(roi[2] * scale);
  b.end_w = (int)roundf(roi[3] * scale);
  b.end_h = (int)roundf(roi[4] * scale);
  int roi_h = max(b.end_h - b.start_h + 1, 1);
  int roi_w = max(b.end_w - b.start_w + 1, 1);
  b.bin_h = (float)roi_h / (float)pooled_h;
  b.bin_w = (float)roi_w / (float)pooled_w;
  return b;
}

// One thread per output (roi, channel, ph, pw): the max of its bin (first maximum in row-major
// order) and where it is (h * width + w), or 0 and -1 for an empty bin.
extern "C" __global__ void roi_pool_forward(int n, const float* data, int channels, int height,
                                            int width, const float* rois, float scale,
                                            int pooled_h, int pooled_w, float* top,
                                            int* argmax) {
  FOR_EACH_INDEX(i, n) {
    int pw = i % pooled_w;
    int ph = (i / pooled_w) % pooled_h;
    int c = (i / (pooled_w * pooled_h)) % channels;
    int r = i / (pooled_w * pooled_h * channels);
    const float* roi = rois + (long long)r * 5;
    int image = (int)roi[0];
    RoiBox b = roi_box(roi, scale, pooled_h, pooled_w);
    int hs = clip_int((int)floorf((float)ph * b.bin_h) + b.start_h, 0, height);
    int he = clip_int((int)ceilf((float)(ph + 1) * b.bin_h) + b.start_h, 0, height);
    int ws = clip_int((int)floorf((float)pw * b.bin_w) + b.start_w, 0, width);
    int we = clip_int((int)ceilf((float)(pw + 1) * b.bin_w) + b.start_w, 0, width);
    if (he <= hs || we <= ws) {
      top[i] = 0.f;
      argmax[i] = -1;
      continue;
    }
    const float* plane = data + ((long long)image * channels + c) * height * width;
    float best = -FLT_MAX;
    int where = -1;
    for (int h = hs; h < he; ++h) {
      for (int w = ws; w < we; ++w) {
        if (plane[h * width + w] > best) {
          best = plane[h * width + w];
          where = h * width + w;
        }
      }
    }
    top[i] = best;
    argmax[i] = where;
  }
}

// One thread per feature element (image, channel, h, w) gathers the diffs of the bins that took
// their max from it, with the fork's tests: the pixel must lie inside the RoI's rounded box, and
// the bin must be among those the pixel's offset maps back to (float32 division, so rounding at
// bin edges drops what the fork drops). RoIs, then bin rows, then bin columns: the order the
// CPU loop adds them in.
extern "C" __global__ void roi_pool_backward(int n, const float* top_diff, const int* argmax,
                                             int num_rois, const float* rois, float scale,
                                             int channels, int height, int width, int pooled_h,
                                             int pooled_w, float* bottom_diff) {
  FOR_EACH_INDEX(i, n) {
    int w = i % width;
    int h = (i / width) % height;
    int c = (i / (width * height)) % channels;
    int image = i / (width * height * channels);
    int self = h * width + w;
    float g = 0.f;
    for (int r = 0; r < num_rois; ++r) {
      const float* roi = rois + (long long)r * 5;
      if ((int)roi[0] != image) continue;
      RoiBox b = roi_box(roi, scale, pooled_h, pooled_w);
      if (w < b.start_w || w > b.end_w || h < b.start_h || h > b.end_h) continue;
      int ph0 = clip_int((int)floorf((float)(h - b.start_h) / b.bin_h), 0, pooled_h);
      int ph1 = clip_int((int)ceilf((float)(h - b.start_h + 1) / b.bin_h), 0, pooled_h);
      int pw0 = clip_int((int)floorf((float)(w - b.start_w) / b.bin_w), 0, pooled_w);
      int pw1 = clip_int((int)ceilf((float)(w - b.start_w + 1) / b.bin_w), 0, pooled_w);
      long long base = ((long long)r * channels + c) * pooled_h * pooled_w;
      for (int ph = ph0; ph < ph1; ++ph) {
        for (int pw = pw0; pw < pw1; ++pw) {
          if (argmax[base + ph * pooled_w + pw] == self) {
            g = g + top_diff[base + ph * pooled_w + pw];
          }
        }
      }
    }
    bottom_diff[i] = g;
  }
}
