"""NMS on the CPU (Cython) or on a GPU (PyCUDA), chosen by the caller."""
import warnings

from utils.extensions import load_extension

_cpu_nms = load_extension('nms.cpu_nms').cpu_nms


def nms(dets, thresh, gpu_id=None):
    """Greedy NMS over dets (N, 5): x1, y1, x2, y2, score; drops boxes whose IoU with a
    higher-scoring kept box is > thresh. Returns the kept indices, highest score first.

    gpu_id None runs cpu_nms; a device id runs gpu_nms there (cpu_nms, with a warning, when
    gpu_nms cannot be imported: no pycuda).
    """
    if len(dets) == 0:
        return []
    if gpu_id is not None:
        gpu_nms = _gpu_nms()
        if gpu_nms is not None:
            return gpu_nms(dets, thresh, device_id=gpu_id)
    return _cpu_nms(dets, thresh)


def runtime_gpu():
    """The runtime's device id when it runs on a GPU, else None: where GPU NMS belongs."""
    try:
        import caffe.common
        if caffe.common.mode() == caffe.common.GPU:
            return caffe.common.device()
    except Exception:  # a runtime that cannot even report its mode is not running on a GPU
        pass
    return None


def _gpu_nms():
    # Imported only here so CPU-only machines never load pycuda.
    try:
        from nms.gpu_nms import gpu_nms
    except ImportError as e:
        # The warnings module shows this once per process under its default filter.
        warnings.warn('GPU NMS unavailable (%s); using cpu_nms' % e, RuntimeWarning)
        return None
    return gpu_nms
