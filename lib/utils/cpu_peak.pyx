"""The machine's float32 peak, measured: a loop of independent fused multiply-adds held in
registers (no memory traffic), in the widest vectors the CPU has (AVX-512, else AVX2 + FMA,
else SSE multiplies and adds), on every OpenMP thread at once. The benchmark tools divide an
algorithm's operation count by it to print the arithmetic floor of a layer.

The vector code is compiled for its instruction set function by function (GCC's target
attribute) and chosen at run time (__builtin_cpu_supports), so the extension loads on any
x86-64 CPU; elsewhere only the portable loop exists.
"""
import time

import numpy as np

from cython.parallel cimport prange
from openmp cimport omp_get_max_threads
from posix.time cimport CLOCK_THREAD_CPUTIME_ID, clock_gettime, timespec

cdef extern from *:
    """
    #if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    #include <immintrin.h>
    #define PEAK_X86 1
    /* 12 independent chains: enough to cover 4-cycle FMA latency on 2 or 3 FMA pipes. */
    __attribute__((target("avx512f")))
    static float peak_avx512(long n) {
        __m512 b = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
        __m512 a0 = _mm512_set1_ps(1.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
        __m512 a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
        for (long i = 0; i < n; i++) {
            a0 = _mm512_fmadd_ps(a0, b, c); a1 = _mm512_fmadd_ps(a1, b, c);
            a2 = _mm512_fmadd_ps(a2, b, c); a3 = _mm512_fmadd_ps(a3, b, c);
            a4 = _mm512_fmadd_ps(a4, b, c); a5 = _mm512_fmadd_ps(a5, b, c);
            a6 = _mm512_fmadd_ps(a6, b, c); a7 = _mm512_fmadd_ps(a7, b, c);
            a8 = _mm512_fmadd_ps(a8, b, c); a9 = _mm512_fmadd_ps(a9, b, c);
            a10 = _mm512_fmadd_ps(a10, b, c); a11 = _mm512_fmadd_ps(a11, b, c);
        }
        __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                                 _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
        s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
        return _mm512_reduce_add_ps(s);
    }
    __attribute__((target("avx2,fma")))
    static float peak_avx2(long n) {
        __m256 b = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
        __m256 a0 = _mm256_set1_ps(1.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
        __m256 a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
        for (long i = 0; i < n; i++) {
            a0 = _mm256_fmadd_ps(a0, b, c); a1 = _mm256_fmadd_ps(a1, b, c);
            a2 = _mm256_fmadd_ps(a2, b, c); a3 = _mm256_fmadd_ps(a3, b, c);
            a4 = _mm256_fmadd_ps(a4, b, c); a5 = _mm256_fmadd_ps(a5, b, c);
            a6 = _mm256_fmadd_ps(a6, b, c); a7 = _mm256_fmadd_ps(a7, b, c);
            a8 = _mm256_fmadd_ps(a8, b, c); a9 = _mm256_fmadd_ps(a9, b, c);
            a10 = _mm256_fmadd_ps(a10, b, c); a11 = _mm256_fmadd_ps(a11, b, c);
        }
        __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                                 _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
        s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
        float lanes[8];
        _mm256_storeu_ps(lanes, s);
        return lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
    }
    static int peak_isa(void) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f")) return 2;
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
        return 0;
    }
    #else
    #define PEAK_X86 0
    static float peak_avx512(long n) { return 0; }
    static float peak_avx2(long n) { return 0; }
    static int peak_isa(void) { return 0; }
    #endif
    /* Portable: 8 chains of 4 floats, a multiply and an add each (2 flops). */
    static float peak_portable(long n) {
        float a[32], b = 0.9999999f, c = 1e-7f, s = 0;
        for (int j = 0; j < 32; j++) a[j] = 1.0f;
        for (long i = 0; i < n; i++)
            for (int j = 0; j < 32; j++) a[j] = a[j] * b + c;
        for (int j = 0; j < 32; j++) s += a[j];
        return s;
    }
    """
    float peak_avx512(long n) nogil
    float peak_avx2(long n) nogil
    float peak_portable(long n) nogil
    int peak_isa() nogil

ISA_NAMES = ('portable (multiply + add)', 'AVX2 + FMA', 'AVX-512')
# Floats per iteration of each loop times 2 flops (a fused multiply-add is two).
_FLOPS_PER_ITERATION = (32 * 2, 12 * 8 * 2, 12 * 16 * 2)


def instruction_set():
    """The name of the vector instructions the peak loop uses on this CPU."""
    return ISA_NAMES[peak_isa()]


cdef float _run(int isa, long n) noexcept nogil:
    if isa == 2:
        return peak_avx512(n)
    if isa == 1:
        return peak_avx2(n)
    return peak_portable(n)


cdef double _thread_seconds() noexcept nogil:
    cdef timespec t
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
    return t.tv_sec + 1e-9 * t.tv_nsec


def fp32_peak(double seconds=0.2, int repeat=3, threads=None):
    """The best of repeat runs of about `seconds` each, on `threads` OpenMP threads (default:
    all, as the kernels use), as a dict: 'gflops' (all threads together, by the wall clock),
    'gflops_cpu' (the same work over each thread's own CPU time, summed over the threads: what
    the cores do when the process has them to itself, whatever else the machine runs),
    'threads', 'isa' (the instruction set's name)."""
    cdef int isa = peak_isa()
    cdef int nthreads = omp_get_max_threads() if threads is None else int(threads)
    cdef long n = 1 << 16
    cdef int t
    cdef double t0
    # One result per thread, read afterwards, so that no loop is optimized away.
    cdef float[::1] sinks = np.zeros(max(nthreads, 1), np.float32)
    cdef double[::1] cpu = np.zeros(max(nthreads, 1))
    cdef double start, elapsed, best = 0, best_cpu = 0, flops
    # Size the loop so that one run takes about `seconds` of one thread's CPU time.
    while True:
        with nogil:
            t0 = _thread_seconds()
            sinks[0] = _run(isa, n)
            elapsed = _thread_seconds() - t0
        if elapsed > seconds / 4 or n > (1L << 40):
            break
        n *= 2
    n = <long>(n * seconds / max(elapsed, 1e-6)) + 1
    flops = n * <double>_FLOPS_PER_ITERATION[isa]
    for _ in range(repeat):
        start = time.perf_counter()
        for t in prange(nthreads, nogil=True, num_threads=nthreads, schedule='static',
                        chunksize=1):
            t0 = _thread_seconds()
            sinks[t] = _run(isa, n)
            cpu[t] = _thread_seconds() - t0
        elapsed = time.perf_counter() - start
        best = max(best, flops * nthreads / elapsed / 1e9)
        best_cpu = max(best_cpu, sum(flops / max(c, 1e-9) for c in cpu) / 1e9)
    if not np.isfinite(np.asarray(sinks)).all():
        raise ArithmeticError('the peak loop produced %s' % np.asarray(sinks))
    return {'gflops': best, 'gflops_cpu': best_cpu, 'threads': nthreads, 'isa': ISA_NAMES[isa]}
