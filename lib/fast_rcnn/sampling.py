"""Minibatch sampling shared by the RPN's anchor targets and the detector's RoI targets.

Both draw a fixed-size minibatch with at most a given number of foreground examples and fill the
rest with background (paper Sec. 3.1.3 for anchors; Fast R-CNN's 25% foreground RoIs, Sec. 3.2).
Random draws use np.random, which the trainer seeds with cfg.RNG_SEED.
"""
import numpy as np

from fast_rcnn.config import cfg


def subsample_fg_bg(fg_inds, bg_inds, batch_size, max_fg):
    """Draws up to max_fg of fg_inds, then fills the batch up to batch_size from bg_inds, each
    without replacement. Returns (fg_keep, bg_keep), index arrays in the order drawn."""
    fg_inds = np.asarray(fg_inds).ravel()
    bg_inds = np.asarray(bg_inds).ravel()
    num_fg = int(min(max_fg, fg_inds.size))
    fg_keep = _choose(fg_inds, num_fg)
    num_bg = int(min(batch_size - num_fg, bg_inds.size))
    bg_keep = _choose(bg_inds, max(num_bg, 0))
    return fg_keep, bg_keep


def _choose(inds, n):
    if n >= inds.size:
        return inds.copy()
    return np.random.choice(inds, size=n, replace=False)


def sample_rois(max_overlaps, num_gt, rois_per_image, fg_rois_per_image):
    """Chooses the detector's RoIs for one image from their best IoU with ground truth.

    Foreground: IoU >= cfg.TRAIN.FG_THRESH; background: IoU in [BG_THRESH_LO, BG_THRESH_HI).
    An image without ground truth gives no overlap evidence, so all its RoIs are background
    candidates (else its minibatch would hold no RoI at all).
    Returns (keep_inds with foreground first, number of foreground).
    """
    max_overlaps = np.asarray(max_overlaps).ravel()
    fg_inds = np.where(max_overlaps >= cfg.TRAIN.FG_THRESH)[0]
    if num_gt == 0:
        bg_inds = np.arange(max_overlaps.size)
    else:
        bg_inds = np.where((max_overlaps < cfg.TRAIN.BG_THRESH_HI) &
                           (max_overlaps >= cfg.TRAIN.BG_THRESH_LO))[0]
    fg_keep, bg_keep = subsample_fg_bg(fg_inds, bg_inds, rois_per_image, fg_rois_per_image)
    return np.concatenate([fg_keep, bg_keep]).astype(np.intp), fg_keep.size


def rois_per_image():
    """(RoIs per image, foreground RoIs per image) from cfg.TRAIN.BATCH_SIZE / IMS_PER_BATCH."""
    if cfg.TRAIN.IMS_PER_BATCH < 1 or cfg.TRAIN.BATCH_SIZE % cfg.TRAIN.IMS_PER_BATCH != 0:
        raise ValueError('cfg.TRAIN.BATCH_SIZE (%d) should be a multiple of '
                         'cfg.TRAIN.IMS_PER_BATCH (%d)'
                         % (cfg.TRAIN.BATCH_SIZE, cfg.TRAIN.IMS_PER_BATCH))
    per_image = cfg.TRAIN.BATCH_SIZE // cfg.TRAIN.IMS_PER_BATCH
    return per_image, int(np.round(cfg.TRAIN.FG_FRACTION * per_image))


def expand_bbox_targets(bbox_target_data, num_classes):
    """Places each RoI's 4 regression targets in its class's slot of a 4*num_classes vector
    (class-specific regression, Fast R-CNN Sec. 2.3).

    bbox_target_data: (N, 5) rows [class, tx, ty, tw, th]; class 0 (background) gets no target.
    Returns (bbox_targets, bbox_inside_weights, bbox_outside_weights), each (N, 4*num_classes)
    float32; inside weights are cfg.TRAIN.BBOX_INSIDE_WEIGHTS in the class's slot and outside
    weights are 1 wherever an inside weight is set.
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
    inside[rows[:, None], cols] = np.asarray(cfg.TRAIN.BBOX_INSIDE_WEIGHTS, dtype=np.float32)
    outside = (inside > 0).astype(np.float32)
    return targets, inside, outside
