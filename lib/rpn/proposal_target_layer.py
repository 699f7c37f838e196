"""ProposalTargetLayer: samples the detector's training RoIs from the RPN's proposals and gives
them class labels and box-regression targets (end-to-end training, paper Sec. 3.2).

Bottoms: rpn_rois (R, 5) [image index, x1, y1, x2, y2], gt_boxes (G, 5) [x1, y1, x2, y2, class]
(G, 6) with the image index last when the batch holds several images.
Tops: rois (N, 5), labels (N,), bbox_targets, bbox_inside_weights, bbox_outside_weights, each
(N, 4 * num_classes).
param_str: num_classes (required); the RoI sampling rule, the fields of core.sampling.RoISampling
(batch_size, fg_fraction, fg_thresh, bg_thresh_hi, bg_thresh_lo); the targets' weights and
normalization, fields of core.roi_targets.BoxTargets (inside_weights, precomputed, means, stds:
with precomputed true, the targets are normalized by means and stds); defaults: the paper's
(the classes' defaults); backprop_coords (false, 'fg' or 'all'; default false) and
backprop_targets (default false).

Backward: by default none (approximate joint training: rpn_rois gets 0). For non-approximate
joint training (paper Sec. 3.2, docs/joint_training.md), backprop_coords passes the rois top's
coordinate gradient to the rpn_rois row each sampled RoI was drawn from (image by image): 'fg'
for the foreground RoIs only, 'all' for every sampled RoI; the appended ground-truth rows have no
rpn_rois row and pass nothing. The regression targets are constants unless backprop_targets is
true, which adds the bbox_targets top's gradient chained through the targets' dependence on the
RoI (core.roi_targets.bbox_target_gradient) to the foreground rows it routes.
"""
from typing import NamedTuple

import numpy as np

import caffe
from core.roi_targets import (BoxTargets, bbox_target_gradient, expand_bbox_targets,
                              route_roi_gradient, sample_rois_with_targets)
from core.sampling import RoISampling
from rpn.layer_io import gt_boxes_from_blob, gt_boxes_of_image, zero_bottom_diffs
from utils.blob import indexed_rows
from utils.param_str import (layer_name, layer_params, param_error, settings_from_params,
                             settings_keys)

# The BoxTargets fields the layer reads (the others concern the roidb's targets).
BOX_TARGET_KEYS = ('inside_weights', 'precomputed', 'means', 'stds')

# backprop_coords: which sampled RoIs pass their coordinate gradient to rpn_rois.
BACKPROP_ROWS = (False, 'fg', 'all')


