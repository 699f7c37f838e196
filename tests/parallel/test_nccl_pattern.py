"""The NCCL engine and BVLC Caffe's python/train.py pattern (multiprocessing, a shared NCCL uid,
set_solver_count/rank, set_multiprocess, caffe.NCCL, bcast, add_callback, after_backward, step),
on the GPU emulator with a fake libnccl.so.2 (fake_nccl.c) loaded through the binding's wheel-folder
lookup. What the fake cannot show (a real NCCL, real device pointers and streams) is the GPU test's
(tests/gpu/test_nccl_gpu.py)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fake_nccl
import toy_problem

HERE = os.path.dirname(os.path.abspath(__file__))
ITER_SIZE = 2


@pytest.fixture(scope='module')
def fake_site():
    if fake_nccl.compiler() is None:
        pytest.skip('no C compiler to build the fake NCCL library')
    import gpu_emulator  # noqa: F401  (tests/gpu on the path: conftest below)
    return fake_nccl.build()


def run_pattern(out_dir, layer_wise):
    proc = subprocess.run([sys.executable, os.path.join(HERE, 'caffe_train_py.py'), str(out_dir),
                           str(ITER_SIZE), '1' if layer_wise else '0'],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = []
    for r in range(2):
        weights = dict(np.load(os.path.join(str(out_dir), 'rank%d.npz' % r)))
        with open(os.path.join(str(out_dir), 'rank%d.json' % r)) as f:
            ranks.append((weights, json.load(f)))
    return ranks


@pytest.mark.parametrize('layer_wise', [True, False], ids=['layer_wise', 'at_the_end'])
def test_caffe_train_py_pattern_trains_as_one_process_with_iter_size_n(fake_site, tmp_path,
                                                                        layer_wise):
    ranks = run_pattern(tmp_path / 'run', layer_wise)
    reference = toy_problem.reference(str(tmp_path), 2, ITER_SIZE)
    params = len(reference)
    for r, (weights, seen) in enumerate(ranks):
        assert seen['engine'] == 'nccl'
        assert seen['bcast'] == params            # one broadcast per parameter blob
        if layer_wise:
            # Every backward pass reduces each of the two layers, on the reduction's own stream.
            assert seen['allreduce'] == toy_problem.ITERATIONS * ITER_SIZE * 2
            assert seen['last_stream'] != 0
        else:
            assert seen['allreduce'] == toy_problem.ITERATIONS
            assert seen['last_stream'] == 0       # the default stream
        for name, value in reference.items():
            np.testing.assert_allclose(weights[name], value, rtol=1e-5, atol=1e-6,
                                       err_msg='rank %d %s' % (r, name))
        for name, value in ranks[0][0].items():
            np.testing.assert_array_equal(weights[name], value, err_msg='rank %d %s' % (r, name))


def test_unique_id_travels_whole_and_a_cut_one_is_refused(fake_site):
    from caffe.common import CaffeError
    from caffe.gpu import nccl
    lib = fake_nccl.install(fake_site)
    try:
        uid = nccl.new_unique_id()
        assert len(uid) == nccl.UNIQUE_ID_BYTES and b'\0' in uid[48:]
        comm = nccl.Communicator(1, uid, 0)     # the fake checks all 128 bytes arrived
        comm.destroy()
        cut = uid[:60] + bytes(68)                # what a NUL-terminated copy would give
        with pytest.raises(CaffeError, match='ncclCommInitRank failed: invalid argument'):
            nccl.Communicator(1, cut, 0)
        with pytest.raises(CaffeError, match='128 bytes'):
            nccl.Communicator(1, uid[:100], 0)
        assert lib.fakeNcclCalls(b'init') >= 1
    finally:
        nccl._lib.clear()


def test_one_rank_collectives_on_device_pointers(fake_site, emulated):
    import caffe.gpu as gpu
    from caffe.gpu import nccl
    lib = fake_nccl.install(fake_site)
    try:
        comm = nccl.Communicator(1, nccl.new_unique_id(), 0)
        values = np.arange(5, dtype=np.float32)
        a = gpu.to_device(values)
        before = lib.fakeNcclCalls(b'allreduce')
        comm.all_reduce_sum(a, stream=0x77)
        assert lib.fakeNcclCalls(b'allreduce') == before + 1
        assert lib.fakeNcclLastStream() == 0x77
        np.testing.assert_array_equal(a.get(), values)
        comm.bcast(a, root=0)
        np.testing.assert_array_equal(a.get(), values)
        with pytest.raises(Exception, match='device arrays'):
            comm.all_reduce_sum(gpu.to_device(np.arange(3, dtype=np.int64)))
        comm.destroy()
    finally:
        nccl._lib.clear()


def test_missing_nccl_is_one_error_naming_it_and_the_install(tmp_path):
    from caffe.common import CaffeError
    from caffe.gpu import libraries, nccl
    nccl._lib.clear()
    with pytest.raises(CaffeError, match=r'NCCL 2 library not found \(libnccl.so.2\).*'
                                         r'nvidia/nccl/lib.*pip install nvidia-nccl-cu13'):
        libraries.load(libraries.NCCL, search_dirs=[tmp_path], system=False)
