"""gpu_nms keeps exactly the boxes cpu_nms keeps (the same indices in the same order) on random
and adversarial inputs: tied scores, identical boxes, IoU exactly at the threshold, degenerate
boxes, more boxes than one 64-box tile, empty input. Runs on a real GPU ('cuda', marked gpu)
and on the CPU emulator of the GPU backend ('emulated')."""
import numpy as np
import pytest

from nms.cpu_nms import cpu_nms
from nms.gpu_nms import gpu_nms


def random_dets(rs, n, size=100.0, spread=300.0):
    x1 = rs.uniform(0, spread, n)
    y1 = rs.uniform(0, spread, n)
    w = rs.uniform(1, size, n)
    h = rs.uniform(1, size, n)
    scores = rs.rand(n)
    return np.stack([x1, y1, x1 + w, y1 + h, scores], axis=1).astype(np.float32)


def adversarial_dets():
    """Cases chosen where a sloppy implementation diverges from cpu_nms."""
    cases = {}
    # All scores tied: the stable order (input order) decides who suppresses whom.
    rs = np.random.RandomState(1)
    d = random_dets(rs, 90, size=60, spread=80)
    d[:, 4] = 0.5
    cases['tied_scores'] = d
    # Identical boxes with identical scores, and copies with distinct scores.
    box = np.array([10, 10, 50, 40, 0.9], np.float32)
    cases['identical'] = np.tile(box, (70, 1))
    d = np.tile(box, (20, 1))
    d[:, 4] = np.linspace(0.1, 0.9, 20)[::-1][rs.permutation(20)]
    cases['identical_boxes_distinct_scores'] = d
    # IoU exactly 0.5 (in float32): [0, 0, 9, 9] (area 100) and [0, 0, 9, 4]... overlap 50 of
    # union 100: IoU = 0.5, not > 0.5, so both stay at thresh 0.5.
    cases['iou_at_threshold'] = np.array([[0, 0, 9, 9, 0.9], [0, 0, 9, 4, 0.8],
                                          [0, 5, 9, 14, 0.7], [20, 20, 29, 29, 0.6]], np.float32)
    # Degenerate boxes: zero and negative widths (+1 areas of 0 or below), a point.
    cases['degenerate'] = np.array([[5, 5, 4, 9, 0.9], [5, 5, 4, 9, 0.8], [3, 3, 3, 3, 0.7],
                                    [3, 3, 3, 3, 0.6], [0, 0, -5, -5, 0.5], [0, 0, 10, 10, 0.4],
                                    [1, 1, 0, 0, 0.3]], np.float32)
    # Many boxes in a cluster: suppression chains across several 64-box tiles.
    d = random_dets(np.random.RandomState(2), 200, size=40, spread=30)
    d[::7, 4] = d[0, 4]
    cases['dense_cluster'] = d
    return cases


ADVERSARIAL = adversarial_dets()


@pytest.mark.parametrize('thresh', [0.3, 0.5, 0.7])
def test_random_boxes(backend, thresh):
    rs = np.random.RandomState(int(thresh * 10))
    for n in (1, 2, 63, 64, 65, 150):
        dets = random_dets(rs, n)
        assert gpu_nms(dets, thresh) == cpu_nms(dets, thresh), (n, thresh)


@pytest.mark.parametrize('name', sorted(ADVERSARIAL))
@pytest.mark.parametrize('thresh', [0.0, 0.5, 0.7, 1.0])
def test_adversarial_boxes(backend, name, thresh):
    dets = ADVERSARIAL[name]
    assert gpu_nms(dets, thresh) == cpu_nms(dets, thresh)


def test_threshold_is_compared_in_float32(backend):
    # IoU 0.5 exactly; 0.5 - 1e-9 rounds to 0.5 in float32, so the pair still survives.
    dets = ADVERSARIAL['iou_at_threshold']
    assert gpu_nms(dets, 0.5 - 1e-9) == cpu_nms(dets, 0.5 - 1e-9) == [0, 1, 2, 3]
    assert gpu_nms(dets, 0.49) == cpu_nms(dets, 0.49)


def test_empty_and_extra_columns(backend):
    assert gpu_nms(np.zeros((0, 5), np.float32), 0.5) == []
    dets = random_dets(np.random.RandomState(3), 40)
    wide = np.hstack([dets, np.ones((40, 2), np.float32)])   # extra columns are ignored
    assert gpu_nms(wide, 0.4) == cpu_nms(dets, 0.4)
    with pytest.raises(ValueError):
        gpu_nms(np.zeros((3, 4), np.float32), 0.5)


def test_returns_python_ints_best_first(backend):
    dets = random_dets(np.random.RandomState(4), 30)
    keep = gpu_nms(dets, 0.3)
    assert all(type(i) is int for i in keep)
    assert list(np.argsort(-dets[keep, 4], kind='stable')) == list(range(len(keep)))
