"""Replaying a forward pass with its selections held fixed, for finite-difference checks of
gradients that pass through selection steps (which pick rows and have no gradient of their
own)."""


def frozen_selection(kept):
    """A stand-in for core.proposals.propose that keeps the given anchors, in order, whatever
    the deltas: the proposal selection (filter, ranking, NMS, top N) held fixed. The boxes are
    decoded and clipped as the paper's Eq. 2 inverted says (core.boxes)."""
    from core.boxes import bbox_transform_inv, clip_boxes

    def propose(scores, deltas, anchors, im_info, settings, nms):
        boxes = clip_boxes(bbox_transform_inv(anchors[kept], deltas[kept]), im_info[:2])
        return boxes, scores[kept], kept
    return propose


def frozen_sampling(sample, targets_follow_rois):
    """A stand-in for core.roi_targets.sample_rois_with_targets that draws the rows of `sample`
    (a SampledRoIs) again, with their labels, from the candidate boxes it is given: the RoI
    sampling held fixed. The RoIs are the candidates' current coordinates; the regression
    targets are those of `sample` (constants), or with targets_follow_rois recomputed from the
    current RoIs and the same ground-truth boxes (paper Eq. 2, core.boxes.bbox_transform)."""
    import numpy as np
    from core.boxes import bbox_transform
    from core.roi_targets import SampledRoIs

    def sample_rois_with_targets(boxes, gt_boxes, sampling, rois_per_image, fg_rois_per_image,
                                 normalization=None):
        rois = boxes[sample.keep]
        target_data = sample.target_data.copy()
        if targets_follow_rois:
            fg = sample.labels > 0
            t = bbox_transform(rois[fg], gt_boxes[sample.gt_index[fg], :4])
            if normalization is not None:
                t = (t - np.asarray(normalization[0])) / np.asarray(normalization[1])
            target_data[fg, 1:] = t
        return SampledRoIs(rois, sample.labels, target_data, sample.keep, sample.gt_index)
    return sample_rois_with_targets
