"""Testing a Fast R-CNN / Faster R-CNN network: image -> blobs -> net -> scored, regressed boxes per
class (im_detect); then over a whole dataset, per-class thresholding and NMS, a cap on detections
per image, saving and evaluation (test_net)."""
import hashlib
import json
import os
import pickle

import cv2
import numpy as np

from caffe.io import atomic_write
from fast_rcnn.bbox_transform import bbox_transform_inv, clip_boxes
from fast_rcnn.config import cfg, get_output_dir
from fast_rcnn.nms_wrapper import nms
from rpn.dense_windows import dense_windows
from utils.blob import im_list_to_blob, prep_im_for_blob
from utils.image_file import check_image_file
from utils.timer import Timer

# RoIs of a multi-scale pyramid are pooled at the level where their area is closest to 224^2,
# the ImageNet pre-training size (the release's choice, after SPPnet).
_CANONICAL_AREA = 224 * 224


def _get_image_blob(im):
    """The image pyramid of cfg.TEST.SCALES as one (n_scales, 3, H, W) blob, and the scales."""
    ims, scales = [], []
    for target_size in cfg.TEST.SCALES:
        scaled, scale = prep_im_for_blob(im, cfg.PIXEL_MEANS, target_size, cfg.TEST.MAX_SIZE)
        ims.append(scaled)
        scales.append(scale)
    return im_list_to_blob(ims), np.array(scales, dtype=np.float64)


def _project_im_rois(im_rois, scales):
    """Image-coordinate RoIs scaled onto the pyramid level each one is pooled from."""
    im_rois = np.asarray(im_rois, dtype=np.float64)
    if len(scales) > 1:
        widths = im_rois[:, 2] - im_rois[:, 0] + 1
        heights = im_rois[:, 3] - im_rois[:, 1] + 1
        scaled_areas = (widths * heights)[:, np.newaxis] * (scales[np.newaxis, :] ** 2)
        levels = np.abs(scaled_areas - _CANONICAL_AREA).argmin(axis=1)[:, np.newaxis]
    else:
        levels = np.zeros((im_rois.shape[0], 1), dtype=np.int64)
    return im_rois[:, :4] * scales[levels], levels


def _get_rois_blob(im_rois, scales):
    rois, levels = _project_im_rois(im_rois, scales)
    return np.hstack((levels, rois)).astype(np.float32, copy=False)


def _get_blobs(im, rois):
    data, scales = _get_image_blob(im)
    blobs = {'data': data}
    if not cfg.TEST.HAS_RPN:
        if rois is None:
            raise ValueError('im_detect: a net without an RPN (cfg.TEST.HAS_RPN False) needs '
                             'proposal boxes')
        blobs['rois'] = _get_rois_blob(rois, scales)
    return blobs, scales


def im_detect(net, im, boxes=None):
    """Detects objects in one BGR image.

    boxes: (R, 4) proposals in image pixels for a Fast R-CNN net; None for a net with an RPN
    (cfg.TEST.HAS_RPN), whose 'rois' output is used. Returns scores (R, K) and boxes (R, 4K):
    per class, the proposal moved by that class's regression (cfg.TEST.BBOX_REG) and clipped to
    the image, in image pixels.
    """
    blobs, im_scales = _get_blobs(im, boxes)

    dedup = cfg.DEDUP_BOXES > 0 and not cfg.TEST.HAS_RPN
    if dedup:
        # RoIs that fall on the same feature-map cells give identical outputs; run each once.
        keys = np.round(blobs['rois'] * cfg.DEDUP_BOXES).astype(np.int64)
        _, index, inv_index = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        inv_index = np.asarray(inv_index).ravel()
        blobs['rois'] = blobs['rois'][index, :]
        boxes = np.asarray(boxes)[index, :]

    forward_kwargs = {'data': blobs['data'].astype(np.float32, copy=False)}
    if cfg.TEST.HAS_RPN:
        if len(im_scales) != 1:
            raise ValueError('im_detect: an RPN net tests at one scale; cfg.TEST.SCALES = %s'
                             % (cfg.TEST.SCALES,))
        data = blobs['data']
        forward_kwargs['im_info'] = np.array([[data.shape[2], data.shape[3], im_scales[0]]],
                                             dtype=np.float32)
    else:
        forward_kwargs['rois'] = blobs['rois']
    for name, value in forward_kwargs.items():
        if name not in net.blobs:
            raise ValueError('im_detect: the net has no input blob %r (cfg.TEST.HAS_RPN is %s; '
                             'does it match the prototxt?)' % (name, cfg.TEST.HAS_RPN))
        net.blobs[name].reshape(*value.shape)
    blobs_out = net.forward(**forward_kwargs)

    if cfg.TEST.HAS_RPN:
        rois = net.blobs['rois'].data.copy()
        boxes = rois[:, 1:5] / im_scales[0]
    boxes = np.asarray(boxes, dtype=np.float64)[:, :4]

    if cfg.TEST.SVM:
        scores = net.blobs['cls_score'].data.copy()
    else:
        scores = np.array(blobs_out['cls_prob'], copy=True)
    scores = scores.reshape(scores.shape[0], -1)

    if cfg.TEST.BBOX_REG:
        deltas = np.asarray(blobs_out['bbox_pred']).reshape(scores.shape[0], -1)
        pred_boxes = clip_boxes(bbox_transform_inv(boxes, deltas), im.shape)
    else:
        pred_boxes = np.tile(boxes, (1, scores.shape[1]))

    if dedup:
        scores = scores[inv_index, :]
        pred_boxes = pred_boxes[inv_index, :]
    return scores, pred_boxes


