"""The RPN's training targets for one image (paper Sec. 3.1.2-3.1.3): each anchor's label
(1 object, 0 background, -1 ignored), its regression target to the ground-truth box it overlaps
most, and the inside/outside weights of the smooth-L1 loss.
"""
from dataclasses import dataclass

import numpy as np

from core.boxes import bbox_transform, box_overlaps
from core.sampling import subsample_fg_bg


@dataclass(frozen=True)
class AnchorLabelling:
    """The RPN's labelling and sampling rule.

    positive_iou / negative_iou: IoU thresholds of Sec. 3.1.2 (0.7 / 0.3); clobber_positives:
    an anchor both best for a box and below negative_iou becomes negative; batch_size anchors
    are sampled per image, at most fg_fraction of them positive (256, 1:1 in Sec. 3.1.3);
    positive_weight: -1 weighs every sampled anchor by 1 / (number sampled) (the paper's
    1 / N_reg normalization, Eq. 1), p in (0, 1) gives positives p / #positives and negatives
    (1 - p) / #negatives; inside_weights: the smooth-L1 inside weights of positive anchors;
    allowed_border: anchors crossing the image border by more than this are ignored (Sec. 3.3).
    """
    positive_iou: float = 0.7
    negative_iou: float = 0.3
    clobber_positives: bool = False
    batch_size: int = 256
    fg_fraction: float = 0.5
    positive_weight: float = -1.0
    inside_weights: tuple = (1.0, 1.0, 1.0, 1.0)
    allowed_border: float = 0

    def __post_init__(self):
        p = self.positive_weight
        if not (p < 0 or 0 < p < 1):
            raise ValueError('positive_weight should be negative (uniform weights) or '
                             'in (0, 1); got %r' % (p,))


def inside_image(anchors, height, width, allowed_border):
    """Indices of the anchors inside a height x width image, up to allowed_border pixels out."""
    border = allowed_border
    return np.where((anchors[:, 0] >= -border) &
                    (anchors[:, 1] >= -border) &
                    (anchors[:, 2] < width + border) &
                    (anchors[:, 3] < height + border))[0]


def label_anchors(anchors, gt_boxes, rule):
    """Labels anchors by IoU with ground truth (Sec. 3.1.2): 1 for IoU >= rule.positive_iou and
    for the anchor(s) with the highest IoU for each gt box, 0 for max IoU < rule.negative_iou,
    -1 otherwise. Returns (labels float32, index of each anchor's best gt box)."""
    n = anchors.shape[0]
    labels = np.full(n, -1, dtype=np.float32)
    if gt_boxes.shape[0] == 0 or n == 0:
        labels[:] = 0
        return labels, np.zeros(n, dtype=np.intp)
    overlaps = box_overlaps(anchors, gt_boxes[:, :4])
    argmax_overlaps = overlaps.argmax(axis=1)
    max_overlaps = overlaps[np.arange(n), argmax_overlaps]
    gt_max_overlaps = overlaps.max(axis=0)
    # Every anchor tied at a gt box's best IoU counts; a gt box no anchor touches (best IoU 0)
    # has no best anchor (the release would make every non-touching anchor positive).
    touched = gt_max_overlaps > 0
    best_for_gt = np.where((overlaps[:, touched] == gt_max_overlaps[touched]).any(axis=1))[0]

    negative = max_overlaps < rule.negative_iou
    if not rule.clobber_positives:
        labels[negative] = 0
    labels[best_for_gt] = 1
    labels[max_overlaps >= rule.positive_iou] = 1
    if rule.clobber_positives:
        labels[negative] = 0
    return labels, argmax_overlaps


def subsample_labels(labels, rule):
    """Keeps rule.batch_size labelled anchors, at most rule.fg_fraction of them positive
    (Sec. 3.1.3); the others become -1 (ignored). Changes labels in place."""
    batch = rule.batch_size
    fg_inds = np.where(labels == 1)[0]
    bg_inds = np.where(labels == 0)[0]
    fg_keep, bg_keep = subsample_fg_bg(fg_inds, bg_inds, batch, int(rule.fg_fraction * batch))
    labels[fg_inds] = -1
    labels[bg_inds] = -1
    labels[fg_keep] = 1
    labels[bg_keep] = 0
    return labels


def outside_weights(labels, rule):
    """The smooth-L1 outside weights (K, 4) of labelled anchors (see AnchorLabelling)."""
    weights = np.zeros((labels.shape[0], 4), dtype=np.float32)
    positive, negative = labels == 1, labels == 0
    p = rule.positive_weight
    if p < 0:
        num_examples = int(np.sum(labels >= 0))
        if num_examples:
            weights[positive | negative] = 1.0 / num_examples
        return weights
    if positive.any():
        weights[positive] = p / positive.sum()
    if negative.any():
        weights[negative] = (1.0 - p) / negative.sum()
    return weights


def anchor_targets(all_anchors, gt_boxes, im_height, im_width, rule):
    """Targets of one image's anchors (K, 4) against its gt_boxes (G, 4+), the image being
    im_height x im_width pixels (its real extent, not a padded blob's).

    Returns (labels (K,), bbox_targets (K, 4), inside_weights (K, 4), outside_weights (K, 4)),
    float32; anchors outside the image are labelled -1 with zero targets and weights.
    """
    total = all_anchors.shape[0]
    inds_inside = inside_image(all_anchors, im_height, im_width, rule.allowed_border)
    anchors = all_anchors[inds_inside]

    labels, argmax_overlaps = label_anchors(anchors, gt_boxes, rule)
    subsample_labels(labels, rule)

    bbox_targets = np.zeros((anchors.shape[0], 4), dtype=np.float32)
    if gt_boxes.shape[0] > 0 and anchors.shape[0] > 0:
        bbox_targets[:] = bbox_transform(anchors, gt_boxes[argmax_overlaps, :4])
    inside = np.zeros((anchors.shape[0], 4), dtype=np.float32)
    inside[labels == 1] = np.asarray(rule.inside_weights)
    outside = outside_weights(labels, rule)

    return (_unmap(labels, total, inds_inside, fill=-1),
            _unmap(bbox_targets, total, inds_inside, fill=0),
            _unmap(inside, total, inds_inside, fill=0),
            _unmap(outside, total, inds_inside, fill=0))


def _unmap(values, count, inds, fill):
    """Scatters values computed for the anchors inside the image back to all `count` anchors."""
    out = np.full((count,) + values.shape[1:], fill, dtype=np.float32)
    out[inds] = values
    return out
