#!/usr/bin/env python3
"""Does a matrix product's result depend on the thread count? For each shape, computes the same
float32 product with numpy's OpenBLAS at 1 thread and at each of --threads, and through caffe.gemm
(the runtime's products) at each thread count, and prints how many elements differ from the
1-thread result (and the largest difference relative to the result's largest magnitude).

    python3 tools/gemm_threads.py                          # this CPU's OpenBLAS kernels
    OPENBLAS_CORETYPE=SkylakeX python3 tools/gemm_threads.py --threads 2 4

Shapes (m, n, k: an m x k by k x n product) default to a few of the toy and ZF nets'. Each
thread count of caffe.gemm runs in a process of its own (OMP_NUM_THREADS), since OpenMP reads it
once; numpy's OpenBLAS is switched in-process (openblas_set_num_threads).
"""
import argparse
import json
import os
import subprocess
import sys

import _init_paths  # noqa: F401  (lib/ on sys.path; before numpy, as caffe/blas_threads.py asks)
import numpy as np

SHAPES = ['96x2000x27', '32x4980x216', '32x216x4980', '64x1000x576', '256x2400x4608',
          '128x4096x9216', '2304x900x256', '1000x1000x1000']


def products(shapes, seed=0):
    rng = np.random.default_rng(seed)
    for m, n, k in shapes:
        yield (m, n, k), rng.standard_normal((m, k), dtype=np.float32), \
            rng.standard_normal((k, n), dtype=np.float32)


def gemm_results(shapes):
    """caffe.gemm's products of `shapes` in this process (at its OMP_NUM_THREADS)."""
    from caffe.gemm import matmul
    out = []
    for (m, n, k), a, b in products(shapes):
        c = np.empty((m, n), np.float32)
        out.append(matmul(a, b, c))
    return out


def compare(reference, other):
    differ = int((reference != other).sum())
    scale = float(np.abs(reference).max()) or 1.0
    return differ, float(np.abs(reference - other).max()) / scale


def parse_shape(text):
    try:
        m, n, k = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError('a shape is MxNxK, e.g. 96x2000x27, not %r' % text)
    return m, n, k


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--shapes', nargs='+', type=parse_shape,
                        default=[parse_shape(s) for s in SHAPES])
    parser.add_argument('--threads', nargs='+', type=int, default=[2, 3, 4],
                        help='thread counts compared with 1 (default: 2 3 4)')
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # caffe.gemm's results at this process's OMP_NUM_THREADS, as .npy to stdout
        np.save(sys.stdout.buffer, np.concatenate([c.ravel() for c in gemm_results(args.shapes)]))
        return

    from caffe import gemm
    from caffe.blas_threads import numpy_openblas
    import ctypes
    found = numpy_openblas()
    if found is None:
        sys.exit("numpy's BLAS is not an OpenBLAS this tool can set the threads of")
    set_threads = ctypes.CFUNCTYPE(None, ctypes.c_int64 if found[4] else ctypes.c_int)(found[3])
    lib = ctypes.CDLL(found[0])
    corename = next((getattr(lib, name) for name in ('scipy_openblas_get_corename64_',
                                                     'openblas_get_corename64_',
                                                     'openblas_get_corename')
                     if hasattr(lib, name)), None)
    if corename is not None:
        corename.restype = ctypes.c_char_p
        print('numpy\'s OpenBLAS: %s, kernels %s' % (found[0], corename().decode()))

    def numpy_at(threads):
        set_threads(threads)
        try:
            return [a @ b for _, a, b in products(args.shapes)]
        finally:
            set_threads(1)

    def gemm_at(threads):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        out = subprocess.run([sys.executable, os.path.abspath(__file__), '--child', '--shapes']
                             + ['%dx%dx%d' % s for s in args.shapes], env=env, check=True,
                             stdout=subprocess.PIPE).stdout
        import io
        flat = np.load(io.BytesIO(out))
        pieces, start = [], 0
        for m, n, _ in args.shapes:
            pieces.append(flat[start:start + m * n].reshape(m, n))
            start += m * n
        return pieces

    rows = []
    for name, run in (('numpy (OpenBLAS threads)', numpy_at), ('caffe.gemm', gemm_at)):
        base = run(1)
        for threads in args.threads:
            for shape, ref, other in zip(args.shapes, base, run(threads)):
                differ, rel = compare(ref, other)
                rows.append({'product': name, 'shape': list(shape), 'threads': threads,
                             'elements_differing': differ, 'elements': ref.size,
                             'max_relative_difference': rel})
    print('%-26s %-18s %8s %22s %10s' % ('product', 'm x n x k', 'threads',
                                         'elements != 1 thread', 'max rel'))
    for r in rows:
        print('%-26s %-18s %8d %22s %10.2g'
              % (r['product'], 'x'.join(str(v) for v in r['shape']), r['threads'],
                 '%d of %d' % (r['elements_differing'], r['elements']),
                 r['max_relative_difference']))
    del gemm
    return rows


if __name__ == '__main__':
    main()
