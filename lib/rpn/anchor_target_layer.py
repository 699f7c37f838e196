"""AnchorTargetLayer: labels and regression targets of the RPN's anchors (paper Sec. 3.1.2-3.1.3).

Bottoms: rpn_cls_score (1, 2A, H, W) (only its H x W is read), gt_boxes (G, 5) rows
[x1, y1, x2, y2, class], im_info (1, 3) [height, width, scale], data (unused; the release wires it).
Tops: rpn_labels (1, 1, A*H, W) with 1 positive, 0 negative, -1 ignored;
rpn_bbox_targets, rpn_bbox_inside_weights, rpn_bbox_outside_weights, each (1, 4A, H, W).
param_str: feat_stride (required), scales, ratios (default cfg.ANCHOR_SCALES / ANCHOR_RATIOS),
allowed_border (default 0: anchors crossing the image border are ignored, Sec. 3.3).
"""
import numpy as np

import caffe
from fast_rcnn.bbox_transform import bbox_transform
from fast_rcnn.config import cfg
from fast_rcnn.sampling import subsample_fg_bg
from rpn.generate_anchors import shifted_anchors
from rpn.layer_io import anchor_params, gt_boxes_from_blob, zero_bottom_diffs
from utils.cython_bbox import bbox_overlaps


class AnchorTargetLayer(caffe.Layer):

    def setup(self, bottom, top):
        self._anchors, self._feat_stride, params = anchor_params(self, {'allowed_border': 0})
        self._allowed_border = params['allowed_border']
        self._num_anchors = self._anchors.shape[0]
        if len(bottom) < 3:
            raise caffe.CaffeError('AnchorTargetLayer %r needs bottoms rpn_cls_score, gt_boxes, '
                                   'im_info (and data); got %d' % (self.name, len(bottom)))
        if len(top) != 4:
            raise caffe.CaffeError('AnchorTargetLayer %r has 4 tops (rpn_labels, '
                                   'rpn_bbox_targets, rpn_bbox_inside_weights, '
                                   'rpn_bbox_outside_weights); got %d' % (self.name, len(top)))
        if bottom[0].shape[1] != 2 * self._num_anchors:
            raise caffe.CaffeError('AnchorTargetLayer %r: rpn_cls_score has %d channels, but %d '
                                   'anchors per position need %d (2 scores per anchor); check '
                                   'scales/ratios in param_str'
                                   % (self.name, bottom[0].shape[1], self._num_anchors,
                                      2 * self._num_anchors))
        self.reshape(bottom, top)

    def reshape(self, bottom, top):
        height, width = bottom[0].shape[-2:]
        a = self._num_anchors
        top[0].reshape(1, 1, a * height, width)
        for t in top[1:]:
            t.reshape(1, 4 * a, height, width)

    def forward(self, bottom, top):
        if bottom[0].shape[0] != 1:
            raise caffe.CaffeError('AnchorTargetLayer %r supports only single-image batches; '
                                   'rpn_cls_score has num %d (set cfg.TRAIN.IMS_PER_BATCH 1)'
                                   % (self.name, bottom[0].shape[0]))
        height, width = bottom[0].shape[-2:]
        gt_boxes = gt_boxes_from_blob(bottom[1])
        im_info = bottom[2].data.reshape(-1)[:3]

        all_anchors = shifted_anchors(self._anchors, height, width, self._feat_stride)
        total = all_anchors.shape[0]
        inds_inside = self._inside_inds(all_anchors, im_info)
        anchors = all_anchors[inds_inside]

        labels, argmax_overlaps = label_anchors(anchors, gt_boxes[:, :4])
        self._subsample(labels)

        bbox_targets = np.zeros((anchors.shape[0], 4), dtype=np.float32)
        if gt_boxes.shape[0] > 0 and anchors.shape[0] > 0:
            bbox_targets[:] = bbox_transform(anchors, gt_boxes[argmax_overlaps, :4])
        inside_weights = np.zeros((anchors.shape[0], 4), dtype=np.float32)
        inside_weights[labels == 1] = np.asarray(cfg.TRAIN.RPN_BBOX_INSIDE_WEIGHTS)
        outside_weights = _outside_weights(labels)

        labels = _unmap(labels, total, inds_inside, fill=-1)
        bbox_targets = _unmap(bbox_targets, total, inds_inside, fill=0)
        inside_weights = _unmap(inside_weights, total, inds_inside, fill=0)
        outside_weights = _unmap(outside_weights, total, inds_inside, fill=0)

        a = self._num_anchors
        # Anchor k = (y * W + x) * A + a becomes channel a (or 4a..4a+3) at (y, x).
        labels = labels.reshape(1, height, width, a).transpose(0, 3, 1, 2)
        top[0].reshape(1, 1, a * height, width)
        top[0].data[...] = labels.reshape(1, 1, a * height, width)
        for t, values in zip(top[1:], (bbox_targets, inside_weights, outside_weights)):
            t.reshape(1, 4 * a, height, width)
            t.data[...] = values.reshape(1, height, width, 4 * a).transpose(0, 3, 1, 2)

    def backward(self, top, propagate_down, bottom):
        zero_bottom_diffs(propagate_down, bottom)

    def _inside_inds(self, all_anchors, im_info):
        border = self._allowed_border
        return np.where((all_anchors[:, 0] >= -border) &
                        (all_anchors[:, 1] >= -border) &
                        (all_anchors[:, 2] < im_info[1] + border) &
                        (all_anchors[:, 3] < im_info[0] + border))[0]

    @staticmethod
    def _subsample(labels):
        """Keeps RPN_BATCHSIZE labelled anchors, at most RPN_FG_FRACTION of them positive
        (Sec. 3.1.3); the rest become -1 (ignored)."""
        batch = cfg.TRAIN.RPN_BATCHSIZE
        fg_inds = np.where(labels == 1)[0]
        bg_inds = np.where(labels == 0)[0]
        fg_keep, bg_keep = subsample_fg_bg(fg_inds, bg_inds, batch,
                                           int(cfg.TRAIN.RPN_FG_FRACTION * batch))
        labels[fg_inds] = -1
        labels[bg_inds] = -1
        labels[fg_keep] = 1
        labels[bg_keep] = 0


