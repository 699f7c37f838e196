"""Object proposals from the RPN's outputs for one image (paper Sec. 3.1 and 3.3): decode every
anchor's regression, clip to the image, drop tiny boxes, rank by objectness, keep the top N before
NMS, suppress, keep the top N after it.

For non-approximate joint training (paper Sec. 3.2) the proposals' coordinates are functions of
the regression deltas of the anchors they came from: propose() says which anchor each proposal
is, and proposal_delta_gradient() chains a gradient on the boxes back to those deltas. The
selection itself (filtering, ranking, NMS, top N) only picks rows and passes no gradient.
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
    no_nms: rank without NMS (Table 2's "w/o NMS"); mode: one of RPN_MODES. The defaults are
    the test-time ones (TEST_PROPOSALS; TRAIN_PROPOSALS for training)."""
    pre_nms_top_n: int = 6000
    post_nms_top_n: int = 300
    nms_thresh: float = 0.7
    min_size: float = 16
    no_nms: bool = False
    mode: str = 'rpn'

    def __post_init__(self):
        if self.mode not in RPN_MODES:
            raise ValueError('the RPN mode is %r; expected one of %s'
                             % (self.mode, ', '.join(RPN_MODES)))


# The paper's limits (Sec. 3.3): in training, the top 12000 before NMS and 2000 after it; at test
# time 6000 and 300 (the class's defaults).
TRAIN_PROPOSALS = ProposalSettings(pre_nms_top_n=12000, post_nms_top_n=2000)
TEST_PROPOSALS = ProposalSettings()


def propose(scores, deltas, anchors, im_info, settings, nms):
    """One image's proposals.

    scores: (K,) foreground probabilities and deltas: (K, 4) regressions of the K anchors
    (K, 4); im_info: [height, width, scale] of the scaled image; nms: a function
    (dets (N, 5) float32, thresh) -> kept indices. Returns (boxes (R, 4) in the scaled image's
    pixels, scores (R,), anchors (R,): the index in 0..K-1 of the anchor each proposal was
    decoded from), best first.
    """
    if settings.mode == 'no_reg':
        boxes = anchors.astype(np.float32)
    else:
        boxes = bbox_transform_inv(anchors, deltas)
    boxes = clip_boxes(boxes, im_info[:2])
    anchor_rows = filter_small_boxes(boxes, settings.min_size * im_info[2])
    boxes, scores = boxes[anchor_rows], scores[anchor_rows]

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
    return boxes[keep], scores[keep], anchor_rows[keep]


def _top(inds, n):
    return inds[:n] if n > 0 else inds


def proposal_delta_gradient(box_diff, anchor_rows, anchors, deltas, im_info):
    """d(loss)/d(deltas) of the K anchors, given d(loss)/d(x1, y1, x2, y2) of the proposals
    (box_diff (R, 4)) that propose() decoded from anchors[anchor_rows] with deltas[anchor_rows].

    Through bbox_transform_inv (x1 = cx + dx * w - exp(dw) * w / 2, x2 = cx + dx * w +
    exp(dw) * w / 2 with the anchor's width w and centre cx; y alike with the height):
    d x1 / d dx = d x2 / d dx = w, d x1 / d dw = -exp(dw) * w / 2, d x2 / d dw = exp(dw) * w / 2.
    A coordinate that clipping moved onto the image border (decoded outside [0, W - 1] or
    [0, H - 1]) is constant near there, so its gradient is 0; a box decoded exactly on the border
    keeps it. Anchors that made no proposal get 0. Returns (K, 4) float32.
    """
    box_diff = np.asarray(box_diff, dtype=np.float64).reshape(-1, 4)
    anchor_rows = np.asarray(anchor_rows, dtype=np.intp).ravel()
    if box_diff.shape[0] != anchor_rows.size:
        raise ValueError('proposal_delta_gradient: %d box gradients for %d proposals'
                         % (box_diff.shape[0], anchor_rows.size))
    grad = np.zeros((deltas.shape[0], 4), dtype=np.float64)
    if anchor_rows.size == 0:
        return grad.astype(np.float32)
    rows_deltas = deltas[anchor_rows]
    # Decoded as the forward pass decoded them (in the deltas' float type), to tell which
    # coordinates the forward pass clipped.
    unclipped = bbox_transform_inv(anchors[anchor_rows], rows_deltas)
    height, width = float(im_info[0]), float(im_info[1])
    limits = np.array([width, height, width, height]) - 1
    inside = (unclipped >= 0) & (unclipped <= limits)
    g = np.where(inside, box_diff, 0.0)
    anchors = np.asarray(anchors, dtype=np.float64)[anchor_rows]
    size = np.stack([anchors[:, 2] - anchors[:, 0] + 1.0, anchors[:, 3] - anchors[:, 1] + 1.0],
                    axis=1)
    scaled = np.exp(np.asarray(rows_deltas[:, 2:4], dtype=np.float64)) * size
    # Columns: (x, y) centre shifts from g[x1] + g[x2]; (w, h) log-scales from g[x2] - g[x1].
    rows = np.empty((anchor_rows.size, 4))
    rows[:, 0:2] = size * (g[:, 0:2] + g[:, 2:4])
    rows[:, 2:4] = 0.5 * scaled * (g[:, 2:4] - g[:, 0:2])
    np.add.at(grad, anchor_rows, rows)
    return grad.astype(np.float32)
