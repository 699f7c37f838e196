"""ProposalTargetLayer: samples the detector's training RoIs from the RPN's proposals and gives
them class labels and box-regression targets (end-to-end training, paper Sec. 3.2).

Bottoms: rpn_rois (R, 5) [batch index, x1, y1, x2, y2], gt_boxes (G, 5) [x1, y1, x2, y2, class].
Tops: rois (N, 5), labels (N,), bbox_targets, bbox_inside_weights, bbox_outside_weights, each
(N, 4 * num_classes). param_str: num_classes (required).
The sampling rule and target normalization are cfg.TRAIN's, read at setup (core.roi_targets).
"""
import numpy as np

import caffe
from core.roi_targets import BoxTargets, expand_bbox_targets, sample_rois_with_targets
from core.sampling import RoISampling
from fast_rcnn.config import cfg
from rpn.layer_io import gt_boxes_from_blob, gt_boxes_of_image, parse_param_str, zero_bottom_diffs


class ProposalTargetLayer(caffe.Layer):
    bottoms = ('rpn_rois', 'gt_boxes')
    tops = ('rois', 'labels', 'bbox_targets', 'bbox_inside_weights', 'bbox_outside_weights')

    def setup(self, bottom, top):
        params = parse_param_str(self, {}, required=('num_classes',))
        self._num_classes = params['num_classes']
        if not isinstance(self._num_classes, int) or self._num_classes < 2:
            raise caffe.CaffeError('ProposalTargetLayer %r: num_classes should be an integer >= 2 '
                                   '(background included); got %r'
                                   % (self.name, self._num_classes))
        self._sampling = RoISampling.from_cfg(cfg.TRAIN)
        self._targets = BoxTargets.from_cfg(cfg.TRAIN)
        top[0].reshape(1, 5)
        top[1].reshape(1)
        for t in top[2:]:
            t.reshape(1, 4 * self._num_classes)

    def reshape(self, bottom, top):
        # The number of sampled RoIs is known only after forward.
        pass

    def forward(self, bottom, top):
        rpn_rois = np.asarray(bottom[0].data, dtype=np.float64).reshape(-1, 5)
        gt_boxes = gt_boxes_from_blob(bottom[1])
        # TRAIN.BATCH_SIZE RoIs are split over the images actually in the batch (the release's
        # layer counts one image), whatever TRAIN.IMS_PER_BATCH says for Fast R-CNN training.
        num_images = _num_images(rpn_rois, gt_boxes)
        try:
            per_image, fg_per_image = self._sampling.per_image(num_images)
        except ValueError as e:
            raise caffe.CaffeError('ProposalTargetLayer %r: %s' % (self.name, e)) from None
        targets = self._targets
        normalization = (targets.means, targets.stds) if targets.precomputed else None
        blob_rois, labels, target_data = [], [], []
        for n in range(num_images):
            image_gt = gt_boxes_of_image(gt_boxes, n)
            # The ground-truth boxes are candidates too (the release's choice): early in training
            # the proposals may not yet reach FG_THRESH.
            candidates = np.vstack((rpn_rois[rpn_rois[:, 0] == n, 1:], image_gt[:, :4]))
            rois, image_labels, image_targets = sample_rois_with_targets(
                candidates, image_gt, self._sampling, per_image, fg_per_image, normalization)
            image_rois = np.zeros((rois.shape[0], 5), dtype=np.float32)
            image_rois[:, 0] = n
            image_rois[:, 1:] = rois
            blob_rois.append(image_rois)
            labels.append(image_labels)
            target_data.append(image_targets)
        blob_rois, labels = np.vstack(blob_rois), np.concatenate(labels)
        bbox_targets, inside, outside = expand_bbox_targets(np.vstack(target_data),
                                                            self._num_classes,
                                                            targets.inside_weights)
        for t, values in zip(top, (blob_rois, labels, bbox_targets, inside, outside)):
            t.reshape(*values.shape)
            t.data[...] = values

    def backward(self, top, propagate_down, bottom):
        zero_bottom_diffs(propagate_down, bottom)


def _num_images(rpn_rois, gt_boxes):
    """Images in the batch: one more than the largest image index of the proposals and of the
    ground truth (an index column exists only for several images)."""
    last = rpn_rois[:, 0].max() if rpn_rois.shape[0] else 0
    if gt_boxes.shape[1] == 6 and gt_boxes.shape[0]:
        last = max(last, gt_boxes[:, 5].max())
    return int(last) + 1
