// Layers that move values without arithmetic (Crop, Tile, BatchReindex, Filter, Embed's rows),
// and the sums their gradients need, in the CPU path's order so results agree bit for bit.
#include "common.cuh"

#define CROP_MAX_AXES 32

// Crop: geometry = [axes, bottom shape (axes), top shape (axes), offsets (axes)]; one thread
// per top element reads the bottom element at its index plus the offsets.
__device__ long long crop_source(long long i, const int* geometry) {
  const int axes = geometry[0];
  const int* bottom_shape = geometry + 1;
  const int* top_shape = bottom_shape + axes;
  const int* offset = top_shape + axes;
  long long index = 0, scale = 1;
  for (int d = axes - 1; d >= 0; --d) {
    long long k = i % top_shape[d];
    i /= top_shape[d];
    index += (k + offset[d]) * scale;
    scale *= bottom_shape[d];
  }
  return index;
}

extern "C" __global__ void crop_forward(int n, const int* geometry, const float* x, float* y) {
  FOR_EACH_INDEX(i, n) { y[i] = x[crop_source(i, geometry)]; }
}

// The bottom diff is zeroed beforehand; each top element has its own bottom element.
extern "C" __global__ void crop_backward(int n, const int* geometry, const float* dy,
                                         float* dx) {
  FOR_EACH_INDEX(i, n) { dx[crop_source(i, geometry)] = dy[i]; }
}

// Tile: x is (outer, inner), y is (outer, tiles, inner).
extern "C" __global__ void tile_forward(int n, int inner, int tiles, const float* x, float* y) {
  FOR_EACH_INDEX(i, n) {
    long long outer = i / ((long long)tiles * inner);
    y[i] = x[outer * inner + i % inner];
  }
}

// dx[o, j] = dy[o, 0, j] + dy[o, 1, j] + ... in tile order.
extern "C" __global__ void tile_backward(int n, int inner, int tiles, const float* dy,
                                         float* dx) {
  FOR_EACH_INDEX(i, n) {
    long long outer = i / inner, j = i % inner;
    const float* src = dy + outer * tiles * inner + j;
    float s = src[0];
    for (int t = 1; t < tiles; ++t) s = s + src[(long long)t * inner];
    dx[i] = s;
  }
}

// y[r, :] = x[index[r], :] for rows of `width` values; index is a float array (a bottom blob
// of indices, as BatchReindex and Embed take them) truncated to int, as Caffe's static_cast.
extern "C" __global__ void gather_rows_float_index(int n, int width, const float* index,
                                                   const float* x, float* y) {
  FOR_EACH_INDEX(i, n) {
    long long r = i / width;
    y[i] = x[(long long)(int)index[r] * width + i % width];
  }
}

// The same with an int index (Filter's rows, found on the host).
extern "C" __global__ void gather_rows(int n, int width, const int* index, const float* x,
                                       float* y) {
  FOR_EACH_INDEX(i, n) {
    long long r = i / width;
    y[i] = x[(long long)index[r] * width + i % width];
  }
}

// Filter's backward: dx[r, :] = dy[source[r], :] where source[r] >= 0, else 0.
extern "C" __global__ void scatter_rows_or_zero(int n, int width, const int* source,
                                                const float* dy, float* dx) {
  FOR_EACH_INDEX(i, n) {
    int s = source[i / width];
    dx[i] = s < 0 ? 0.f : dy[(long long)s * width + i % width];
  }
}

// Adds rows of src into rows of dst: dst row k gets src rows order[begin[k]..begin[k+1]), in
// that order (the source rows that name k, ascending: the order of Caffe's sequential loop).
// accumulate 0 starts each dst row from 0 (BatchReindex), 1 from its value (Embed's weights).
extern "C" __global__ void scatter_add_rows(int n, int width, const int* order, const int* begin,
                                            const float* src, int accumulate, float* dst) {
  FOR_EACH_INDEX(i, n) {
    long long k = i / width, j = i % width;
    float s = accumulate ? dst[i] : 0.f;
    for (int m = begin[k]; m < begin[k + 1]; ++m) s = s + src[(long long)order[m] * width + j];
    dst[i] = s;
  }
}
