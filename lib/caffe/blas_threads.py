"""The runtime's threads: one pool of OpenMP threads, sized to the cores the process may use and
sleeping between parallel regions, and numpy's OpenBLAS held at one thread (caffe.gemm runs the
products on the OpenMP threads).

The Cython kernels and the products (caffe.gemm) run on libgomp's threads: OMP_NUM_THREADS,
else one per core this process may use (its CPU affinity, which libgomp counts itself, and its
cgroup's CPU quota where one is set, which libgomp ignores: `available_cores`). With libgomp's
default wait policy a thread keeps spinning for a while (GOMP_SPINCOUNT, 300000 pause loops:
milliseconds) after each parallel region and holds a core another process, or this one's next
region, could use; so unless the user chose a policy the threads sleep as soon as a region ends
(OMP_WAIT_POLICY=PASSIVE), and the kernels only go parallel for work long enough to pay for
waking them. libgomp reads both variables once, when it is loaded: `import caffe` sets them
(`prepare_openmp`) before any of the runtime's extensions loads it.

OpenBLAS's own threads would be a second pool, and the wrong kind for a shared machine: its
level-3 driver splits a product by the thread count, and the threads wait for each other's packed
panels by spinning (sched_yield loops, not bounded by OPENBLAS_THREAD_TIMEOUT), so a thread whose
partner lost its core burns its own core waiting (docs/cpu_performance.md has the profile).
caffe.gemm holds it at one thread (`numpy_openblas` finds the calls) and hands the parts of a
product to the OpenMP threads instead.

The workers OpenBLAS starts when numpy loads it are then never woken, but they poll for work for
OPENBLAS_THREAD_TIMEOUT after they start (2^28 clock cycles, about 0.1 s, by default): `import
caffe` and the tools (tools/_init_paths.py) ask for 2^20 cycles where numpy is not loaded yet,
unless the user set the variable.
"""
import ctypes
import math
import os
import sys
import warnings

SPIN_EXPONENT = 20

# (cblas_sgemm, get_num_threads, set_num_threads, 64-bit integers): numpy's wheels (numpy 2 with
# scipy-openblas64, numpy 1.x with openblas64_), then OpenBLAS's plain names (a build against a
# system or conda OpenBLAS).
SYMBOLS = (
    ('scipy_cblas_sgemm64_', 'scipy_openblas_get_num_threads64_',
     'scipy_openblas_set_num_threads64_', True),
    ('cblas_sgemm64_', 'openblas_get_num_threads64_', 'openblas_set_num_threads64_', True),
    ('scipy_cblas_sgemm', 'scipy_openblas_get_num_threads', 'scipy_openblas_set_num_threads',
     False),
    ('cblas_sgemm', 'openblas_get_num_threads', 'openblas_set_num_threads', False),
)


def ask_before_numpy(exponent=SPIN_EXPONENT):
    """Sets OPENBLAS_THREAD_TIMEOUT to exponent (unless the user set it) if numpy is not loaded
    yet. Returns whether numpy was still to load."""
    if 'numpy' in sys.modules:
        return False
    os.environ.setdefault('OPENBLAS_THREAD_TIMEOUT', str(int(exponent)))
    return True


def opencv_on_the_calling_thread():
    """OpenCV's image functions (the data layer's and im_detect's resizing) run on the thread
    that calls them, unless the user set OPENCV_FOR_THREADS_NUM: OpenCV's own pool is one more
    beside the OpenMP threads, and its workers wait for the next job by spinning (sched_yield
    loops), on the cores the net's threads need. OpenCV reads the variable when it loads; where it
    is loaded already, its thread count is set directly."""
    if 'OPENCV_FOR_THREADS_NUM' in os.environ:
        return
    cv2 = sys.modules.get('cv2')
    if cv2 is None:
        os.environ['OPENCV_FOR_THREADS_NUM'] = '1'
    elif hasattr(cv2, 'setNumThreads'):
        cv2.setNumThreads(1)


