import sys
import types

import numpy as np
import pytest

import caffe.common
from fast_rcnn.test_settings import TestSettings
from nms.cpu_nms import cpu_nms
from nms.dispatch import nms, runtime_gpu
from nms.py_cpu_nms import py_cpu_nms

IMPLEMENTATIONS = [cpu_nms, py_cpu_nms, nms]


def brute_force_nms(dets, thresh):
    """Greedy NMS written out pair by pair, in the dets' precision."""
    real = np.float32 if dets.dtype == np.float32 else np.float64
    boxes = [[real(v) for v in row[:5]] for row in dets]
    thresh = real(thresh)
    order = sorted(range(len(boxes)), key=lambda i: (-boxes[i][4], i))
    suppressed = set()
    keep = []
    for pos, i in enumerate(order):
        if i in suppressed:
            continue
        keep.append(i)
        a = boxes[i]
        for j in order[pos + 1:]:
            b = boxes[j]
            w = max(real(0), min(a[2], b[2]) - max(a[0], b[0]) + real(1))
            h = max(real(0), min(a[3], b[3]) - max(a[1], b[1]) + real(1))
            inter = w * h
            union = ((a[2] - a[0] + real(1)) * (a[3] - a[1] + real(1))
                     + (b[2] - b[0] + real(1)) * (b[3] - b[1] + real(1)) - inter)
            if union != 0 and inter / union > thresh:
                suppressed.add(j)
    return keep


def random_dets(rng, n, dtype):
    xy = rng.rand(n, 2) * 100
    wh = rng.rand(n, 2) * 60
    dets = np.hstack([xy, xy + wh, rng.rand(n, 1)]).astype(dtype)
    dets[: n // 4, 4] = np.round(dets[: n // 4, 4], 1)  # many tied scores
    dets[n // 4: n // 2, :4] = np.round(dets[n // 4: n // 2, :4])  # integer corners
    return dets


@pytest.mark.parametrize('impl', IMPLEMENTATIONS)
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('thresh', [0.0, 0.3, 0.5, 0.7, 1.0])
def test_random_sets_match_brute_force(impl, dtype, thresh):
    for seed in range(3):
        dets = random_dets(np.random.RandomState(seed), 150, dtype)
        expected = brute_force_nms(dets, thresh)
        assert impl(dets, thresh) == expected
    if 0 < thresh < 1:
        assert 1 < len(expected) < len(dets)  # the test exercises suppression both ways


@pytest.mark.parametrize('impl', IMPLEMENTATIONS)
def test_adversarial_cases(impl):
    f = np.float32
    # Identical boxes with identical scores: the lowest index survives.
    dets = np.array([[0, 0, 9, 9, 0.5]] * 4, f)
    assert impl(dets, 0.3) == [0]
    # All scores tied: visited by index.
    dets = np.array([[0, 0, 9, 9, 1], [50, 50, 59, 59, 1], [1, 1, 10, 10, 1]], f)
    assert impl(dets, 0.3) == [0, 1]
    # IoU exactly 0.5 (100 / 200) survives thresh 0.5 and is suppressed at 0.49.
    dets = np.array([[0, 0, 9, 9, 0.9], [0, 0, 9, 19, 0.8]], f)
    assert impl(dets, 0.5) == [0, 1]
    assert impl(dets, 0.49) == [0]
    # Greedy: B (suppressed by A) does not suppress C; IoU(A,B) = IoU(B,C) = 1/3, IoU(A,C) = 0.
    dets = np.array([[0, 0, 9, 9, 0.9], [5, 0, 14, 9, 0.8], [10, 0, 19, 9, 0.7]], f)
    assert impl(dets, 0.3) == [0, 2]
    # Kept indices come highest score first, not in index order.
    dets = np.array([[0, 0, 9, 9, 0.1], [20, 20, 29, 29, 0.9], [40, 40, 49, 49, 0.5]], f)
    assert impl(dets, 0.3) == [1, 2, 0]
    # Degenerate boxes (zero union) never suppress anything.
    dets = np.array([[0, 0, -1, -1, 0.9], [0, 0, -1, -1, 0.8], [0, 0, 9, 9, 0.7]], f)
    assert impl(dets, 0.3) == brute_force_nms(dets, 0.3) == [0, 1, 2]
    # One box; extra columns after the score are ignored.
    assert impl(np.array([[0, 0, 5, 5, 0.3, 7.0]], f), 0.3) == [0]


@pytest.mark.parametrize('impl', IMPLEMENTATIONS)
def test_empty_input(impl):
    assert impl(np.zeros((0, 5), np.float32), 0.3) == []


def test_returns_python_ints():
    dets = random_dets(np.random.RandomState(0), 20, np.float32)
    for impl in IMPLEMENTATIONS:
        assert all(type(i) is int for i in impl(dets, 0.5))


def test_bad_shape():
    for impl in (cpu_nms, py_cpu_nms):
        with pytest.raises(ValueError):
            impl(np.zeros((3, 4), np.float32), 0.3)


@pytest.fixture
def fake_gpu(monkeypatch):
    """Pretends the runtime is in GPU mode and records calls to a stand-in gpu_nms."""
    calls = []

    def gpu_nms(dets, thresh, device_id=0):
        calls.append(device_id)
        return py_cpu_nms(dets, thresh)

    module = types.ModuleType('nms.gpu_nms')
    module.gpu_nms = gpu_nms
    monkeypatch.setitem(sys.modules, 'nms.gpu_nms', module)
    monkeypatch.setattr(caffe.common, 'mode', lambda: 'GPU')
    monkeypatch.setattr(caffe.common, 'device', lambda: 3)  # the runtime's device
    return calls


def test_settings_run_nms_on_the_runtimes_gpu_when_they_ask(fake_gpu):
    dets = random_dets(np.random.RandomState(1), 30, np.float32)
    assert runtime_gpu() == 3
    assert TestSettings().nms_function()(dets, 0.5) == brute_force_nms(dets, 0.5)
    assert fake_gpu == [3]
    assert TestSettings(use_gpu_nms=False).nms_function()(dets, 0.5) == \
        brute_force_nms(dets, 0.5)
    assert nms(dets, 0.5) == brute_force_nms(dets, 0.5)  # no device named: the CPU
    assert fake_gpu == [3]


def test_cpu_mode_has_no_runtime_gpu(fake_gpu, monkeypatch):
    monkeypatch.setattr(caffe.common, 'mode', lambda: 'CPU')
    dets = random_dets(np.random.RandomState(2), 30, np.float32)
    assert runtime_gpu() is None
    assert TestSettings().nms_function()(dets, 0.5) == brute_force_nms(dets, 0.5)
    assert fake_gpu == []


def test_gpu_nms_falls_back_to_the_cpu_when_missing(fake_gpu, monkeypatch):
    monkeypatch.setitem(sys.modules, 'nms.gpu_nms', None)  # makes the import fail
    dets = random_dets(np.random.RandomState(3), 30, np.float32)
    with pytest.warns(RuntimeWarning, match='GPU NMS unavailable'):
        assert nms(dets, 0.5, gpu_id=0) == brute_force_nms(dets, 0.5)