class ProposalTargetLayer(caffe.Layer):
    bottoms = ('rpn_rois', 'gt_boxes')
    tops = ('rois', 'labels', 'bbox_targets', 'bbox_inside_weights', 'bbox_outside_weights')

    def setup(self, bottom, top):
        known = dict(settings_keys(RoISampling), **settings_keys(BoxTargets, BOX_TARGET_KEYS))
        known.update(backprop_coords=False, backprop_targets=False)
        params = layer_params(self, known, required=('num_classes',))
        self._backprop_rows = params['backprop_coords']
        if self._backprop_rows not in BACKPROP_ROWS or self._backprop_rows is True:
            raise param_error(self, "backprop_coords should be false, 'fg' or 'all'; got %r"
                              % (self._backprop_rows,))
        self._backprop_targets = params['backprop_targets']
        if not isinstance(self._backprop_targets, bool):
            raise param_error(self, 'backprop_targets should be true or false, got %r'
                              % (self._backprop_targets,))
        if self._backprop_targets and not self._backprop_rows:
            raise param_error(self, "backprop_targets needs backprop_coords 'fg' or 'all'")
        self._samples = []
        self._num_classes = params['num_classes']
        if not isinstance(self._num_classes, int) or self._num_classes < 2:
            raise caffe.CaffeError('ProposalTargetLayer %r: num_classes should be an integer >= 2 '
                                   '(background included); got %r'
                                   % (self.name, self._num_classes))
        try:
            self._sampling = settings_from_params(RoISampling, params, layer_name(self))
            # How targets are normalized (BoxTargets); the trainer un-normalizes bbox_pred so.
            self.box_targets = settings_from_params(BoxTargets, params, layer_name(self))
        except ValueError as e:
            raise caffe.CaffeError(str(e)) from None
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
        # batch_size RoIs are split over the images actually in the batch (the release's layer
        # counts one image).
        num_images = _num_images(rpn_rois, gt_boxes)
        try:
            per_image, fg_per_image = self._sampling.per_image(num_images)
        except ValueError as e:
            raise caffe.CaffeError('ProposalTargetLayer %r: %s' % (self.name, e)) from None
        targets = self.box_targets
        normalization = (targets.means, targets.stds) if targets.precomputed else None
        blob_rois, labels, target_data, self._samples = [], [], [], []
        for n in range(num_images):
            image_gt = gt_boxes_of_image(gt_boxes, n)
            proposal_rows = np.flatnonzero(rpn_rois[:, 0] == n)
            # The ground-truth boxes are candidates too (the release's choice): early in training
            # the proposals may not yet reach FG_THRESH.
            candidates = np.vstack((rpn_rois[proposal_rows, 1:], image_gt[:, :4]))
            sample = sample_rois_with_targets(
                candidates, image_gt, self._sampling, per_image, fg_per_image, normalization)
            rois, image_labels, image_targets = sample.rois, sample.labels, sample.target_data
            self._samples.append(_ImageSample(sample, proposal_rows, image_gt))
            blob_rois.append(indexed_rows(n, rois))
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
        if self._backprop_rows and propagate_down[0]:
            self._backward_coords(top, bottom[0])

    def _backward_coords(self, top, rpn_rois):
        """rpn_rois' diff from the sampled RoIs' coordinate diff (and, with backprop_targets,
        the targets' diff), image by image (each image's RoIs follow each other in the tops)."""
        roi_diff = top[0].cpu_diff().reshape(-1, 5)[:, 1:]
        target_diff = top[2].cpu_diff() if self._backprop_targets else None
        targets = self.box_targets
        stds = targets.stds if targets.precomputed else (1.0, 1.0, 1.0, 1.0)
        out = rpn_rois.diff.reshape(-1, 5)
        start = 0
        for s in self._samples:
            sample, n = s.sample, s.sample.keep.size
            num_proposals = s.proposal_rows.size
            fg = sample.labels > 0
            rows = sample.keep < num_proposals
            if self._backprop_rows == 'fg':
                rows &= fg
            diff = np.array(roi_diff[start:start + n], dtype=np.float64)
            if target_diff is not None and fg.any():
                slots = 4 * sample.labels[fg].astype(np.intp)[:, None] + np.arange(4)
                fg_target_diff = np.take_along_axis(target_diff[start:start + n][fg], slots,
                                                    axis=1)
                diff[fg] += bbox_target_gradient(fg_target_diff, sample.rois[fg],
                                                 s.gt_boxes[sample.gt_index[fg], :4], stds)
            out[s.proposal_rows, 1:] = route_roi_gradient(diff, sample.keep, num_proposals, rows)
            start += n


def _num_images(rpn_rois, gt_boxes):
    """Images in the batch: one more than the largest image index of the proposals and of the
    ground truth (an index column exists only for several images)."""
    last = rpn_rois[:, 0].max() if rpn_rois.shape[0] else 0
    if gt_boxes.shape[1] == 6 and gt_boxes.shape[0]:
        last = max(last, gt_boxes[:, 5].max())
    return int(last) + 1


class _ImageSample(NamedTuple):
    """What the backward pass needs of one image's forward pass: its sampled RoIs
    (core.roi_targets.SampledRoIs; keep indexes its candidates: its rpn_rois rows, then its
    ground-truth boxes), those rpn_rois rows, and its ground-truth boxes."""
    sample: object
    proposal_rows: np.ndarray
    gt_boxes: np.ndarray