def detections_for_class(scores, boxes, cls, thresh, nms_thresh):
    """(N, 5) float32 [x1, y1, x2, y2, score] of class `cls` above thresh, after NMS."""
    inds = np.where(scores[:, cls] > thresh)[0]
    dets = np.hstack((boxes[inds, cls * 4:(cls + 1) * 4],
                      scores[inds, cls][:, np.newaxis])).astype(np.float32, copy=False)
    if dets.shape[0] == 0:
        return dets.reshape(0, 5)
    keep = nms(dets, nms_thresh)
    return dets[keep, :]


def limit_detections(dets_per_class, max_per_image):
    """Keeps the max_per_image highest-scoring detections of an image over all classes;
    dets_per_class lists (N, 5) arrays (the background entry excluded)."""
    if max_per_image <= 0:
        return dets_per_class
    scores = np.hstack([d[:, -1] for d in dets_per_class]) if dets_per_class else []
    if len(scores) <= max_per_image:
        return dets_per_class
    image_thresh = np.sort(scores)[-max_per_image]
    return [d[d[:, -1] >= image_thresh] for d in dets_per_class]


def apply_nms(all_boxes, thresh):
    """Per-class NMS over all_boxes[cls][image] (N, 5) arrays; returns a new nested list."""
    nms_boxes = [[[] for _ in per_class] for per_class in all_boxes]
    for cls, per_class in enumerate(all_boxes):
        for i, dets in enumerate(per_class):
            if len(dets) == 0:
                continue
            dets = np.asarray(dets, dtype=np.float32)
            nms_boxes[cls][i] = dets[nms(dets, thresh), :]
    return nms_boxes


def vis_detections(im, class_name, dets, thresh=0.3, ax=None):
    """Draws the detections of one class scoring >= thresh on a matplotlib axis (a new figure's
    when ax is None) and returns the axis. im is BGR."""
    import matplotlib
    if ax is None:
        matplotlib.use('Agg', force=False)
        import matplotlib.pyplot as plt
        _, ax = plt.subplots(figsize=(8, 8 * im.shape[0] / max(im.shape[1], 1)))
        ax.imshow(im[:, :, ::-1])
        ax.axis('off')
    for det in dets:
        if det[-1] < thresh:
            continue
        x1, y1, x2, y2 = (float(v) for v in det[:4])
        ax.add_patch(matplotlib.patches.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False,
                                                  edgecolor='red', linewidth=2))
        ax.text(x1, y1 - 2, '%s %.3f' % (class_name, det[-1]), fontsize=10, color='white',
                bbox=dict(facecolor='blue', alpha=0.5, pad=1))
    return ax


