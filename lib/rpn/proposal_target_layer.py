"""ProposalTargetLayer: samples the detector's training RoIs from the RPN's proposals and gives
them class labels and box-regression targets (end-to-end training, paper Sec. 3.2).

Bottoms: rpn_rois (R, 5) [batch index, x1, y1, x2, y2], gt_boxes (G, 5) [x1, y1, x2, y2, class].
Tops: rois (N, 5), labels (N,), bbox_targets, bbox_inside_weights, bbox_outside_weights, each
(N, 4 * num_classes). param_str: num_classes (required).
"""
import numpy as np

import caffe
from fast_rcnn.bbox_transform import bbox_transform
from fast_rcnn.config import cfg
from fast_rcnn.sampling import expand_bbox_targets, rois_per_image, sample_rois
from rpn.layer_io import gt_boxes_from_blob, parse_param_str, zero_bottom_diffs
from utils.cython_bbox import bbox_overlaps


class ProposalTargetLayer(caffe.Layer):

    def setup(self, bottom, top):
        params = parse_param_str(self, {}, required=('num_classes',))
        self._num_classes = params['num_classes']
        if not isinstance(self._num_classes, int) or self._num_classes < 2:
            raise caffe.CaffeError('ProposalTargetLayer %r: num_classes should be an integer >= 2 '
                                   '(background included); got %r'
                                   % (self.name, self._num_classes))
        if len(bottom) != 2 or len(top) != 5:
            raise caffe.CaffeError('ProposalTargetLayer %r needs bottoms rpn_rois, gt_boxes and '
                                   'tops rois, labels, bbox_targets, bbox_inside_weights, '
                                   'bbox_outside_weights; got %d bottoms, %d tops'
                                   % (self.name, len(bottom), len(top)))
        top[0].reshape(1, 5)
        top[1].reshape(1)
        for t in top[2:]:
            t.reshape(1, 4 * self._num_classes)

    def reshape(self, bottom, top):
        # The number of sampled RoIs is known only after forward.
        pass

    def forward(self, bottom, top):
        all_rois = np.asarray(bottom[0].data, dtype=np.float64).reshape(-1, 5)
        gt_boxes = gt_boxes_from_blob(bottom[1])
        if all_rois.shape[0] and np.any(all_rois[:, 0] != 0):
            raise caffe.CaffeError('ProposalTargetLayer %r supports only single-image batches; '
                                   'rpn_rois has batch indices %s'
                                   % (self.name, np.unique(all_rois[:, 0]).tolist()))
        # The ground-truth boxes are candidates too (the release's choice): early in training
        # the proposals may not yet reach FG_THRESH.
        gt_rois = np.zeros((gt_boxes.shape[0], 5))
        gt_rois[:, 1:] = gt_boxes[:, :4]
        all_rois = np.vstack((all_rois, gt_rois))

        per_image, fg_per_image = rois_per_image()
        rois, labels, target_data = sample_rois_with_targets(
            all_rois[:, 1:], gt_boxes, per_image, fg_per_image)
        bbox_targets, inside, outside = expand_bbox_targets(target_data, self._num_classes)

        blob_rois = np.zeros((rois.shape[0], 5), dtype=np.float32)
        blob_rois[:, 1:] = rois
        for t, values in zip(top, (blob_rois, labels, bbox_targets, inside, outside)):
            t.reshape(*values.shape)
            t.data[...] = values

    def backward(self, top, propagate_down, bottom):
        zero_bottom_diffs(propagate_down, bottom)


def sample_rois_with_targets(boxes, gt_boxes, per_image, fg_per_image):
    """Samples RoIs among boxes (R, 4) by IoU with gt_boxes (G, 5) and computes their targets.

    Returns (rois (N, 4), labels (N,) float32 with 0 for background, target data (N, 5)
    [class, tx, ty, tw, th], normalized by cfg's means/stds when
    BBOX_NORMALIZE_TARGETS_PRECOMPUTED).
    """
    num_gt = gt_boxes.shape[0]
    if num_gt:
        overlaps = bbox_overlaps(np.ascontiguousarray(boxes, dtype=np.float64),
                                 np.ascontiguousarray(gt_boxes[:, :4], dtype=np.float64))
        gt_assignment = overlaps.argmax(axis=1)
        max_overlaps = overlaps[np.arange(boxes.shape[0]), gt_assignment]
        labels = gt_boxes[gt_assignment, 4]
    else:
        gt_assignment = np.zeros(boxes.shape[0], dtype=np.intp)
        max_overlaps = np.zeros(boxes.shape[0])
        labels = np.zeros(boxes.shape[0])

    keep, num_fg = sample_rois(max_overlaps, num_gt, per_image, fg_per_image)
    labels = labels[keep].astype(np.float32)
    labels[num_fg:] = 0
    rois = boxes[keep]

    target_data = np.zeros((keep.size, 5), dtype=np.float32)
    target_data[:, 0] = labels
    if num_gt:
        targets = bbox_transform(rois, gt_boxes[gt_assignment[keep], :4])
        if cfg.TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED:
            targets = ((targets - np.asarray(cfg.TRAIN.BBOX_NORMALIZE_MEANS))
                       / np.asarray(cfg.TRAIN.BBOX_NORMALIZE_STDS))
        target_data[:, 1:] = targets
    return rois, labels, target_data
