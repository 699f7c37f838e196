"""The detector's training targets: RoI labels and class-specific box-regression targets
(Fast R-CNN Sec. 2.3; the proposal-target step of end-to-end training, paper Sec. 3.2).

Target data rows are [class, tx, ty, tw, th] (paper Eq. 2); expand_bbox_targets places them in
their class's slot of bbox_pred's 4 * C outputs.

For non-approximate joint training (paper Sec. 3.2) the sampled RoIs' coordinate gradient goes
back to the proposals they were drawn from (route_roi_gradient), and optionally the regression
targets' gradient through bbox_transform (bbox_target_gradient); by default the targets are
constants, as in Fast R-CNN.
"""
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from core.boxes import bbox_transform, box_overlaps


@dataclass(frozen=True)
class BoxTargets:
    """How regression targets are weighted and normalized.

    inside_weights: the smooth-L1 inside weights of the 4 coordinates (BBOX_INSIDE_WEIGHTS).
    normalize: targets are stored as (t - mean) / std (BBOX_NORMALIZE_TARGETS), undone in the
    saved bbox_pred weights; precomputed: mean and std are `means` and `stds` for every class
    (BBOX_NORMALIZE_TARGETS_PRECOMPUTED, needed end to end) instead of the roidb's statistics.
    thresh: a RoI needs this IoU with a ground-truth box to regress to it (BBOX_THRESH).
    """
    inside_weights: tuple = (1.0, 1.0, 1.0, 1.0)
    normalize: bool = True
    precomputed: bool = False
    means: tuple = (0.0, 0.0, 0.0, 0.0)
    stds: tuple = (0.1, 0.1, 0.2, 0.2)
    thresh: float = 0.5


def expand_bbox_targets(bbox_target_data, num_classes, inside_weights):
    """Places each RoI's 4 regression targets in its class's slot of a 4 * num_classes vector
    (class-specific regression).

    bbox_target_data: (R, 5) rows [class, tx, ty, tw, th]; class 0 (background) gets no target.
    Returns (bbox_targets, bbox_inside_weights, bbox_outside_weights), each (R, 4 * num_classes)
    float32; inside weights are `inside_weights` in the class's slot and outside weights are 1
    wherever an inside weight is set.
    """
    data = np.asarray(bbox_target_data, dtype=np.float32).reshape(-1, 5)
    classes = data[:, 0].astype(np.intp)
    if classes.size and (classes.min() < 0 or classes.max() >= num_classes):
        raise ValueError('bbox target class %d is outside [0, %d)'
                         % (classes.max() if classes.max() >= num_classes else classes.min(),
                            num_classes))
    n = data.shape[0]
    targets = np.zeros((n, 4 * num_classes), dtype=np.float32)
    inside = np.zeros_like(targets)
    rows = np.where(classes > 0)[0]
    cols = 4 * classes[rows, None] + np.arange(4)
    targets[rows[:, None], cols] = data[rows, 1:]
    inside[rows[:, None], cols] = np.asarray(inside_weights, dtype=np.float32)
    outside = (inside > 0).astype(np.float32)
    return targets, inside, outside


class SampledRoIs(NamedTuple):
    """One image's RoI minibatch: rois (N, 4); labels (N,) float32, 0 for background, the
    foreground first; target data (N, 5) [class, tx, ty, tw, th]; keep (N,): the row of the
    candidate boxes each RoI is; gt_index (N,): the ground-truth box each RoI was compared
    with (its best overlap; 0 when the image has none)."""
    rois: np.ndarray
    labels: np.ndarray
    target_data: np.ndarray
    keep: np.ndarray
    gt_index: np.ndarray


def sample_rois_with_targets(boxes, gt_boxes, sampling, rois_per_image, fg_rois_per_image,
                             normalization=None):
    """Samples one image's RoIs among boxes (R, 4) by IoU with gt_boxes (G, 5) [x1, y1, x2, y2,
    class] under `sampling` (core.sampling.RoISampling) and computes their targets.

    normalization: None, or (means, stds) the targets are normalized with.
    Returns SampledRoIs (rois, labels, target_data, keep, gt_index).
    """
    num_gt = gt_boxes.shape[0]
    if num_gt:
        overlaps = box_overlaps(boxes, gt_boxes[:, :4])
        gt_assignment = overlaps.argmax(axis=1)
        max_overlaps = overlaps[np.arange(boxes.shape[0]), gt_assignment]
        labels = gt_boxes[gt_assignment, 4]
    else:
        gt_assignment = np.zeros(boxes.shape[0], dtype=np.intp)
        max_overlaps = np.zeros(boxes.shape[0])
        labels = np.zeros(boxes.shape[0])

    keep, num_fg = sampling.sample(max_overlaps, num_gt, rois_per_image, fg_rois_per_image)
    labels = labels[keep].astype(np.float32)
    labels[num_fg:] = 0
    rois = boxes[keep]

    target_data = np.zeros((keep.size, 5), dtype=np.float32)
    target_data[:, 0] = labels
    if num_gt:
        targets = bbox_transform(rois, gt_boxes[gt_assignment[keep], :4])
        if normalization is not None:
            means, stds = normalization
            targets = (targets - np.asarray(means)) / np.asarray(stds)
        target_data[:, 1:] = targets
    return SampledRoIs(rois, labels, target_data, keep, gt_assignment[keep])


