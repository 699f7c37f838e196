"""ProposalLayer: turns the RPN's anchor scores and regressions into object proposals (paper
Sec. 3.1 and 3.3).

Bottoms: rpn_cls_prob_reshape (N, 2A, H, W) (background scores, then foreground scores),
rpn_bbox_pred (N, 4A, H, W), im_info (N, 3) [height, width, scale] of each image.
Tops: rois (R, 5) rows [image index, x1, y1, x2, y2] in the scaled image's pixels, each
image's proposals made alone (its own limits and NMS) and stacked in image order, and
optionally scores (R, 1).

param_str (read by proposal_layer_settings): feat_stride (required); scales and ratios (default:
the paper's anchors, core.anchors); the fields of core.proposals.ProposalSettings:
pre_nms_top_n, nms_thresh, post_nms_top_n, min_size (in original-image pixels, so scaled by
im_info[2]; a top-N of 0 or less means no limit), and the test-time ablations of the paper's
Table 2, no_nms (rank without NMS) and mode ('no_cls' draws proposals at random instead of
ranking them by score, with no NMS either; 'no_reg' proposes the anchors themselves), whose
defaults are the paper's for the layer's phase (core.proposals.TRAIN_PROPOSALS in a TRAIN net,
TEST_PROPOSALS in a TEST net); use_gpu_nms (default true: NMS runs on the runtime's GPU in GPU
mode); backprop_coords (default false) and coord_grad_scale (default 1).

Backward: by default none (approximate joint training, paper Sec. 3.2: the proposals are taken as
fixed boxes, and the bottoms that ask for a gradient get 0). With backprop_coords: true
(non-approximate joint training, docs/joint_training.md) the rois top's gradient on x1, y1, x2, y2
goes to rpn_bbox_pred through the box decoding (core.proposals.proposal_delta_gradient): each
proposal to the deltas of the anchor it was decoded from, 0 where it was clipped to the image;
the scores and im_info still get 0. coord_grad_scale multiplies that gradient (1: the loss's
derivative; docs/joint_training.md says why a smaller one may train better).
"""
import functools
from typing import NamedTuple

import numpy as np

import caffe
from core.anchors import AnchorGrids
from core.proposals import (TEST_PROPOSALS, TRAIN_PROPOSALS, ProposalSettings, propose,
                            proposal_delta_gradient)
from nms.dispatch import nms, runtime_gpu
from rpn.layer_io import im_info_rows, read_anchor_params, zero_bottom_diffs
from utils.blob import indexed_rows
from utils.param_str import layer_name, settings_from_params, settings_params

# The param_str keys besides the anchors' and ProposalSettings' fields, with their defaults.
OTHER_KEYS = {'use_gpu_nms': True, 'backprop_coords': False, 'coord_grad_scale': 1.0}


class ProposalLayerSettings(NamedTuple):
    """What a proposal layer's param_str says: its reference anchors (A, 4), feat_stride, the
    proposal rule (core.proposals.ProposalSettings), and use_gpu_nms, backprop_coords,
    coord_grad_scale."""
    anchors: np.ndarray
    feat_stride: int
    proposals: ProposalSettings
    use_gpu_nms: bool
    backprop_coords: bool
    coord_grad_scale: float


def default_proposals(phase):
    """The paper's proposal rule for a net of this phase (caffe.TRAIN or caffe.TEST)."""
    return TRAIN_PROPOSALS if phase == caffe.TRAIN else TEST_PROPOSALS


def proposal_layer_settings(param_str, phase, where='ProposalLayer param_str'):
    """The settings a proposal layer with this param_str has in a net of this phase (caffe.TRAIN
    or caffe.TEST), for the layer itself and for tools that read a prototxt (an exporter). A
    ValueError naming `where` for a bad key or value."""
    defaults = default_proposals(phase)
    known = dict(settings_params(defaults), **OTHER_KEYS)
    anchors, feat_stride, params = read_anchor_params(param_str, known, where)
    proposals = settings_from_params(ProposalSettings, params, where)
    backprop_coords = params['backprop_coords']
    if not isinstance(backprop_coords, bool):
        raise ValueError('%s: backprop_coords should be true or false, got %r'
                         % (where, backprop_coords))
    use_gpu_nms = params['use_gpu_nms']
    if not isinstance(use_gpu_nms, bool):
        raise ValueError('%s: use_gpu_nms should be true or false, got %r' % (where, use_gpu_nms))
    scale = params['coord_grad_scale']
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or \
            not np.isfinite(scale) or scale < 0:
        raise ValueError('%s: coord_grad_scale should be a number >= 0, got %r' % (where, scale))
    return ProposalLayerSettings(anchors, feat_stride, proposals, use_gpu_nms, backprop_coords,
                                 float(scale))


