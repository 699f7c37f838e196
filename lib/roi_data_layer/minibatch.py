"""One training minibatch from a few roidb entries: the scaled image blob and either the ground
truth (nets with an RPN) or sampled RoIs with labels and box targets (Fast R-CNN)."""
import cv2
import numpy as np

from fast_rcnn.config import cfg
from fast_rcnn.sampling import expand_bbox_targets, rois_per_image, sample_rois
from utils.blob import im_list_to_blob, prep_im_for_blob
from utils.image_file import check_image_file


def get_minibatch(roidb, num_classes):
    """Returns a dict of blobs for the entries of roidb, each image at a scale drawn from
    cfg.TRAIN.SCALES: 'data', and with cfg.TRAIN.HAS_RPN 'im_info' [[height, width, scale]] and
    'gt_boxes' (G, 5) [x1, y1, x2, y2, class] in the scaled image; otherwise 'rois' (R, 5)
    [image index, x1, y1, x2, y2], 'labels' (R,) and, with cfg.TRAIN.BBOX_REG, 'bbox_targets',
    'bbox_inside_weights', 'bbox_outside_weights' (R, 4 * num_classes)."""
    num_images = len(roidb)
    if num_images == 0:
        raise ValueError('get_minibatch: no roidb entries')
    scale_inds = np.random.randint(0, len(cfg.TRAIN.SCALES), size=num_images)
    im_blob, im_scales = _get_image_blob(roidb, scale_inds)
    blobs = {'data': im_blob}

    if cfg.TRAIN.HAS_RPN:
        if num_images != 1:
            raise ValueError('training a net with an RPN takes one image per minibatch; '
                             'set cfg.TRAIN.IMS_PER_BATCH to 1 (got %d images)' % num_images)
        blobs['gt_boxes'] = _gt_boxes(roidb[0], im_scales[0])
        blobs['im_info'] = np.array([[im_blob.shape[2], im_blob.shape[3], im_scales[0]]],
                                    dtype=np.float32)
        return blobs

    per_image, fg_per_image = rois_per_image()
    rois, labels, target_data = [], [], []
    for i, entry in enumerate(roidb):
        num_gt = int(np.sum(np.asarray(entry['gt_classes']) > 0))
        keep, num_fg = sample_rois(entry['max_overlaps'], num_gt, per_image, fg_per_image)
        im_labels = np.asarray(entry['max_classes'])[keep].astype(np.float32)
        im_labels[num_fg:] = 0
        im_rois = np.zeros((keep.size, 5), dtype=np.float32)
        im_rois[:, 0] = i
        im_rois[:, 1:] = np.asarray(entry['boxes'], dtype=np.float64)[keep, :4] * im_scales[i]
        rois.append(im_rois)
        labels.append(im_labels)
        if cfg.TRAIN.BBOX_REG:
            if 'bbox_targets' not in entry:
                raise ValueError('roidb entry for %s has no bbox_targets; call '
                                 'roi_data_layer.roidb.add_bbox_regression_targets first'
                                 % entry.get('image'))
            data = np.array(entry['bbox_targets'][keep], dtype=np.float32)
            data[num_fg:, 0] = 0  # background RoIs regress nothing
            target_data.append(data)

    blobs['rois'] = np.vstack(rois)
    blobs['labels'] = np.concatenate(labels)
    if cfg.TRAIN.BBOX_REG:
        targets, inside, outside = expand_bbox_targets(np.vstack(target_data), num_classes)
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


def _get_image_blob(roidb, scale_inds):
    """Reads, flips (for flipped entries), mean-subtracts and scales the images; returns the
    (N, 3, H, W) blob and each image's scale."""
    processed, scales = [], []
    for entry, scale_ind in zip(roidb, scale_inds):
        im = load_image(entry)
        im, scale = prep_im_for_blob(im, cfg.PIXEL_MEANS, cfg.TRAIN.SCALES[scale_ind],
                                     cfg.TRAIN.MAX_SIZE)
        processed.append(im)
        scales.append(scale)
    return im_list_to_blob(processed), np.array(scales)


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
