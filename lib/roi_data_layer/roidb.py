"""Prepares an imdb's roidb for training: per-RoI best class and overlap, and the Fast R-CNN
box-regression targets with their normalization statistics."""
import numpy as np

from fast_rcnn.bbox_transform import bbox_transform
from fast_rcnn.config import cfg
from utils.cython_bbox import bbox_overlaps
from utils.image_file import check_image_file


def prepare_roidb(imdb):
    """Adds 'image', 'width', 'height', 'max_classes' and 'max_overlaps' to every entry of
    imdb.roidb (in place).

    max_overlaps is each box's best IoU with the ground truth and max_classes that ground truth's
    class (0 where the IoU is 0); crowd regions (overlap -1) end up with max_overlaps -1, so they
    are neither foreground nor background.
    """
    roidb = imdb.roidb
    for i, entry in enumerate(roidb):
        entry['image'] = imdb.image_path_at(i)
        # A bad image found here costs nothing; found at iteration 50000 it would end the run.
        check_image_file(entry['image'])
        if 'width' not in entry or 'height' not in entry:
            entry['width'], entry['height'] = imdb.image_size_at(i)
        gt_overlaps = _dense(entry['gt_overlaps'])
        if gt_overlaps.shape[0] and gt_overlaps.shape[1]:
            max_overlaps = gt_overlaps.max(axis=1)
            max_classes = gt_overlaps.argmax(axis=1)
        else:
            max_overlaps = np.zeros(gt_overlaps.shape[0], dtype=np.float32)
            max_classes = np.zeros(gt_overlaps.shape[0], dtype=np.int64)
        if np.any(max_classes[max_overlaps == 0] != 0) or \
                np.any(max_classes[max_overlaps > 0] == 0):
            raise ValueError('%s: roidb entry %d (%s) has gt_overlaps that put a box of IoU 0 in '
                             'a class or a box of positive IoU in the background class'
                             % (imdb.name, i, entry['image']))
        entry['max_classes'] = max_classes
        entry['max_overlaps'] = max_overlaps


def add_bbox_regression_targets(roidb):
    """Computes each entry's 'bbox_targets' (N, 5) [class, tx, ty, tw, th] (paper Eq. 2) for the
    RoIs with IoU >= cfg.TRAIN.BBOX_THRESH with a ground-truth box, and normalizes them per class
    when cfg.TRAIN.BBOX_NORMALIZE_TARGETS.

    The means and stds are cfg.TRAIN.BBOX_NORMALIZE_MEANS/STDS for every class when
    BBOX_NORMALIZE_TARGETS_PRECOMPUTED, else each class's statistics over the roidb. Returns
    (means, stds), each flattened to 4 * num_classes values in bbox_pred's output order, for
    un-normalizing bbox_pred at snapshot time.
    """
    if not roidb:
        raise ValueError('add_bbox_regression_targets: the roidb is empty')
    num_classes = roidb[0]['gt_overlaps'].shape[1]
    for entry in roidb:
        entry['bbox_targets'] = _compute_targets(entry)

    if cfg.TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED:
        means = np.tile(np.asarray(cfg.TRAIN.BBOX_NORMALIZE_MEANS, dtype=np.float64),
                        (num_classes, 1))
        stds = np.tile(np.asarray(cfg.TRAIN.BBOX_NORMALIZE_STDS, dtype=np.float64),
                       (num_classes, 1))
    else:
        means, stds = _class_statistics(roidb, num_classes)

    if cfg.TRAIN.BBOX_NORMALIZE_TARGETS:
        for entry in roidb:
            targets = entry['bbox_targets']
            classes = targets[:, 0].astype(np.intp)
            rows = classes > 0
            targets[rows, 1:] = (targets[rows, 1:] - means[classes[rows]]) / stds[classes[rows]]
    return means.ravel(), stds.ravel()


def _compute_targets(entry):
    boxes = np.asarray(entry['boxes'], dtype=np.float64)
    overlaps = entry['max_overlaps']
    targets = np.zeros((boxes.shape[0], 5), dtype=np.float32)
    gt_inds = np.where((np.asarray(entry['gt_classes']) > 0) & (overlaps == 1))[0]
    ex_inds = np.where(overlaps >= cfg.TRAIN.BBOX_THRESH)[0]
    if gt_inds.size == 0 or ex_inds.size == 0:
        return targets
    # Each example regresses to the ground-truth box it overlaps most.
    ex_gt_overlaps = bbox_overlaps(np.ascontiguousarray(boxes[ex_inds]),
                                   np.ascontiguousarray(boxes[gt_inds]))
    gt_rois = boxes[gt_inds[ex_gt_overlaps.argmax(axis=1)]]
    targets[ex_inds, 0] = entry['max_classes'][ex_inds]
    targets[ex_inds, 1:] = bbox_transform(boxes[ex_inds], gt_rois)
    return targets


def _class_statistics(roidb, num_classes):
    """Per-class means and stds of the targets (background row 0 stays 0, as in the release)."""
    counts = np.zeros(num_classes) + cfg.EPS
    sums = np.zeros((num_classes, 4))
    squared_sums = np.zeros((num_classes, 4))
    for entry in roidb:
        targets = entry['bbox_targets'].astype(np.float64)
        classes = targets[:, 0].astype(np.intp)
        fg = classes > 0
        np.add.at(counts, classes[fg], 1)
        np.add.at(sums, classes[fg], targets[fg, 1:])
        np.add.at(squared_sums, classes[fg], targets[fg, 1:] ** 2)
    means = sums / counts[:, None]
    stds = np.sqrt(np.maximum(squared_sums / counts[:, None] - means ** 2, 0))
    # A class whose targets are all equal (e.g. one example) would divide by 0: shift only.
    constant = (stds == 0) & (counts[:, None] >= 1)
    constant[0] = False
    stds[constant] = 1.0
    return means, stds


def _dense(matrix):
    return matrix.toarray() if hasattr(matrix, 'toarray') else np.asarray(matrix)
