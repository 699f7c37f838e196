"""The proof that data-parallel training on the MPI engine is Caffe's multi-GPU SGD: N ranks x 1
sample for k steps (momentum, weight decay, a step learning rate, iter_size 2) end with the
weights of one process with iter_size 2N over the same samples in the same order; every rank
holds the same weights; the layer-wise reduction gives what the reduction at the end gives;
clipping acts on the reduced (mean) gradient; and two broken engines (no 1/N, no all-reduce) are
caught by the same comparison."""
import os

import numpy as np
import pytest

import toy_problem
from mpirun import run_mpi

HERE = os.path.dirname(os.path.abspath(__file__))
ITER_SIZE = 2
CLIP = 1.0
RTOL, ATOL = 1e-5, 1e-7


def by_rank(npz, variant, ranks):
    return [{key.split(':', 2)[2]: npz[key] for key in npz.files
             if key.startswith('%s:%d:' % (variant, r))} for r in range(ranks)]


def assert_close(got, expected, what):
    assert set(got) == set(expected)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=RTOL, atol=ATOL,
                                   err_msg='%s: %s' % (what, name))


def differs(got, expected):
    return any(not np.allclose(got[n], expected[n], rtol=RTOL, atol=ATOL) for n in expected)


@pytest.fixture(scope='module', params=[2, 4], ids=['2ranks', '4ranks'])
def job(request, tmp_path_factory):
    ranks = request.param
    out = tmp_path_factory.mktemp('mpi%d' % ranks)
    # The GPU variants (emulated) once, on 2 ranks: they are slower and test the same sums.
    proc = run_mpi(ranks, [os.path.join(HERE, 'mpi_sgd_job.py'), out, ITER_SIZE, CLIP]
                   + (['gpu'] if ranks == 2 else []))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    npz = np.load(os.path.join(str(out), 'weights.npz'))
    folder = tmp_path_factory.mktemp('reference%d' % ranks)
    return {'ranks': ranks, 'npz': npz,
            'initial': toy_problem.reference(str(folder), ranks, ITER_SIZE, iterations=0),
            'reference': toy_problem.reference(str(folder), ranks, ITER_SIZE),
            'reference_clip': toy_problem.reference(str(folder), ranks, ITER_SIZE,
                                                    clip=CLIP * ranks)}


def test_ranks_end_with_the_weights_of_one_process_with_iter_size_n(job):
    ranks = by_rank(job['npz'], 'end', job['ranks'])
    assert_close(ranks[0], job['reference'], 'rank 0 vs iter_size %d' % (ITER_SIZE * job['ranks']))
    # The weights moved: the comparison is not one of initial values.
    assert differs(ranks[0], job['initial'])


def test_every_rank_holds_identical_weights(job):
    for variant in ('end', 'layerwise', 'clip'):
        ranks = by_rank(job['npz'], variant, job['ranks'])
        for r, weights in enumerate(ranks[1:], 1):
            for name, value in weights.items():
                np.testing.assert_array_equal(value, ranks[0][name],
                                              err_msg='%s: rank %d %s' % (variant, r, name))


def test_layer_wise_reduction_equals_reduction_at_the_end(job):
    end = by_rank(job['npz'], 'end', job['ranks'])[0]
    layerwise = by_rank(job['npz'], 'layerwise', job['ranks'])[0]
    assert_close(layerwise, end, 'layer-wise vs at the end')
    assert_close(layerwise, job['reference'], 'layer-wise vs iter_size')


def test_gpu_ranks_without_nccl_reduce_host_copies_over_mpi(job):
    if job['ranks'] != 2:
        pytest.skip('the emulated GPU variant runs on 2 ranks only')
    for variant in ('gpu_end', 'gpu_layerwise'):
        ranks = by_rank(job['npz'], variant, 2)
        # The emulated kernels and cuBLAS round as the GPU would, not as numpy does.
        for name, value in job['reference'].items():
            np.testing.assert_allclose(ranks[0][name], value, rtol=1e-5, atol=1e-6,
                                       err_msg='%s: %s' % (variant, name))
            np.testing.assert_array_equal(ranks[1][name], ranks[0][name])


def test_clipping_sees_the_reduced_mean_gradient(job):
    # After the reduction a rank holds (sum over all samples) / N; one process with iter_size N*k
    # holds the sum itself, so the same clipping needs its threshold N times larger. Clipping
    # before the reduction (per rank) would clip by a different factor.
    clipped = by_rank(job['npz'], 'clip', job['ranks'])[0]
    assert_close(clipped, job['reference_clip'], 'clip %g vs clip %g x N' % (CLIP, CLIP))
    assert differs(clipped, job['reference']), 'the clip threshold never acted'


@pytest.mark.parametrize('breakage', ['no_scale', 'no_allreduce'])
def test_a_broken_engine_fails_the_comparison(job, breakage):
    broken = by_rank(job['npz'], breakage, job['ranks'])
    assert differs(broken[0], job['reference'])
    if breakage == 'no_allreduce':
        # Without the exchange each rank follows its own samples.
        assert differs(broken[1], broken[0])
