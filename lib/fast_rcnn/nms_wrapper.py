"""The release's NMS entry point: GPU NMS when the runtime runs on a GPU and cfg.USE_GPU_NMS is
set, else the Cython CPU version. Library code calls nms.dispatch.nms with the device itself."""
from fast_rcnn.config import cfg
from nms.dispatch import nms as _nms, runtime_gpu


def nms(dets, thresh, force_cpu=False):
    """Greedy NMS over dets (N, 5): x1, y1, x2, y2, score. Returns the kept indices, highest
    score first. Runs on the runtime's GPU when cfg.USE_GPU_NMS is set and force_cpu is not."""
    gpu_id = None if force_cpu or not cfg.USE_GPU_NMS else runtime_gpu()
    return _nms(dets, thresh, gpu_id=gpu_id)
