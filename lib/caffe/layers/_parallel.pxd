# How many OpenMP threads a CPU kernel of the layers uses (cimported by the .pyx kernels).
from openmp cimport omp_get_max_threads

cdef enum:
    PARALLEL_MIN_WORK = 1 << 16  # elements below which a call runs on the calling thread


# Waking threads costs more than small work gains, and on a busy machine a parallel region can
# wait a whole scheduler slice for its second thread.
cdef inline int threads_for(Py_ssize_t work) noexcept nogil:
    return 1 if work < PARALLEL_MIN_WORK else omp_get_max_threads()
