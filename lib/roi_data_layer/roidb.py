"""Prepares an imdb's roidb for training: per-RoI best class and overlap, and the Fast R-CNN
box-regression targets with their normalization statistics."""
import numpy as np

from core.roi_targets import class_statistics, normalize_targets, roidb_targets
from utils.image_file import check_image_size, image_header


def prepare_roidb(imdb):
    """Adds 'image', 'width', 'height', 'max_classes' and 'max_overlaps' to every entry of
    imdb.roidb (in place).

    max_overlaps is each box's best IoU with the ground truth and max_classes that ground truth's
    class (0 where the IoU is 0); crowd regions (overlap -1) end up with max_overlaps -1, so they
    are neither foreground nor background.

    Every image's header is checked here (utils.image_file: whole, decodable as far as a header
    read can tell, and of the size its annotation says): a bad image found now costs nothing;
    found at iteration 50000 it would end the run.
    """
    roidb = imdb.roidb
    checked = {}
    for i, entry in enumerate(roidb):
        path = entry['image'] = imdb.image_path_at(i)
        if path not in checked:  # flipped entries share their image
            if 'width' in entry and 'height' in entry:
                checked[path] = check_image_size(path, entry['width'], entry['height'],
                                                 'its annotation (%s)' % imdb.name)
            else:
                checked[path] = image_header(path)
        entry['width'], entry['height'] = checked[path]
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


def add_bbox_regression_targets(roidb, box_targets, eps=1e-14):
    """Computes each entry's 'bbox_targets' (N, 5) [class, tx, ty, tw, th] (paper Eq. 2) for the
    RoIs with IoU >= box_targets.thresh with a ground-truth box, and normalizes them per class
    when box_targets.normalize (core.roi_targets.BoxTargets).

    The means and stds are box_targets.means/stds for every class when box_targets.precomputed,
    else each class's statistics over the roidb (eps keeps empty classes finite). Returns
    (means, stds), each flattened to 4 * num_classes values in bbox_pred's output order, for
    un-normalizing bbox_pred at snapshot time.
    """
    if not roidb:
        raise ValueError('add_bbox_regression_targets: the roidb is empty')
    num_classes = roidb[0]['gt_overlaps'].shape[1]
    for entry in roidb:
        entry['bbox_targets'] = roidb_targets(entry['boxes'], entry['max_overlaps'],
                                              entry['max_classes'], entry['gt_classes'],
                                              box_targets.thresh)

    if box_targets.precomputed:
        means = np.tile(np.asarray(box_targets.means, dtype=np.float64), (num_classes, 1))
        stds = np.tile(np.asarray(box_targets.stds, dtype=np.float64), (num_classes, 1))
    else:
        means, stds = class_statistics([entry['bbox_targets'] for entry in roidb], num_classes,
                                       eps)

    if box_targets.normalize:
        for entry in roidb:
            normalize_targets(entry['bbox_targets'], means, stds)
    return means.ravel(), stds.ravel()


def _dense(matrix):
    return matrix.toarray() if hasattr(matrix, 'toarray') else np.asarray(matrix)