def route_roi_gradient(roi_diff, keep, num_candidates, rows):
    """The gradient on the candidate boxes (num_candidates, 4) from the sampled RoIs' gradient
    roi_diff (N, 4): RoI i adds its row to candidate keep[i] where rows[i] (a boolean mask, e.g.
    the foreground). Sampling only picks rows, so this is its whole derivative."""
    roi_diff = np.asarray(roi_diff, dtype=np.float64).reshape(-1, 4)
    keep = np.asarray(keep, dtype=np.intp).ravel()
    rows = np.asarray(rows, dtype=bool).ravel()
    if not roi_diff.shape[0] == keep.size == rows.size:
        raise ValueError('route_roi_gradient: %d RoI gradients, %d source rows, %d mask entries'
                         % (roi_diff.shape[0], keep.size, rows.size))
    if rows.any() and (keep[rows].min() < 0 or keep[rows].max() >= num_candidates):
        raise ValueError('route_roi_gradient: source rows must be in [0, %d)' % num_candidates)
    grad = np.zeros((num_candidates, 4))
    np.add.at(grad, keep[rows], roi_diff[rows])
    return grad


def bbox_target_gradient(target_diff, rois, gt_rois, stds=(1.0, 1.0, 1.0, 1.0)):
    """d(loss)/d(x1, y1, x2, y2) of the RoIs through their regression targets, given the
    targets' gradient target_diff (N, 4) (of targets divided by stds, as stored).

    With w = x2 - x1 + 1 and centre cx = x1 + w / 2 (y alike), tx = (gx - cx) / w and
    tw = log(gw / w), so d tx / d x1 = (tx - 1/2) / w, d tx / d x2 = -(tx + 1/2) / w,
    d tw / d x1 = 1 / w, d tw / d x2 = -1 / w (tx unnormalized). Returns (N, 4) float64.
    """
    target_diff = np.asarray(target_diff, dtype=np.float64).reshape(-1, 4)
    rois = np.asarray(rois, dtype=np.float64).reshape(-1, 4)
    raw = target_diff / np.asarray(stds, dtype=np.float64)
    t = bbox_transform(rois, np.asarray(gt_rois, dtype=np.float64).reshape(-1, 4))
    size = np.stack([rois[:, 2] - rois[:, 0] + 1.0, rois[:, 3] - rois[:, 1] + 1.0], axis=1)
    g_shift, g_scale = raw[:, 0:2], raw[:, 2:4]
    grad = np.empty_like(rois)
    grad[:, 0:2] = (g_shift * (t[:, 0:2] - 0.5) + g_scale) / size
    grad[:, 2:4] = -(g_shift * (t[:, 0:2] + 0.5) + g_scale) / size
    return grad


def roidb_targets(boxes, max_overlaps, max_classes, gt_classes, thresh):
    """One roidb entry's target data (N, 5) [class, tx, ty, tw, th]: every box with IoU >= thresh
    with a ground-truth box regresses to the ground-truth box it overlaps most; the others get
    zeros. The ground-truth boxes are the entry's boxes with a class and overlap 1."""
    boxes = np.asarray(boxes, dtype=np.float64)
    targets = np.zeros((boxes.shape[0], 5), dtype=np.float32)
    gt_inds = np.where((np.asarray(gt_classes) > 0) & (max_overlaps == 1))[0]
    ex_inds = np.where(max_overlaps >= thresh)[0]
    if gt_inds.size == 0 or ex_inds.size == 0:
        return targets
    ex_gt_overlaps = box_overlaps(boxes[ex_inds], boxes[gt_inds])
    gt_rois = boxes[gt_inds[ex_gt_overlaps.argmax(axis=1)]]
    targets[ex_inds, 0] = max_classes[ex_inds]
    targets[ex_inds, 1:] = bbox_transform(boxes[ex_inds], gt_rois)
    return targets


def class_statistics(target_data, num_classes, eps):
    """Per-class means and stds (C, 4) of the foreground rows of the (N, 5) target data arrays;
    the background row 0 stays 0, as in the release. eps keeps empty classes finite."""
    counts = np.zeros(num_classes) + eps
    sums = np.zeros((num_classes, 4))
    squared_sums = np.zeros((num_classes, 4))
    for targets in target_data:
        targets = targets.astype(np.float64)
        classes = targets[:, 0].astype(np.intp)
        fg = classes > 0
        np.add.at(counts, classes[fg], 1)
        np.add.at(sums, classes[fg], targets[fg, 1:])
        np.add.at(squared_sums, classes[fg], targets[fg, 1:] ** 2)
    means = sums / counts[:, None]
    stds = np.sqrt(np.maximum(squared_sums / counts[:, None] - means ** 2, 0))
    # A class whose targets are all equal (e.g. one example) would divide by 0: shift only. Its
    # std is 0 only up to the rounding of E[t^2] - E[t]^2 (about 1e-8 |t|, eps in the counts).
    constant = (stds <= np.finfo(np.float32).eps * np.maximum(np.abs(means), 1)) & \
        (counts[:, None] >= 1)
    constant[0] = False
    stds[constant] = 1.0
    return means, stds


def normalize_targets(targets, means, stds):
    """Normalizes the foreground rows of (N, 5) target data in place by their class's row of
    means and stds (C, 4)."""
    classes = targets[:, 0].astype(np.intp)
    rows = classes > 0
    targets[rows, 1:] = (targets[rows, 1:] - means[classes[rows]]) / stds[classes[rows]]
    return targets