class ProposalLayer(caffe.Layer):
    bottoms = ('rpn_cls_prob_reshape', 'rpn_bbox_pred', 'im_info')
    min_top_blobs, max_top_blobs = 1, 2  # rois, and optionally their scores

    def setup(self, bottom, top):
        try:
            settings = proposal_layer_settings(self.param_str or '', self.phase,
                                               layer_name(self))
        except ValueError as e:
            raise caffe.CaffeError(str(e)) from None
        self._anchors, self._feat_stride = settings.anchors, settings.feat_stride
        self._settings = settings.proposals
        self._use_gpu_nms = settings.use_gpu_nms
        # Whether backward passes the rois' coordinate gradient to rpn_bbox_pred; callers may
        # switch it (fast_rcnn.joint_gradients compares the two backward passes of one forward).
        self.backprop_coords = settings.backprop_coords
        self._coord_grad_scale = np.float32(settings.coord_grad_scale)
        self._selections = []
        self._num_anchors = self._anchors.shape[0]
        self._grids = AnchorGrids(self._anchors, self._feat_stride)
        a = self._num_anchors
        if bottom[0].shape[1] != 2 * a or bottom[1].shape[1] != 4 * a:
            raise caffe.CaffeError('ProposalLayer %r: %d anchors per position need %d score and '
                                   '%d regression channels; got %d and %d (check scales/ratios '
                                   'in param_str)' % (self.name, a, 2 * a, 4 * a,
                                                      bottom[0].shape[1], bottom[1].shape[1]))
        top[0].reshape(1, 5)
        if len(top) > 1:
            top[1].reshape(1, 1)

    def reshape(self, bottom, top):
        # The number of proposals is known only after forward.
        pass

    def forward(self, bottom, top):
        a = self._num_anchors
        num, height, width = bottom[0].shape[0], bottom[0].shape[-2], bottom[0].shape[-1]
        im_info = im_info_rows(bottom[2], num, 'ProposalLayer %r' % self.name)
        anchors = self._grids(height, width)
        nms_function = functools.partial(nms, gpu_id=runtime_gpu() if self._use_gpu_nms
                                         else None)
        rois, all_scores, self._selections = [], [], []
        for n in range(num):
            # Channels a of the second half are the foreground probabilities of anchor a.
            scores = bottom[0].data[n, a:, :, :].transpose(1, 2, 0).reshape(-1)
            deltas = bottom[1].data[n].transpose(1, 2, 0).reshape(-1, 4)
            boxes, scores, anchor_rows = propose(scores, deltas, anchors, im_info[n],
                                                 self._settings, nms_function)
            self._selections.append(_Selection(n, anchor_rows, anchors, im_info[n].copy()))
            rois.append(indexed_rows(n, boxes))
            all_scores.append(scores)
        rois = np.vstack(rois)
        top[0].reshape(*rois.shape)
        top[0].data[...] = rois
        if len(top) > 1:
            top[1].reshape(rois.shape[0], 1)
            top[1].data[...] = np.concatenate(all_scores)[:, None]

    def backward(self, top, propagate_down, bottom):
        zero_bottom_diffs(propagate_down, bottom)
        if self.backprop_coords and propagate_down[1] and self._settings.mode != 'no_reg':
            self._backward_coords(top[0], bottom[1])

    def _backward_coords(self, rois, bbox_pred):
        """rpn_bbox_pred's diff from the rois' coordinate diff, image by image (the rows of
        each image's selection follow each other in the rois top)."""
        a = self._num_anchors
        box_diff = rois.cpu_diff().reshape(-1, 5)[:, 1:]
        start = 0
        for sel in self._selections:
            n = sel.anchor_rows.size
            deltas = bbox_pred.cpu_data()[sel.image].transpose(1, 2, 0).reshape(-1, 4)
            grad = proposal_delta_gradient(box_diff[start:start + n], sel.anchor_rows,
                                           sel.anchors, deltas, sel.im_info)
            if self._coord_grad_scale != 1:
                grad *= self._coord_grad_scale
            height, width = bbox_pred.shape[-2:]
            bbox_pred.diff[sel.image] = grad.reshape(height, width, 4 * a).transpose(2, 0, 1)
            start += n


class _Selection(NamedTuple):
    """What the backward pass needs of one image's forward pass: its index in the batch, the
    anchor index of each of its proposals (in the rois top's order), its shifted anchors and
    im_info."""
    image: int
    anchor_rows: np.ndarray
    anchors: np.ndarray
    im_info: np.ndarray
