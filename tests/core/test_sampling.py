"""core.sampling: foreground/background rules and minibatch sampling with literal rules."""
import numpy as np
import pytest

from core.sampling import RoISampling, subsample_fg_bg


def test_subsample_caps_foreground_and_fills_with_background():
    np.random.seed(0)
    fg, bg = subsample_fg_bg(np.arange(10), np.arange(100, 200), batch_size=16, max_fg=4)
    assert len(fg) == 4 and len(bg) == 12
    assert set(fg) <= set(range(10)) and set(bg) <= set(range(100, 200))
    assert len(set(fg)) == 4 and len(set(bg)) == 12  # without replacement
    # Few candidates: all are kept, in their order.
    fg, bg = subsample_fg_bg([3, 1], [7], batch_size=16, max_fg=8)
    assert list(fg) == [3, 1] and list(bg) == [7]


def test_subsample_follows_numpy_seed():
    np.random.seed(3)
    first = subsample_fg_bg(np.arange(50), np.arange(50, 500), 32, 8)
    np.random.seed(3)
    second = subsample_fg_bg(np.arange(50), np.arange(50, 500), 32, 8)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_fg_bg_masks_by_thresholds():
    rule = RoISampling(fg_thresh=0.6, bg_thresh_hi=0.4, bg_thresh_lo=0.1)
    fg, bg = rule.fg_bg_masks([0.05, 0.1, 0.39, 0.4, 0.59, 0.6, 1.0])
    assert fg.tolist() == [False, False, False, False, False, True, True]
    assert bg.tolist() == [False, True, True, False, False, False, False]


def test_per_image_splits_the_batch_and_rounds_the_foreground():
    rule = RoISampling(batch_size=128, fg_fraction=0.25)
    assert rule.per_image(1) == (128, 32) and rule.per_image(2) == (64, 16)
    assert RoISampling(batch_size=10, fg_fraction=0.25).per_image(1) == (10, 2)  # round(2.5)
    with pytest.raises(ValueError, match='multiple of the number of images'):
        RoISampling(batch_size=10).per_image(3)


def test_sample_puts_foreground_first_and_uses_all_rois_without_ground_truth():
    np.random.seed(1)
    overlaps = np.array([0.9, 0.05, 0.3, 0.7, 0.2, 0.45, 0.0])
    rule = RoISampling()
    keep, num_fg = rule.sample(overlaps, num_gt=2, rois_per_image=4, fg_rois_per_image=1)
    assert num_fg == 1 and overlaps[keep[0]] >= 0.5
    assert all(0.1 <= overlaps[k] < 0.5 for k in keep[1:]) and len(keep) == 4
    keep, num_fg = rule.sample(overlaps, num_gt=0, rois_per_image=7, fg_rois_per_image=0)
    assert num_fg == 0 and sorted(keep) == list(range(7))
