"""AnchorTargetLayer: labels and regression targets of the RPN's anchors (paper Sec. 3.1.2-3.1.3).

Bottoms: rpn_cls_score (N, 2A, H, W) (only N, H and W are read), gt_boxes (G, 5) rows
[x1, y1, x2, y2, class] (or (G, 6) with the image index last, for N > 1), im_info (N, 3)
[height, width, scale] of each image, data (unused; the release wires it).
Tops: rpn_labels (N, 1, A*H, W) with 1 positive, 0 negative, -1 ignored;
rpn_bbox_targets, rpn_bbox_inside_weights, rpn_bbox_outside_weights, each (N, 4A, H, W).
Each image is labelled against its own ground truth and its own extent (anchors past it are
ignored, not just those past the padded blob), batch_size anchors sampled per image.
param_str: feat_stride (required); scales and ratios (default: the paper's anchors, core.anchors);
the labelling rule, the fields of core.anchor_targets.AnchorLabelling (positive_iou,
negative_iou, clobber_positives, batch_size, fg_fraction, positive_weight, inside_weights,
allowed_border; default: the paper's, with allowed_border 0: anchors crossing the image border
are ignored, Sec. 3.3).
"""
import caffe
from core.anchor_targets import AnchorLabelling, anchor_targets
from core.anchors import AnchorGrids
from rpn.layer_io import (gt_boxes_from_blob, gt_boxes_of_image, im_info_rows,
                         read_anchor_params, zero_bottom_diffs)
from utils.param_str import layer_name, settings_from_params, settings_keys


class AnchorTargetLayer(caffe.Layer):
    # rpn_cls_score, gt_boxes, im_info and, as the release wires it, data (unused).
    min_bottom_blobs, max_bottom_blobs = 3, 4
    tops = ('rpn_labels', 'rpn_bbox_targets', 'rpn_bbox_inside_weights',
            'rpn_bbox_outside_weights')

    def setup(self, bottom, top):
        where = layer_name(self)
        try:
            self._anchors, self._feat_stride, params = read_anchor_params(
                self.param_str or '', settings_keys(AnchorLabelling), where)
            self._rule = settings_from_params(AnchorLabelling, params, where)
        except ValueError as e:
            raise caffe.CaffeError(str(e)) from None
        self._num_anchors = self._anchors.shape[0]
        self._grids = AnchorGrids(self._anchors, self._feat_stride)
        if bottom[0].shape[1] != 2 * self._num_anchors:
            raise caffe.CaffeError('AnchorTargetLayer %r: rpn_cls_score has %d channels, but %d '
                                   'anchors per position need %d (2 scores per anchor); check '
                                   'scales/ratios in param_str'
                                   % (self.name, bottom[0].shape[1], self._num_anchors,
                                      2 * self._num_anchors))
        self.reshape(bottom, top)

    def reshape(self, bottom, top):
        num, height, width = bottom[0].shape[0], bottom[0].shape[-2], bottom[0].shape[-1]
        a = self._num_anchors
        top[0].reshape(num, 1, a * height, width)
        for t in top[1:]:
            t.reshape(num, 4 * a, height, width)

    def forward(self, bottom, top):
        num, height, width = bottom[0].shape[0], bottom[0].shape[-2], bottom[0].shape[-1]
        gt_boxes = gt_boxes_from_blob(bottom[1])
        im_info = im_info_rows(bottom[2], num, 'AnchorTargetLayer %r' % self.name)
        all_anchors = self._grids(height, width)
        a = self._num_anchors
        self.reshape(bottom, top)
        for n in range(num):
            labels, bbox_targets, inside_weights, outside_weights = anchor_targets(
                all_anchors, gt_boxes_of_image(gt_boxes, n), im_info[n, 0], im_info[n, 1],
                self._rule)
            # Anchor k = (y * W + x) * A + a becomes channel a (or 4a..4a+3) at (y, x).
            top[0].data[n, 0] = labels.reshape(height, width, a).transpose(2, 0, 1).reshape(
                a * height, width)
            for t, values in zip(top[1:], (bbox_targets, inside_weights, outside_weights)):
                t.data[n] = values.reshape(height, width, 4 * a).transpose(2, 0, 1)

    def backward(self, top, propagate_down, bottom):
        zero_bottom_diffs(propagate_down, bottom)
