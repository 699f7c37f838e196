"""NMS dispatch: the GPU kernel when the runtime runs on the GPU, else the Cython CPU version."""
import warnings

from fast_rcnn.config import cfg

try:
    from nms.cpu_nms import cpu_nms
except ImportError as e:
    raise ImportError('nms.cpu_nms is not built (%s); run `make cython` in the repository root'
                      % e) from e

def nms(dets, thresh, force_cpu=False):
    """Greedy NMS over dets (N, 5): x1, y1, x2, y2, score; drops boxes whose IoU with a
    higher-scoring kept box is > thresh. Returns the kept indices, highest score first.

    Runs gpu_nms on cfg.GPU_ID when cfg.USE_GPU_NMS is set, force_cpu is not, and the runtime is
    in GPU mode; otherwise (or when gpu_nms cannot be imported) cpu_nms.
    """
    if len(dets) == 0:
        return []
    if cfg.USE_GPU_NMS and not force_cpu and _runtime_on_gpu():
        gpu_nms = _gpu_nms()
        if gpu_nms is not None:
            return gpu_nms(dets, thresh, device_id=cfg.GPU_ID)
    return cpu_nms(dets, thresh)


def _runtime_on_gpu():
    try:
        import caffe.common
        return caffe.common.mode() == 'GPU'
    except Exception:  # a runtime that cannot even report its mode is not running on a GPU
        return False


def _gpu_nms():
    # Imported only here so CPU-only machines never load pycuda.
    try:
        from nms.gpu_nms import gpu_nms
    except ImportError as e:
        # The warnings module shows this once per process under its default filter.
        warnings.warn('GPU NMS unavailable (%s); using cpu_nms' % e, RuntimeWarning)
        return None
    return gpu_nms
