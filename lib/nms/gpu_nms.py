"""Greedy non-maximum suppression on the GPU (kernels in nms.cu beside this file).

Same contract as nms.cpu_nms on float32 boxes: boxes are visited by descending score (a stable
sort, so ties keep their input order), and a box is dropped when its IoU with a kept box,
computed in float32 with widths x2 - x1 + 1, exceeds thresh. The sort and the box areas are
computed on the host with the same numpy calls as cpu_nms; the device builds the overlap bitmask
and makes the greedy pass. Importing this module does not touch the GPU.
"""
import os

import numpy as np

from caffe import gpu

TILE = 64                 # boxes per bitmask word (NMS_TILE in nms.cu)
SELECT_THREADS = 256
MAX_BOXES = 300000        # the greedy pass keeps one bit per box in 48 KB of shared memory

_KERNELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'nms.cu')
_mask_kernel = gpu.Kernel(_KERNELS, 'nms_mask')
_select_kernel = gpu.Kernel(_KERNELS, 'nms_select')


def gpu_nms(dets, thresh, device_id=0):
    """Greedy NMS over dets (N, 5+): x1, y1, x2, y2, score (computed in float32). Runs on GPU
    device_id (the runtime's device: caffe.set_device). Returns the kept indices as a list of
    ints, highest score first."""
    dets = np.asarray(dets)
    if dets.ndim != 2 or dets.shape[1] < 5:
        raise ValueError('gpu_nms: dets must be (N, 5) x1, y1, x2, y2, score; got shape %s'
                         % (dets.shape,))
    n = dets.shape[0]
    if n == 0:
        return []
    if n > MAX_BOXES:
        raise ValueError('gpu_nms: %d boxes; at most %d per call' % (n, MAX_BOXES))
    gpu.init(device_id)
    boxes = np.ascontiguousarray(dets[:, :5], dtype=np.float32)
    order = np.argsort(-boxes[:, 4], kind='stable')
    areas = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    sorted_boxes = gpu.to_device(np.ascontiguousarray(boxes[order, :4]))
    sorted_areas = gpu.to_device(np.ascontiguousarray(areas[order]))

    col_blocks = (n + TILE - 1) // TILE
    mask = gpu.empty((n, col_blocks), np.uint64)
    keep = gpu.empty((n,), np.uint8)
    _mask_kernel.launch((col_blocks, col_blocks), (TILE, 1, 1), np.int32(n), sorted_boxes,
                        sorted_areas, np.float32(thresh), mask)
    _select_kernel.launch((1, 1), (SELECT_THREADS, 1, 1), np.int32(n), mask, keep,
                          shared=col_blocks * 8)
    return [int(i) for i in order[keep.get().astype(bool)]]
