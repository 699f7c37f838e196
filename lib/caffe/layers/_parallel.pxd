# How many OpenMP threads a CPU kernel uses (cimported by the .pyx kernels: threads_for with the
# element-wise threshold below, threads_above with a file's own).
from openmp cimport omp_get_max_threads

cdef enum:
    # Elements below which a call runs on the calling thread: about a millisecond of
    # one-operation-per-element work. Waking a second thread costs microseconds on a quiet
    # machine, but on a busy one a parallel region can wait a whole scheduler slice for it, and a
    # ResNet runs two hundred of these kernels per image.
    PARALLEL_MIN_WORK = 1 << 20


cdef inline int threads_above(Py_ssize_t work, Py_ssize_t min_work) noexcept nogil:
    # The calling thread alone for less than min_work elements, else every OpenMP thread (each
    # kernel file picks its own threshold for the work its loops do per element).
    return 1 if work < min_work else omp_get_max_threads()


cdef inline int threads_for(Py_ssize_t work) noexcept nogil:
    return threads_above(work, PARALLEL_MIN_WORK)


# Work cut into blocks of `block` elements (the unit a dynamic schedule hands out): how many
# blocks cover n elements, and the length of block b (the last may be short).
cdef inline Py_ssize_t blocks(Py_ssize_t n, Py_ssize_t block) noexcept nogil:
    return (n + block - 1) // block


cdef inline Py_ssize_t block_len(Py_ssize_t b, Py_ssize_t n, Py_ssize_t block) noexcept nogil:
    return block if (b + 1) * block <= n else n - b * block
