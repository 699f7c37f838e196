// im2col / col2im for any number of spatial axes, and the per-channel bias of the convolution
// layers' general path (lib/caffe/layers/base_conv.py); the device twins of
// lib/caffe/layers/im2col_nd.pyx. A geometry is the int array
// [N, image shape (N), output shape (N), kernel (N), pad (N), stride (N), dilation (N)].
#include "common.cuh"

#define IM2COL_MAX_AXES 32  // Caffe's kMaxBlobAxes

// One thread per column entry: row (channel, tap) and column (output position) select the
// image value, or 0 in the padding.
extern "C" __global__ void im2col_nd(int n, const int* geometry, int channels,
                                     const float* image, float* col) {
  const int axes = geometry[0];
  const int* image_shape = geometry + 1;
  const int* out_shape = image_shape + axes;
  const int* kernel = out_shape + axes;
  const int* pad = kernel + axes;
  const int* stride = pad + axes;
  const int* dilation = stride + axes;
  long long taps = 1, out_count = 1, image_count = 1;
  for (int d = 0; d < axes; ++d) {
    taps *= kernel[d];
    out_count *= out_shape[d];
    image_count *= image_shape[d];
  }
  FOR_EACH_INDEX(i, n) {
    long long row = i / out_count, j = i - row * out_count;
    long long c = row / taps, t = row - c * taps;
    long long index = 0, scale = 1;
    bool inside = true;
    for (int d = axes - 1; d >= 0; --d) {
      long long pos = j % out_shape[d];
      long long tap = t % kernel[d];
      j /= out_shape[d];
      t /= kernel[d];
      long long v = pos * stride[d] - pad[d] + tap * dilation[d];
      if (v < 0 || v >= image_shape[d]) inside = false;
      index += v * scale;
      scale *= image_shape[d];
    }
    col[i] = inside ? image[c * image_count + index] : 0.f;
  }
}

// One thread per image element: the sum of the column entries taken from it, added in tap
// order starting from 0 (the CPU col2im's order, so the float32 sums agree bit for bit).
extern "C" __global__ void col2im_nd(int n, const int* geometry, int channels, const float* col,
                                     float* image) {
  const int axes = geometry[0];
  const int* image_shape = geometry + 1;
  const int* out_shape = image_shape + axes;
  const int* kernel = out_shape + axes;
  const int* pad = kernel + axes;
  const int* stride = pad + axes;
  const int* dilation = stride + axes;
  long long taps = 1, out_count = 1, image_count = 1;
  for (int d = 0; d < axes; ++d) {
    taps *= kernel[d];
    out_count *= out_shape[d];
    image_count *= image_shape[d];
  }
  FOR_EACH_INDEX(i, n) {
    long long c = i / image_count, p = i - c * image_count;
    long long pixel[IM2COL_MAX_AXES];
    for (int d = axes - 1; d >= 0; --d) {
      pixel[d] = p % image_shape[d];
      p /= image_shape[d];
    }
    float sum = 0.f;
    for (long long t = 0; t < taps; ++t) {
      long long rest = t, j = 0, scale = 1;
      bool hit = true;
      for (int d = axes - 1; d >= 0; --d) {
        long long tap = rest % kernel[d];
        rest /= kernel[d];
        long long v = pixel[d] + pad[d] - tap * dilation[d];
        if (v < 0 || v % stride[d] != 0 || v / stride[d] >= out_shape[d]) {
          hit = false;
          break;
        }
        j += (v / stride[d]) * scale;
        scale *= out_shape[d];
      }
      if (hit) sum = sum + col[(c * taps + t) * out_count + j];
    }
    image[i] = sum;
  }
}

// y[n, c, s] += b[c] over a (num, channels, spatial) blob.
extern "C" __global__ void add_channel_bias(int n, int spatial, int channels, const float* b,
                                            float* y) {
  FOR_EACH_INDEX(i, n) { y[i] = y[i] + b[(i / spatial) % channels]; }
}

// db[c] += the sum of dy[k, c, :] for each image k in turn (one thread per channel; Caffe adds
// each image's sum to the bias gradient).
extern "C" __global__ void channel_bias_grad(int channels, int num, int spatial, const float* dy,
                                             float* db) {
  FOR_EACH_INDEX(c, channels) {
    float total = db[c];
    for (int k = 0; k < num; ++k) {
      const float* plane = dy + ((long long)k * channels + c) * spatial;
      float s = 0.f;
      for (int j = 0; j < spatial; ++j) s = s + plane[j];
      total = total + s;
    }
    db[c] = total;
  }
}