def label_anchors(anchors, gt_boxes):
    """Labels anchors by IoU with ground truth (Sec. 3.1.2): 1 for IoU >= RPN_POSITIVE_OVERLAP and
    for the anchor(s) with the highest IoU for each gt box, 0 for max IoU < RPN_NEGATIVE_OVERLAP,
    -1 otherwise. Returns (labels float32, index of each anchor's best gt box)."""
    n = anchors.shape[0]
    labels = np.full(n, -1, dtype=np.float32)
    if gt_boxes.shape[0] == 0 or n == 0:
        labels[:] = 0
        return labels, np.zeros(n, dtype=np.intp)
    overlaps = bbox_overlaps(np.ascontiguousarray(anchors, dtype=np.float64),
                             np.ascontiguousarray(gt_boxes, dtype=np.float64))
    argmax_overlaps = overlaps.argmax(axis=1)
    max_overlaps = overlaps[np.arange(n), argmax_overlaps]
    gt_max_overlaps = overlaps.max(axis=0)
    # Every anchor tied at a gt box's best IoU counts; a gt box no anchor touches (best IoU 0)
    # has no best anchor (the release would make every non-touching anchor positive).
    touched = gt_max_overlaps > 0
    best_for_gt = np.where((overlaps[:, touched] == gt_max_overlaps[touched]).any(axis=1))[0]

    negative = max_overlaps < cfg.TRAIN.RPN_NEGATIVE_OVERLAP
    if not cfg.TRAIN.RPN_CLOBBER_POSITIVES:
        labels[negative] = 0
    labels[best_for_gt] = 1
    labels[max_overlaps >= cfg.TRAIN.RPN_POSITIVE_OVERLAP] = 1
    if cfg.TRAIN.RPN_CLOBBER_POSITIVES:
        labels[negative] = 0
    return labels, argmax_overlaps


def _outside_weights(labels):
    """Outside weights of the smooth-L1 loss: 1/N_sampled for every sampled anchor (the paper's
    1/N_reg normalization, Eq. 1) or, with 0 < RPN_POSITIVE_WEIGHT < 1, p / #positives and
    (1 - p) / #negatives."""
    weights = np.zeros((labels.shape[0], 4), dtype=np.float32)
    positive, negative = labels == 1, labels == 0
    p = cfg.TRAIN.RPN_POSITIVE_WEIGHT
    if p < 0:
        num_examples = int(np.sum(labels >= 0))
        if num_examples:
            weights[positive | negative] = 1.0 / num_examples
        return weights
    if not 0 < p < 1:
        raise ValueError('cfg.TRAIN.RPN_POSITIVE_WEIGHT should be negative (uniform weights) or '
                         'in (0, 1); got %r' % (p,))
    if positive.any():
        weights[positive] = p / positive.sum()
    if negative.any():
        weights[negative] = (1.0 - p) / negative.sum()
    return weights


def _unmap(values, count, inds, fill):
    """Scatters values computed for the anchors inside the image back to all `count` anchors."""
    out = np.full((count,) + values.shape[1:], fill, dtype=np.float32)
    out[inds] = values
    return out
