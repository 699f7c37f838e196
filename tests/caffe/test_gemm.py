"""caffe.gemm: products cut into parts by their shape give a float64 reference's values to float32
rounding in every layout and cut, and the same bits at every thread count."""
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from caffe import gemm
from caffe.gemm_kernels import plan

pytestmark = pytest.mark.skipif(not gemm.BOUND, reason="numpy's BLAS is not OpenBLAS")

LIB = os.path.join(os.path.dirname(__file__), '..', '..', 'lib')
# (m, n, k) whose plan cuts columns, rows, the inner dimension, or not at all
SHAPES = {'n': (96, 9000, 300), 'm': (3000, 96, 300), 'k': (40, 60, 20000), 'none': (20, 30, 40)}


def operands(rng, m, n, k, ta, tb):
    a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
    return (a.T if ta else a), (b.T if tb else b)


def check(out, expected, previous=0):
    # float32 products of k terms: each term's rounding, about k * 2^-24 relative to the scale
    scale = np.abs(expected).max() + np.abs(previous).max()
    np.testing.assert_allclose(out, previous + expected, rtol=0, atol=2e-6 * scale)


def test_the_shapes_cut_as_named():
    for split, (m, n, k) in SHAPES.items():
        cut, parts = plan(m, n, k)
        assert (parts == 1) if split == 'none' else (cut == split and parts > 1), split


@pytest.mark.parametrize('split', sorted(SHAPES))
@pytest.mark.parametrize('ta,tb', [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize('accumulate', [False, True])
def test_products_match_a_float64_reference(split, ta, tb, accumulate):
    rng = np.random.default_rng(1)
    m, n, k = SHAPES[split]
    a, b = operands(rng, m, n, k, ta, tb)
    previous = rng.standard_normal((m, n), dtype=np.float32) if accumulate else 0
    out = np.array(previous, np.float32) if accumulate else np.full((m, n), np.nan, np.float32)
    assert gemm.matmul(a, b, out, accumulate=accumulate) is out
    check(out, a.astype(np.float64) @ b, previous)


def test_stacks_column_slices_and_a_shared_left_operand():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((3, 48, 300), dtype=np.float32)
    col = rng.standard_normal((3, 300, 6000), dtype=np.float32)
    wide = np.zeros((3, 48, 7000), np.float32)
    out = wide[:, :, 500:6500]                      # a column slice of a wider array
    gemm.matmul(w, col, out)
    check(out, np.matmul(w.astype(np.float64), col))
    assert (wide[:, :, :500] == 0).all() and (wide[:, :, 6500:] == 0).all()
    shared = np.empty((3, 48, 6000), np.float32)
    gemm.matmul(w[0], col, shared)                  # (m, k) @ (g, k, n)
    check(shared, np.matmul(w[0].astype(np.float64), col))


def test_empty_inner_dimension_and_layouts_blas_cannot_take():
    out = np.ones((3, 4), np.float32)
    gemm.matmul(np.ones((3, 0), np.float32), np.ones((0, 4), np.float32), out)
    assert (out == 0).all()
    gemm.matmul(np.ones((3, 0), np.float32), np.ones((0, 4), np.float32), out, accumulate=True)
    assert (out == 0).all()
    rng = np.random.default_rng(3)
    a = rng.standard_normal((6, 8), dtype=np.float32)[::2, ::2]   # no unit stride: numpy's path
    b = rng.standard_normal((4, 5), dtype=np.float32)
    out = np.zeros((3, 5), np.float32)
    gemm.matmul(a, b, out, accumulate=True)
    check(out, a.astype(np.float64) @ b)
    with pytest.raises(ValueError, match='shapes'):
        gemm.matmul(np.ones((2, 3, 4), np.float32), np.ones((3, 4, 5), np.float32),
                    np.ones((2, 3, 5), np.float32))


DIGEST = '''
import hashlib, sys
import numpy as np
from caffe import gemm
rng = np.random.default_rng(4)
digest = hashlib.md5()
for m, n, k in %r:
    for ta in (False, True):
        a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        out = rng.standard_normal((m, n), dtype=np.float32)
        gemm.matmul(a.T if ta else a, b, out, accumulate=ta)
        digest.update(out.tobytes())
print(digest.hexdigest())
'''


def test_the_same_bits_at_any_thread_count():
    # Three threads on a machine with fewer cores too: the parts, not the threads, fix the sums.
    shapes = sorted(SHAPES.values()) + [(96, 2000, 27), (256, 2000, 1152)]
    digests = set()
    for threads in (1, 2, 3):
        env = dict(os.environ, PYTHONPATH=LIB, OMP_NUM_THREADS=str(threads))
        digests.add(subprocess.run([sys.executable, '-c', DIGEST % shapes], env=env, check=True,
                                   stdout=subprocess.PIPE, text=True).stdout.strip())
    assert len(digests) == 1


def test_gemm_threads_tool_finds_no_difference_in_the_runtimes_products():
    tools = os.path.join(os.path.dirname(__file__), '..', '..', 'tools')
    sys.path.insert(0, tools)
    try:
        import gemm_threads
    finally:
        sys.path.remove(tools)
    rows = gemm_threads.main(['--shapes', '96x9000x300', '40x60x20000', '--threads', '2', '3'])
    ours = [r for r in rows if r['product'] == 'caffe.gemm']
    assert len(ours) == 4 and all(r['elements_differing'] == 0 for r in ours)
    assert len(rows) == 8
    # OpenBLAS is left at one thread, as the runtime holds it.
    import ctypes
    from caffe.blas_threads import numpy_openblas
    assert ctypes.CFUNCTYPE(ctypes.c_int)(numpy_openblas()[2])() == 1


def test_without_the_kernels_numpy_computes_the_products(monkeypatch):
    # A checkout without `make`: the products still come out right (numpy's own, as before).
    monkeypatch.setattr(gemm, '_kernels', None)
    rng = np.random.default_rng(5)
    a, b = operands(rng, 30, 40, 50, True, False)
    out = np.ones((30, 40), np.float32)
    gemm.matmul(a, b, out, accumulate=True)
    check(out, a.astype(np.float64) @ b, np.ones((30, 40)))
