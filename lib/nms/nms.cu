// Greedy non-maximum suppression in two kernels (lib/nms/gpu_nms.py drives them; the CPU
// reference is lib/nms/cpu_nms.pyx, whose float32 path this reproduces bit for bit).
//
// Boxes arrive sorted by score (highest first). nms_mask compares every box with every later
// box, a 64 x 64 tile per block, and sets bit j of mask[i][j / 64] when their IoU exceeds the
// threshold. nms_select then makes the greedy pass in sorted order: a box is kept unless a kept
// box before it set its bit.
#define NMS_TILE 64

// max and min as cpu_nms's Cython code evaluates them (the second argument wins only when
// strictly greater / smaller), so even NaN coordinates are treated the same.
__device__ __forceinline__ float later_if_greater(float a, float b) { return b > a ? b : a; }
__device__ __forceinline__ float later_if_smaller(float a, float b) { return b < a ? b : a; }

// IoU with the release's +1 widths, in float32, in cpu_nms's order of operations (the kernels
// compile without fused multiply-add). A zero union gives NaN, which never exceeds the threshold.
__device__ __forceinline__ float iou(const float* a, float area_a, const float* b, float area_b) {
  float x1 = later_if_greater(a[0], b[0]);
  float y1 = later_if_greater(a[1], b[1]);
  float x2 = later_if_smaller(a[2], b[2]);
  float y2 = later_if_smaller(a[3], b[3]);
  float w = later_if_greater(0.f, x2 - x1 + 1.f);
  float h = later_if_greater(0.f, y2 - y1 + 1.f);
  float inter = w * h;
  return inter / (area_a + area_b - inter);
}

// grid (col_blocks, col_blocks), block NMS_TILE threads: block (x, y) compares the boxes of row
// tile y (one per thread) with those of column tile x. boxes: (n, 4) x1 y1 x2 y2, sorted;
// areas: (n,); mask: (n, col_blocks) 64-bit words. Tiles left of the diagonal are never read.
extern "C" __global__ void nms_mask(int n, const float* boxes, const float* areas, float thresh,
                                    unsigned long long* mask) {
  int col_blocks = (n + NMS_TILE - 1) / NMS_TILE;
  int row_tile = blockIdx.y, col_tile = blockIdx.x;
  if (col_tile < row_tile) return;
  int col_size = min(n - col_tile * NMS_TILE, NMS_TILE);
  int row_size = min(n - row_tile * NMS_TILE, NMS_TILE);

  __shared__ float col_boxes[NMS_TILE * 4];
  __shared__ float col_areas[NMS_TILE];
  int t = threadIdx.x;
  if (t < col_size) {
    int j = col_tile * NMS_TILE + t;
    for (int k = 0; k < 4; ++k) col_boxes[t * 4 + k] = boxes[(long long)j * 4 + k];
    col_areas[t] = areas[j];
  }
  __syncthreads();
  if (t >= row_size) return;

  int i = row_tile * NMS_TILE + t;
  const float* box = boxes + (long long)i * 4;
  float area = areas[i];
  unsigned long long bits = 0;
  for (int k = (row_tile == col_tile) ? t + 1 : 0; k < col_size; ++k) {
    if (iou(box, area, col_boxes + k * 4, col_areas[k]) > thresh) bits |= 1ULL << k;
  }
  mask[(long long)i * col_blocks + col_tile] = bits;
}

// One block; dynamic shared memory holds col_blocks words of "suppressed" bits. keep[i] = 1 for
// the boxes the greedy pass keeps (sorted order), else 0.
extern "C" __global__ void nms_select(int n, const unsigned long long* mask, unsigned char* keep) {
  extern __shared__ unsigned long long suppressed[];
  int col_blocks = (n + NMS_TILE - 1) / NMS_TILE;
  for (int w = threadIdx.x; w < col_blocks; w += blockDim.x) suppressed[w] = 0ULL;
  __syncthreads();
  for (int i = 0; i < n; ++i) {
    int word = i / NMS_TILE;
    bool kept = !((suppressed[word] >> (i % NMS_TILE)) & 1ULL);
    __syncthreads();  // every thread has read the bit before any thread adds to its word
    if (kept) {
      const unsigned long long* row = mask + (long long)i * col_blocks;
      for (int w = word + threadIdx.x; w < col_blocks; w += blockDim.x) suppressed[w] |= row[w];
    }
    if (threadIdx.x == 0) keep[i] = kept ? 1 : 0;
    __syncthreads();
  }
}
