"""Foreground/background rules and minibatch sampling, shared by the RPN's anchors and the
detector's RoIs.

Both draw a fixed-size minibatch with at most a given number of foreground examples and fill the
rest with background (paper Sec. 3.1.3 for anchors; Fast R-CNN's 25% foreground RoIs, Sec. 2.3).
Random draws use np.random, which the trainer seeds.
"""
from dataclasses import dataclass

import numpy as np


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


@dataclass(frozen=True)
class RoISampling:
    """The detector's RoI minibatch rule (Fast R-CNN Sec. 2.3): a RoI is foreground when its best
    IoU with the ground truth is >= fg_thresh and background when it lies in
    [bg_thresh_lo, bg_thresh_hi); batch_size RoIs are drawn per minibatch, split evenly over its
    images, fg_fraction of them foreground at most."""
    batch_size: int = 128
    fg_fraction: float = 0.25
    fg_thresh: float = 0.5
    bg_thresh_hi: float = 0.5
    bg_thresh_lo: float = 0.1

    def fg_bg_masks(self, max_overlaps):
        """(foreground, background) boolean masks of RoIs given their best IoU."""
        max_overlaps = np.asarray(max_overlaps).ravel()
        fg = max_overlaps >= self.fg_thresh
        bg = (max_overlaps < self.bg_thresh_hi) & (max_overlaps >= self.bg_thresh_lo)
        return fg, bg

    def per_image(self, num_images):
        """(RoIs per image, foreground RoIs per image) for a minibatch of num_images images."""
        if num_images < 1 or self.batch_size % num_images != 0:
            raise ValueError('TRAIN.BATCH_SIZE (%d) should be a multiple of the number of images '
                             'per minibatch (%d)' % (self.batch_size, num_images))
        per_image = self.batch_size // num_images
        return per_image, int(np.round(self.fg_fraction * per_image))

    def sample(self, max_overlaps, num_gt, rois_per_image, fg_rois_per_image):
        """Chooses one image's RoIs from their best IoU with its ground truth.

        An image without ground truth gives no overlap evidence, so all its RoIs are background
        candidates (else its minibatch would hold no RoI at all).
        Returns (keep_inds with foreground first, number of foreground).
        """
        fg, bg = self.fg_bg_masks(max_overlaps)
        fg_inds = np.where(fg)[0]
        bg_inds = np.arange(fg.size) if num_gt == 0 else np.where(bg)[0]
        fg_keep, bg_keep = subsample_fg_bg(fg_inds, bg_inds, rois_per_image, fg_rois_per_image)
        return np.concatenate([fg_keep, bg_keep]).astype(np.intp), fg_keep.size
