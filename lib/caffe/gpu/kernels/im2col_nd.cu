// im2col / col2im for any number of spatial axes, and the per-channel bias of the convolution
// layers' general path (lib/caffe/layers/base_conv.py); the device twins of
// lib/caffe/layers/im2col_nd.pyx. A geometry is the int array
// [N, image shape (N), output shape (N), kernel (N), pad (N), stride (N), dilation (N)].
#include "common.cuh"

#define IM2COL_MAX_AXES 32  // Caffe's kMaxBlobAxes

struct Im2colGeometry {
  int axes;
  const int *image_shape, *out_shape, *kernel, *pad, *stride, *dilation;
  long long taps, out_count, image_count;
};

__device__ Im2colGeometry im2col_geometry(const int* g) {
  Im2colGeometry r;
  r.axes = g[0];
  r.image_shape = g + 1;
  r.out_shape = r.image_shape + r.axes;
  r.kernel = r.out_shape + r.axes;
  r.pad = r.kernel + r.axes;
  r.stride = r.pad + r.axes;
  r.dilation = r.stride + r.axes;
  r.taps = r.out_count = r.image_count = 1;
  for (int d = 0; d < r.axes; ++d) {
    r.taps *= r.kernel[d];
    r.out_count *= r.out_shape[d];
    r.image_count *= r.image_shape[d];
  }
  return r;
}

// One thread per column entry: row (channel, tap) and column (output position) select the
// image value, or 0 in the padding.
extern "C" __global__ void im2col_nd(int n, const int* geometry, int channels,
                                     const float* image, float* col) {
  const Im2colGeometry g = im2col_geometry(geometry);
  FOR_EACH_INDEX(i, n) {
    long long row = i / g.out_count, j = i - row * g.out_count;
    long long c = row / g.taps, t = row - c * g.taps;
    long long index = 0, scale = 1;
    bool inside = true;
    for (int d = g.axes - 1; d >= 0; --d) {
      long long pos = j % g.out_shape[d];
      long long tap = t % g.kernel[d];
      j /= g.out_shape[d];
      t /= g.kernel[d];
      long long v = pos * g.stride[d] - g.pad[d] + tap * g.dilation[d];
      if (v < 0 || v >= g.image_shape[d]) inside = false;
      index += v * scale;
      scale *= g.image_shape[d];
    }
    col[i] = inside ? image[c * g.image_count + index] : 0.f;
  }
}

// One thread per image element: the sum of the column entries taken from it, added in tap
// order starting from 0 (the CPU col2im's order, so the float32 sums agree bit for bit).
extern "C" __global__ void col2im_nd(int n, const int* geometry, int channels, const float* col,
                                     float* image) {
  const Im2colGeometry g = im2col_geometry(geometry);
  FOR_EACH_INDEX(i, n) {
    long long c = i / g.image_count, p = i - c * g.image_count;
    long long pixel[IM2COL_MAX_AXES];
    for (int d = g.axes - 1; d >= 0; --d) {
      pixel[d] = p % g.image_shape[d];
      p /= g.image_shape[d];
    }
    float sum = 0.f;
    for (long long t = 0; t < g.taps; ++t) {
      long long rest = t, j = 0, scale = 1;
      bool hit = true;
      for (int d = g.axes - 1; d >= 0; --d) {
        long long tap = rest % g.kernel[d];
        rest /= g.kernel[d];
        long long v = pixel[d] + g.pad[d] - tap * g.dilation[d];
        if (v < 0 || v % g.stride[d] != 0 || v / g.stride[d] >= g.out_shape[d]) {
          hit = false;
          break;
        }
        j += (v / g.stride[d]) * scale;
        scale *= g.out_shape[d];
      }
      if (hit) sum = sum + col[(c * g.taps + t) * g.out_count + j];
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