def save_detections_image(im, class_names, dets_per_class, path, thresh=0.3, title=None):
    """Writes a PNG of the BGR image with every class's detections >= thresh drawn on it.
    class_names and dets_per_class are parallel lists."""
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt
    height, width = im.shape[:2]
    fig, ax = plt.subplots(figsize=(8, 8 * height / max(width, 1)))
    ax.imshow(im[:, :, ::-1])
    ax.axis('off')
    for name, dets in zip(class_names, dets_per_class):
        vis_detections(im, name, dets, thresh=thresh, ax=ax)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = path + '.tmp.png'
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def save_pickle(obj, path):
    """Pickles obj to path atomically (a temporary file, then a rename)."""
    tmp = '%s.tmp%d' % (path, os.getpid())
    try:
        with open(tmp, 'wb') as f:
            pickle.dump(obj, f, pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def detections_key(net, imdb, max_per_image, thresh):
    """What a test run's detections depend on: the weights and the net definition (by content),
    the image set, and the test-time settings. Saved beside detections.pkl, it tells a cache made
    by another model, image set or cfg.TEST from one that can be reused."""
    def digest_file(path):
        h = hashlib.sha1()
        with open(path, 'rb') as f:
            for chunk in iter(lambda: f.read(1 << 22), b''):
                h.update(chunk)
        return h.hexdigest()

    weights = getattr(net, 'weights_file', None)
    prototxt = getattr(net, '_source', None)
    return {
        'weights': os.path.abspath(weights) if weights else None,
        'weights_sha1': digest_file(weights) if weights and os.path.isfile(weights) else None,
        'prototxt_sha1': (digest_file(prototxt) if prototxt and os.path.isfile(prototxt)
                          else None),
        'imdb': imdb.name,
        'images_sha1': image_set_digest(imdb),
        'settings': repr((sorted((k, repr(v)) for k, v in cfg.TEST.items()),
                          repr(cfg.PIXEL_MEANS), max_per_image, thresh)),
    }


def image_set_digest(imdb):
    """A digest of the imdb's image ids, in order: detections are per image index."""
    return hashlib.sha1('\n'.join(map(str, imdb.image_index)).encode()).hexdigest()


def _key_file(det_file):
    return det_file + '.key.json'


def read_detections_key(det_file):
    """The key saved with det_file, or None when there is none (or it is unreadable)."""
    try:
        with open(_key_file(det_file)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def test_net(net, imdb, max_per_image=100, thresh=0.05, vis=False):
    """Detects objects in every image of imdb, saves all_boxes to
    <output dir>/detections.pkl and evaluates them with imdb.evaluate_detections.

    all_boxes[cls][image] is an (N, 5) array [x1, y1, x2, y2, score]; class 0 (background) holds
    empty lists. vis writes one PNG per image to <output dir>/vis/. Returns all_boxes.

    detections.pkl is reused (not recomputed) only when the key saved beside it matches this
    run's weights, net, image set and test settings (see detections_key).
    """
    output_dir = get_output_dir(imdb, net)
    det_file = os.path.join(output_dir, 'detections.pkl')
    key = detections_key(net, imdb, max_per_image, thresh)
    if not vis and os.path.isfile(det_file) and read_detections_key(det_file) == key:
        try:
            with open(det_file, 'rb') as f:
                all_boxes = pickle.load(f)
        except Exception:
            all_boxes = None  # unreadable: detect again
        if all_boxes is not None:
            print('Reusing the detections in %s (same weights, net, image set and TEST '
                  'settings; delete it to detect again)' % det_file, flush=True)
            print('Evaluating detections', flush=True)
            imdb.evaluate_detections(all_boxes, output_dir)
            return all_boxes

    all_boxes = _detect_all(net, imdb, max_per_image, thresh, vis, output_dir)
    # The old key goes first: a crash between the two writes must not leave it vouching for
    # the new detections.
    if os.path.exists(_key_file(det_file)):
        os.remove(_key_file(det_file))
    save_pickle(all_boxes, det_file)
    atomic_write(_key_file(det_file), json.dumps(key, indent=1).encode())
    print('Wrote detections to %s' % det_file, flush=True)
    print('Evaluating detections', flush=True)
    imdb.evaluate_detections(all_boxes, output_dir)
    return all_boxes


def _detect_all(net, imdb, max_per_image, thresh, vis, output_dir):
    num_images = imdb.num_images
    all_boxes = [[[] for _ in range(num_images)] for _ in range(imdb.num_classes)]
    timers = {'im_detect': Timer(), 'misc': Timer()}
    # 'dense': the one-stage system's sliding windows (Table 10), made per image, not stored.
    dense = not cfg.TEST.HAS_RPN and cfg.TEST.PROPOSAL_METHOD == 'dense'
    roidb = None if cfg.TEST.HAS_RPN or dense else imdb.roidb

    for i in range(num_images):
        proposals = None
        if roidb is not None:
            proposals = roidb[i]['boxes'][roidb[i]['gt_classes'] == 0]
        path = imdb.image_path_at(i)
        check_image_file(path)  # cv2 decodes a truncated JPEG without an error
        im = cv2.imread(path)
        if im is None:
            raise FileNotFoundError('cannot read image %s (image %d of %s)'
                                    % (path, i, imdb.name))
        if dense:
            proposals = dense_windows(im.shape[0], im.shape[1], cfg.TEST.SCALES,
                                      cfg.TEST.MAX_SIZE)
        timers['im_detect'].tic()
        scores, boxes = im_detect(net, im, proposals)
        timers['im_detect'].toc()

        timers['misc'].tic()
        dets = [detections_for_class(scores, boxes, j, thresh, cfg.TEST.NMS)
                for j in range(1, imdb.num_classes)]
        dets = limit_detections(dets, max_per_image)
        for j, d in enumerate(dets, start=1):
            all_boxes[j][i] = d
        if vis:
            name = os.path.splitext(os.path.basename(path))[0]
            save_detections_image(im, imdb.classes[1:], dets,
                                  os.path.join(output_dir, 'vis', '%s.png' % name))
        timers['misc'].toc()
        print('im_detect: {:d}/{:d}  {:.3f}s {:.3f}s'.format(
            i + 1, num_images, timers['im_detect'].average_time, timers['misc'].average_time),
            flush=True)
    return all_boxes
