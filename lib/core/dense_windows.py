"""Dense sliding windows: the proposals of the paper's one-stage system (Table 10), every anchor
(the RPN's 3 scales x 3 ratios by default, core.anchors) at every position of the stride-16
feature grid, with no scoring and no regression. Fast R-CNN classifies and regresses them as it
would proposals.

With an image pyramid (several test scales, the paper's 5 after SPPnet), the windows of each
level are mapped back to the original image and pooled together.
"""
import numpy as np

from core.anchors import FEAT_STRIDE, RATIOS, SCALES, generate_anchors, shifted_anchors
from core.boxes import clip_boxes


def image_scale(height, width, target_size, max_size):
    """The scale prep_im_for_blob (utils.blob) gives an image: short side target_size, long side
    at most max_size."""
    scale = float(target_size) / min(height, width)
    if np.round(scale * max(height, width)) > max_size:
        scale = float(max_size) / max(height, width)
    return scale


def feature_map_size(height, width, feat_stride=FEAT_STRIDE):
    """The conv feature map's size for a scaled image: one cell per feat_stride pixels,
    rounding up (the VGG/ZF pooling chain)."""
    return int(np.ceil(height / float(feat_stride))), int(np.ceil(width / float(feat_stride)))


def dense_windows_at_scale(height, width, scale, scales=SCALES, ratios=RATIOS,
                           feat_stride=FEAT_STRIDE):
    """(H' * W' * A, 4) windows in original-image pixels for an image of height x width pixels
    scaled by `scale`; clipped to the image."""
    anchors = generate_anchors(ratios=ratios, scales=scales)
    fh, fw = feature_map_size(round(height * scale), round(width * scale), feat_stride)
    boxes = shifted_anchors(anchors, fh, fw, feat_stride) / scale
    return clip_boxes(boxes, (height, width))


def dense_windows(height, width, target_sizes, max_size, scales=SCALES,
                  ratios=RATIOS, feat_stride=FEAT_STRIDE):
    """Windows of every pyramid level (target_sizes: the short sides of the test scales,
    max_size: the longest side allowed), in original-image pixels, duplicates removed."""
    levels = [dense_windows_at_scale(height, width,
                                     image_scale(height, width, s, max_size),
                                     scales, ratios, feat_stride)
              for s in target_sizes]
    boxes = np.vstack(levels)
    return np.unique(np.round(boxes, 2), axis=0)
