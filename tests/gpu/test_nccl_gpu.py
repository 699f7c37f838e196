"""NCCL on a real GPU (marked gpu; run by tests/gpu/run_on_gpu_machine.sh): the binding against the
installed libnccl.so.2 (version, the 128-byte unique id, a communicator), collectives on device
pointers of PyCUDA's primary context, on the default stream and on a stream of their own; and two
ranks on one GPU, where the NCCL there allows it (recent NCCL refuses two ranks on one device),
with BVLC Caffe's python/train.py pattern against one process with iter_size 2."""
import multiprocessing
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PARALLEL = os.path.join(os.path.dirname(HERE), 'parallel')

pytestmark = pytest.mark.gpu


@pytest.fixture
def gpu_nccl():
    import caffe
    from caffe.gpu import nccl
    if not nccl.available():
        pytest.skip('no NCCL library (pip install nvidia-nccl-cu13, or the system libnccl.so.2)')
    caffe.set_mode_gpu()
    yield nccl
    caffe.set_mode_cpu()


def test_one_rank_collectives_on_device_pointers_and_streams(gpu_nccl):
    import caffe.gpu as gpu
    drv = gpu._state.drv
    assert gpu_nccl.version() >= 20000
    uid = gpu_nccl.new_unique_id()
    assert len(uid) == 128 and uid != gpu_nccl.new_unique_id()
    comm = gpu_nccl.Communicator(1, uid, 0)
    try:
        for dtype in (np.float32, np.float64, np.uint8, np.int32):
            values = (np.arange(1000) % 200).astype(dtype)
            a = gpu.to_device(values)
            comm.all_reduce_sum(a)
            comm.bcast(a, root=0)
            np.testing.assert_array_equal(a.get(), values)
        stream = drv.Stream(flags=drv.stream_flags.NON_BLOCKING)
        a = gpu.to_device(np.full(1 << 20, 3, np.float32))
        comm.all_reduce_sum(a[1:], stream=stream)     # an offset pointer, on a stream
        stream.synchronize()
        np.testing.assert_array_equal(a.get(), np.full(1 << 20, 3, np.float32))
    finally:
        comm.destroy()


def _two_ranks_probe(uid, rank, queue):
    import caffe
    from caffe.gpu import nccl
    import caffe.gpu as gpu
    caffe.set_mode_gpu()
    try:
        comm = nccl.Communicator(2, uid, rank)
    except caffe.CaffeError as e:
        queue.put((rank, 'refused', str(e)))
        return
    a = gpu.to_device(np.full(10, rank + 1, np.float32))
    comm.all_reduce_sum(a)
    gpu.synchronize()
    queue.put((rank, 'ok', a.get().tolist()))
    comm.destroy()


def test_two_ranks_on_one_gpu_if_nccl_allows(gpu_nccl, tmp_path):
    context = multiprocessing.get_context('spawn')
    queue = context.Queue()
    uid = gpu_nccl.new_unique_id()
    procs = [context.Process(target=_two_ranks_probe, args=(uid, r, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        if p.is_alive():
            p.terminate()
    if any(kind == 'refused' for _, kind, _ in results):
        pytest.skip('this NCCL refuses two ranks on one GPU: %s' % results)
    for rank, kind, values in results:
        assert values == [3.0] * 10, (rank, values)

    # Caffe's python/train.py with two ranks on GPU 0, against one process with iter_size 2 x 2.
    sys.path.insert(0, PARALLEL)
    import toy_problem
    out = tmp_path / 'pattern'
    proc = subprocess.run([sys.executable, os.path.join(PARALLEL, 'caffe_train_py.py'), str(out),
                           '2', '1', '0,0'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import caffe
    reference = toy_problem.reference(str(tmp_path), 2, 2)
    caffe.set_mode_cpu()
    for r in range(2):
        weights = np.load(os.path.join(str(out), 'rank%d.npz' % r))
        for name, value in reference.items():
            np.testing.assert_allclose(weights[name], value, rtol=1e-5, atol=1e-6)
