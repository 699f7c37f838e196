# How many OpenMP threads an element-wise CPU kernel of the layers uses (cimported by the .pyx
# kernels of BatchNorm, Scale and Bias).
from openmp cimport omp_get_max_threads

cdef enum:
    # Elements below which a call runs on the calling thread: about a millisecond of
    # one-operation-per-element work. Waking a second thread costs microseconds on a quiet
    # machine, but on a busy one a parallel region can wait a whole scheduler slice for it, and a
    # ResNet runs two hundred of these kernels per image.
    PARALLEL_MIN_WORK = 1 << 20


cdef inline int threads_for(Py_ssize_t work) noexcept nogil:
    return 1 if work < PARALLEL_MIN_WORK else omp_get_max_threads()