def _openblas_paths():
    try:
        with open('/proc/self/maps') as f:
            paths = {line.split()[-1] for line in f if 'openblas' in line.lower()}
    except OSError:  # not Linux
        return []
    return sorted(p for p in paths if '.so' in os.path.basename(p))


def numpy_openblas():
    """(library path, sgemm address, get_num_threads address, set_num_threads address, ilp64)
    of numpy's OpenBLAS, or None where numpy's BLAS is something else (MKL, Accelerate) or
    exports none of SYMBOLS."""
    import numpy  # noqa: F401  (loads numpy's BLAS)
    for path in _openblas_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for names in SYMBOLS:
            if all(hasattr(lib, name) for name in names[:3]):
                addresses = [ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
                             for name in names[:3]]
                return (path, *addresses, names[3])
    return None


def affinity_cores():
    """CPUs this process may run on (its affinity mask; all of them where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _cgroup_quota(root, proc_cgroup):
    # cgroup v2: <root>/<path>/cpu.max holds "quota period" or "max period"; v1: the cpu
    # controller's cpu.cfs_quota_us (-1: none) and cpu.cfs_period_us. The tightest quota of the
    # process's cgroup and its parents counts.
    try:
        with open(proc_cgroup) as f:
            entries = [line.rstrip('\n').split(':', 2) for line in f]
    except OSError:
        return None
    quotas = []
    for _, controllers, path in (e for e in entries if len(e) == 3):
        v2 = controllers == ''
        if not v2 and 'cpu' not in controllers.split(','):
            continue
        base = root if v2 else os.path.join(root, 'cpu')
        parts = [p for p in path.split('/') if p]
        for depth in range(len(parts), -1, -1):
            folder = os.path.join(base, *parts[:depth])
            try:
                if v2:
                    with open(os.path.join(folder, 'cpu.max')) as f:
                        quota, period = f.read().split()[:2]
                    if quota != 'max':
                        quotas.append(int(quota) / int(period))
                else:
                    with open(os.path.join(folder, 'cpu.cfs_quota_us')) as f:
                        quota = int(f.read())
                    with open(os.path.join(folder, 'cpu.cfs_period_us')) as f:
                        period = int(f.read())
                    if quota > 0 and period > 0:
                        quotas.append(quota / period)
            except (OSError, ValueError):
                continue
    return min(quotas) if quotas else None


def available_cores(root='/sys/fs/cgroup', proc_cgroup='/proc/self/cgroup'):
    """Cores this process may use: its CPU affinity, and no more than its cgroup's CPU quota
    (a container started with --cpus=2 on a 64-core machine gets 2), rounded up."""
    cores = affinity_cores()
    quota = _cgroup_quota(root, proc_cgroup)
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return cores


def _libgomp_loaded():
    try:
        with open('/proc/self/maps') as f:
            return any('libgomp' in line for line in f)
    except OSError:  # not Linux: nothing to tell
        return False


def prepare_openmp():
    """Sets OMP_WAIT_POLICY=PASSIVE and, where the cgroup's CPU quota is below the affinity,
    OMP_NUM_THREADS, unless the user set them; warns where libgomp is loaded already (another
    library loaded it first: the variables come too late)."""
    if 'OMP_WAIT_POLICY' not in os.environ and 'GOMP_SPINCOUNT' not in os.environ:
        if _libgomp_loaded():
            warnings.warn('libgomp was loaded before caffe, with its default (spinning) wait '
                          'policy, which holds cores other threads and processes need; set '
                          'OMP_WAIT_POLICY=PASSIVE in the environment (see '
                          'docs/cpu_performance.md)', RuntimeWarning, stacklevel=3)
        os.environ['OMP_WAIT_POLICY'] = 'PASSIVE'
    if 'OMP_NUM_THREADS' not in os.environ and available_cores() < affinity_cores():
        os.environ['OMP_NUM_THREADS'] = str(available_cores())
