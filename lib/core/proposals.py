"""Object proposals from the RPN's outputs for one image (paper Sec. 3.1 and 3.3): decode every
anchor's regression, clip to the image, drop tiny boxes, rank by objectness, keep the top N before
NMS, suppress, keep the top N after it.
"""
from dataclasses import dataclass

import numpy as np

from core.boxes import bbox_transform_inv, clip_boxes, filter_small_boxes

# Test-time ablations of the paper's Table 2: 'no_cls' draws proposals at random instead of
# ranking them by score (no NMS either), 'no_reg' proposes the anchors themselves.
RPN_MODES = ('rpn', 'no_cls', 'no_reg')


@dataclass(frozen=True)
class ProposalSettings:
    """pre_nms_top_n / post_nms_top_n: proposals kept before / after NMS (0 or less: no limit);
    nms_thresh: NMS IoU threshold; min_size: smallest side kept, in original-image pixels;
    no_nms: rank without NMS (Table 2's "w/o NMS"); mode: one of RPN_MODES."""
    pre_nms_top_n: int = 6000
    post_nms_top_n: int = 300
    nms_thresh: float = 0.7
    min_size: float = 16
    no_nms: bool = False
    mode: str = 'rpn'

    @classmethod
    def from_cfg(cls, section, ablations=None):
        """From a TRAIN or TEST config section (RPN_PRE_NMS_TOP_N, RPN_POST_NMS_TOP_N,
        RPN_NMS_THRESH, RPN_MIN_SIZE); ablations, the TEST section at test time, adds
        RPN_NO_NMS and RPN_MODE."""
        extra = {}
        if ablations is not None:
            extra = {'no_nms': bool(ablations.RPN_NO_NMS), 'mode': ablations.RPN_MODE}
        return cls(section.RPN_PRE_NMS_TOP_N, section.RPN_POST_NMS_TOP_N,
                   section.RPN_NMS_THRESH, section.RPN_MIN_SIZE, **extra)

    def __post_init__(self):
        if self.mode not in RPN_MODES:
            raise ValueError('TEST.RPN_MODE is %r; expected one of %s'
                             % (self.mode, ', '.join(RPN_MODES)))


def propose(scores, deltas, anchors, im_info, settings, nms):
    """One image's proposals.

    scores: (K,) foreground probabilities and deltas: (K, 4) regressions of the K anchors
    (K, 4); im_info: [height, width, scale] of the scaled image; nms: a function
    (dets (N, 5) float32, thresh) -> kept indices. Returns (boxes (R, 4) in the scaled image's
    pixels, scores (R,)), best first.
    """
    if settings.mode == 'no_reg':
        boxes = anchors.astype(np.float32)
    else:
        boxes = bbox_transform_inv(anchors, deltas)
    boxes = clip_boxes(boxes, im_info[:2])
    keep = filter_small_boxes(boxes, settings.min_size * im_info[2])
    boxes, scores = boxes[keep], scores[keep]

    if settings.mode == 'no_cls':
        order = np.random.permutation(scores.shape[0])
        keep = _top(order, settings.post_nms_top_n)
    else:
        # A stable sort keeps tied anchors in anchor order, so runs are repeatable.
        order = np.argsort(-scores, kind='stable')
        order = _top(order, settings.pre_nms_top_n)
        if settings.no_nms:
            keep = order
        else:
            dets = np.hstack((boxes[order], scores[order, None])).astype(np.float32)
            keep = order[np.asarray(nms(dets, settings.nms_thresh), dtype=np.intp)]
        keep = _top(keep, settings.post_nms_top_n)
    return boxes[keep], scores[keep]


def _top(inds, n):
    return inds[:n] if n > 0 else inds
