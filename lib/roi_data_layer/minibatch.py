"""One training minibatch from a few roidb entries: the scaled image blob and either the ground
truth (nets with an RPN) or sampled RoIs with labels and box targets (Fast R-CNN)."""
from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import numpy as np

from core.roi_targets import expand_bbox_targets
from core.sampling import RoISampling
from utils.blob import im_list_to_blob, indexed_rows, prep_im_for_blob
from utils.image_file import check_image_file


@dataclass(frozen=True)
class MinibatchSettings:
    """scales: short-side lengths, one drawn per image; max_size: longest side allowed;
    pixel_means: BGR means subtracted; has_rpn: the net takes ground truth (im_info, gt_boxes)
    rather than sampled RoIs; bbox_reg: give RoIs box targets; sampling: the RoI rule;
    ims_per_batch: images per minibatch; inside_weights: the RoIs' smooth-L1 inside weights."""
    scales: tuple = (600,)
    max_size: int = 1000
    pixel_means: tuple = (102.9801, 115.9465, 122.7717)
    has_rpn: bool = False
    bbox_reg: bool = True
    sampling: RoISampling = field(default_factory=RoISampling)
    ims_per_batch: int = 2
    inside_weights: tuple = (1.0, 1.0, 1.0, 1.0)

    def means_array(self):
        """pixel_means shaped (1, 1, 3) to broadcast over an H x W x 3 image."""
        return np.asarray(self.pixel_means, dtype=np.float64).reshape(1, 1, -1)


def get_minibatch(roidb, num_classes, settings, images=None):
    """Returns a dict of blobs for the entries of roidb, each image at a scale drawn from
    settings.scales: 'data' (the images zero-padded into one blob), and with settings.has_rpn
    'im_info' (N, 3), each image's [height, width, scale] (its real extent in the blob), and
    'gt_boxes' in the scaled images: (G, 5) [x1, y1, x2, y2, class] for one image, (G, 6) with
    the image's index in the last column for several; otherwise 'rois' (R, 5)
    [image index, x1, y1, x2, y2], 'labels' (R,) and, with settings.bbox_reg, 'bbox_targets',
    'bbox_inside_weights', 'bbox_outside_weights' (R, 4 * num_classes). images: the entries'
    images if they were read already (read_ahead)."""
    num_images = len(roidb)
    if num_images == 0:
        raise ValueError('get_minibatch: no roidb entries')
    scale_inds = np.random.randint(0, len(settings.scales), size=num_images)
    im_blob, im_scales, im_shapes = _get_image_blob(roidb, scale_inds, settings, images)
    blobs = {'data': im_blob}

    if settings.has_rpn:
        blobs['im_info'] = np.array([[h, w, scale] for (h, w), scale in zip(im_shapes, im_scales)],
                                    dtype=np.float32)
        if num_images == 1:
            blobs['gt_boxes'] = _gt_boxes(roidb[0], im_scales[0])
        else:
            gt = [_gt_boxes(entry, scale) for entry, scale in zip(roidb, im_scales)]
            blobs['gt_boxes'] = np.vstack(
                [np.hstack((g, np.full((len(g), 1), i, np.float32))) for i, g in enumerate(gt)])
        return blobs

    per_image, fg_per_image = settings.sampling.per_image(num_images)
    rois, labels, target_data = [], [], []
    for i, entry in enumerate(roidb):
        num_gt = int(np.sum(np.asarray(entry['gt_classes']) > 0))
        keep, num_fg = settings.sampling.sample(entry['max_overlaps'], num_gt, per_image,
                                                fg_per_image)
        im_labels = np.asarray(entry['max_classes'])[keep].astype(np.float32)
        im_labels[num_fg:] = 0
        rois.append(indexed_rows(
            i, np.asarray(entry['boxes'], dtype=np.float64)[keep, :4] * im_scales[i]))
        labels.append(im_labels)
        if settings.bbox_reg:
            if 'bbox_targets' not in entry:
                raise ValueError('roidb entry for %s has no bbox_targets; call '
                                 'roi_data_layer.roidb.add_bbox_regression_targets first'
                                 % entry.get('image'))
            data = np.array(entry['bbox_targets'][keep], dtype=np.float32)
            data[num_fg:, 0] = 0  # background RoIs regress nothing
            target_data.append(data)

    blobs['rois'] = np.vstack(rois)
    blobs['labels'] = np.concatenate(labels)
    if settings.bbox_reg:
        targets, inside, outside = expand_bbox_targets(np.vstack(target_data), num_classes,
                                                       settings.inside_weights)
        blobs['bbox_targets'] = targets
        blobs['bbox_inside_weights'] = inside
        blobs['bbox_outside_weights'] = outside
    return blobs


def _gt_boxes(entry, im_scale):
    """The entry's ground-truth boxes in the scaled image, with their classes. Crowd regions
    (gt_overlaps -1) are not objects to find and are left out."""
    gt_classes = np.asarray(entry['gt_classes'])
    is_gt = gt_classes > 0
    if 'max_overlaps' in entry:
        is_gt &= np.asarray(entry['max_overlaps']) >= 0
    gt_inds = np.where(is_gt)[0]
    gt_boxes = np.empty((gt_inds.size, 5), dtype=np.float32)
    gt_boxes[:, :4] = np.asarray(entry['boxes'], dtype=np.float64)[gt_inds, :4] * im_scale
    gt_boxes[:, 4] = gt_classes[gt_inds]
    return gt_boxes


class ScaledImage(NamedTuple):
    """An image already mean-subtracted and scaled to settings.scales[0], the only scale."""
    image: np.ndarray
    scale: float


def read_ahead(entries, settings):
    """The entries' images for a later get_minibatch(images=...): read, and with a single
    scale (nothing left to draw) also mean-subtracted and scaled (ScaledImage)."""
    images = [load_image(entry) for entry in entries]
    if len(settings.scales) != 1:
        return images
    means = settings.means_array()
    return [ScaledImage(*prep_im_for_blob(im, means, settings.scales[0], settings.max_size))
            for im in images]


def _get_image_blob(roidb, scale_inds, settings, images=None):
    """Reads (unless images are given), flips (for flipped entries), mean-subtracts and scales
    the images; returns the (N, 3, H, W) blob, each image's scale and its scaled (height,
    width)."""
    processed, scales = [], []
    means = settings.means_array()
    if images is None:
        images = [None] * len(roidb)
    for entry, im, scale_ind in zip(roidb, images, scale_inds):
        if isinstance(im, ScaledImage):
            processed.append(im.image)
            scales.append(im.scale)
            continue
        if im is None:
            im = load_image(entry)
        im, scale = prep_im_for_blob(im, means, settings.scales[scale_ind], settings.max_size)
        processed.append(im)
        scales.append(scale)
    return im_list_to_blob(processed), np.array(scales), [im.shape[:2] for im in processed]


def load_image(entry):
    """The entry's BGR image, mirrored left-right when entry['flipped']."""
    path = entry['image']
    check_image_file(path)  # cv2 decodes a truncated JPEG without an error
    im = cv2.imread(path)
    if im is None:
        raise OSError('cannot read image %s (missing, unreadable or not an image)' % path)
    if 'width' in entry and 'height' in entry and \
            (im.shape[1], im.shape[0]) != (int(entry['width']), int(entry['height'])):
        raise ValueError('image %s is %dx%d but its roidb entry says %dx%d (stale cache?)'
                         % (path, im.shape[1], im.shape[0], entry['width'], entry['height']))
    if entry.get('flipped', False):
        im = im[:, ::-1, :]
    return im
