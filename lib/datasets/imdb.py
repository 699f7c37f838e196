"""The image database base class: a named list of images, their classes and a roidb.

A roidb is a list with one dict per image:
  'boxes'       (N, 4) 0-based [x1, y1, x2, y2], inclusive corners (uint16 for ground truth)
  'gt_classes'  (N,) int32; 0 for proposals that are not ground truth
  'gt_overlaps' scipy.sparse.csr_matrix (N, num_classes): IoU of each box with the
                ground truth of each class (1 at a ground-truth box's own class, -1 for crowd)
  'seg_areas'   (N,) float32
  'flipped'     bool
  'width', 'height'  image size in pixels (from the annotation, so no image is read)
  'image'       the image path, added when the roidb is first built
"""
import os

import numpy as np
import scipy.sparse

from datasets import ds_utils, proposals_file
from utils import paths
from utils.image_file import image_header

# Area ranges of evaluate_recall, in pixels^2 (the release's names and bounds).
RECALL_AREAS = {
    'all': (0 ** 2, 1e5 ** 2),
    'small': (0 ** 2, 32 ** 2),
    'medium': (32 ** 2, 96 ** 2),
    'large': (96 ** 2, 1e5 ** 2),
    '96-128': (96 ** 2, 128 ** 2),
    '128-256': (128 ** 2, 256 ** 2),
    '256-512': (256 ** 2, 512 ** 2),
    '512-inf': (512 ** 2, 1e5 ** 2),
}


def _bbox_overlaps(boxes, query_boxes):
    # Imported on use so that reading datasets works before the Cython extensions are built.
    from core.boxes import box_overlaps
    return box_overlaps(boxes, query_boxes)


class imdb:
    """Base class of the datasets. Subclasses set _classes and _image_index, implement
    image_path_at and at least one <method>_roidb, and may override evaluate_detections."""

    def __init__(self, name, classes=None, data_dir=None):
        self._name = name
        # Where datasets, their caches and precomputed proposals are (cfg.DATA_DIR).
        self.data_dir = data_dir or paths.DATA_DIR
        self._classes = tuple(classes) if classes is not None else ()
        self._image_index = []
        self._obj_proposer = 'gt'
        self._roidb = None
        self._roidb_handler = self.default_roidb
        self._flipped = False
        self.config = {}

    @property
    def name(self):
        return self._name

    @property
    def num_classes(self):
        return len(self._classes)

    @property
    def classes(self):
        return self._classes

    @property
    def image_index(self):
        return self._image_index

    @property
    def num_images(self):
        return len(self.image_index)

    @property
    def roidb_handler(self):
        return self._roidb_handler

    @roidb_handler.setter
    def roidb_handler(self, handler):
        self._roidb_handler = handler

    def set_proposal_method(self, method):
        """Chooses where the roidb's boxes come from: 'gt', 'rpn', 'selective_search', ...
        (any <method>_roidb of the subclass)."""
        handler = getattr(self, method + '_roidb', None)
        if handler is None or not callable(handler):
            methods = sorted(m[:-len('_roidb')] for m in dir(type(self))
                             if m.endswith('_roidb') and not m.startswith('_')
                             and m != 'default_roidb')
            raise ValueError('{}: unknown proposal method {!r}; available: {}'
                             .format(self.name, method, ', '.join(methods)))
        if self._flipped:
            raise RuntimeError('{}: set the proposal method before append_flipped_images()'
                               .format(self.name))
        self._obj_proposer = method
        self._roidb_handler = handler
        self._roidb = None

    @property
    def roidb(self):
        if self._roidb is None:
            roidb = self.roidb_handler()
            self._add_image_info(roidb)
            self._roidb = roidb
        return self._roidb

    @property
    def cache_path(self):
        path = os.path.abspath(os.path.join(self.data_dir, 'cache'))
        os.makedirs(path, exist_ok=True)
        return path

    def image_path_at(self, i):
        raise NotImplementedError

    def _gt_available(self):
        """Whether the image set has ground-truth annotations (a test split may not)."""
        return True

    def rpn_roidb(self):
        """Proposals from the file named by config['rpn_file'] (one (N, 4) or (N, 5) array
        per image: the .npz tools/rpn_generate.py writes, or the release's .pkl; see
        datasets.proposals_file), merged after the ground truth where the ground truth is
        available."""
        filename = self.config.get('rpn_file')
        if not filename:
            raise ValueError("{}: set config['rpn_file'] to the RPN proposals file"
                             .format(self.name))
        if not os.path.isfile(filename):
            raise FileNotFoundError('RPN proposals file not found: {}'.format(filename))
        print('loading {}'.format(filename))
        box_list = proposals_file.load_proposals(filename, self.num_images)
        if self._gt_available():
            gt_roidb = self.gt_roidb()
            return self.merge_roidbs(gt_roidb, self.create_roidb_from_box_list(box_list, gt_roidb))
        return self.create_roidb_from_box_list(box_list, None)

    def _proposals_roidb(self, method, source, cache_name, key, load, per_entry=None):
        """A roidb of precomputed proposals (method's, read from source, a file or folder):
        load(gt_roidb) gives their roidb, merged after the ground truth where the image set
        has it, each merged entry then passed through per_entry; cached in
        data/cache/<cache_name> under key."""
        if not os.path.exists(source):
            raise FileNotFoundError(
                '{} proposals not found: {} (see data/README.md; or choose another proposal '
                "method, e.g. set_proposal_method('gt'))".format(method.replace('_', ' '),
                                                                  source))

        def build():
            if not self._gt_available():
                return load(None)
            gt_roidb = self.gt_roidb()
            roidb = self.merge_roidbs(gt_roidb, load(gt_roidb))
            return [per_entry(entry) for entry in roidb] if per_entry else roidb

        return ds_utils.load_or_build(os.path.join(self.cache_path, cache_name), key, build,
                                      '{} {} roidb'.format(self.name, method.replace('_', ' ')))

    def default_roidb(self):
        raise NotImplementedError('{}: no proposal method set; call set_proposal_method()'
                                  .format(self.name))

    def evaluate_detections(self, all_boxes, output_dir=None):
        """all_boxes[cls][image] is an (N, 5) array of detections [x1, y1, x2, y2, score]
        (0-based) or an empty list."""
        raise NotImplementedError

    def evaluate(self, all_boxes, output_dir=None):
        """evaluate_detections as a JSON-able summary: at least {'metric', 'mean_ap'}, and
        'per_class_ap'; datasets that can may add 'pr_curves' {class: (recall, precision, AP)}
        (for drawing; not JSON). The base wraps evaluate_detections' number."""
        value = self.evaluate_detections(all_boxes, output_dir)
        return {'metric': type(self).__name__, 'mean_ap': value}

    def competition_mode(self, on):
        """Competition mode keeps the result files under fixed names; the base has none."""

    def image_size_at(self, i):
        """(width, height) of image i, from the roidb when it has them, else read from disk."""
        if self._roidb is not None and 'width' in self._roidb[i]:
            return self._roidb[i]['width'], self._roidb[i]['height']
        return self._read_image_size(self.image_path_at(i))

    @staticmethod
    def _read_image_size(path):
        # The header alone: decoding every image would take minutes on a large dataset.
        return image_header(path)

    def _add_image_info(self, roidb):
        if len(roidb) != self.num_images:
            raise ValueError('{}: the roidb has {} entries for {} images'
                             .format(self.name, len(roidb), self.num_images))
        for i, entry in enumerate(roidb):
            entry['image'] = self.image_path_at(i)
            if 'width' not in entry or 'height' not in entry:
                entry['width'], entry['height'] = self._read_image_size(entry['image'])

    def append_flipped_images(self):
        """Appends a horizontally mirrored copy of every roidb entry (x1' = W - x2 - 1,
        x2' = W - x1 - 1) and doubles the image index to match."""
        num_images = self.num_images
        roidb = self.roidb
        for i in range(num_images):
            entry = roidb[i]
            width = int(entry['width'])
            boxes = entry['boxes']
            flipped = boxes.copy()
            x1 = boxes[:, 0].astype(np.int64) if boxes.dtype.kind in 'ui' else boxes[:, 0]
            x2 = boxes[:, 2].astype(np.int64) if boxes.dtype.kind in 'ui' else boxes[:, 2]
            new_x1 = width - x2 - 1
            new_x2 = width - x1 - 1
            if (new_x1 < 0).any() or (new_x2 < new_x1).any():
                raise ValueError('{}: image {} ({}) has boxes outside its width {}; cannot flip'
                                 .format(self.name, i, entry.get('image'), width))
            flipped[:, 0] = new_x1
            flipped[:, 2] = new_x2
            new_entry = {key: value for key, value in entry.items()
                         if key not in ('boxes', 'flipped')}
            new_entry['boxes'] = flipped
            new_entry['flipped'] = True
            roidb.append(new_entry)
        self._image_index = list(self._image_index) * 2
        self._flipped = True

    def evaluate_recall(self, candidate_boxes=None, thresholds=None, area='all', limit=None):
        """Recall of the ground truth by candidate boxes (the roidb's non-gt boxes when
        candidate_boxes is None), keeping the first `limit` candidates per image.

        Each ground-truth box of the area range is paired greedily with a distinct candidate,
        best IoU first. Returns {'ar': mean recall over thresholds, 'recalls', 'thresholds'
        (default 0.5:0.05:0.95), 'gt_overlaps': the sorted IoUs of the pairs}.
        """
        if area not in RECALL_AREAS:
            raise ValueError('unknown area {!r}; choose from {}'
                             .format(area, ', '.join(RECALL_AREAS)))
        area_lo, area_hi = RECALL_AREAS[area]
        gt_overlaps = []
        num_pos = 0
        for i in range(self.num_images):
            entry = self.roidb[i]
            max_gt_overlaps = entry['gt_overlaps'].toarray().max(axis=1)
            gt_inds = np.where((entry['gt_classes'] > 0) & (max_gt_overlaps == 1))[0]
            gt_boxes = entry['boxes'][gt_inds, :]
            gt_areas = entry['seg_areas'][gt_inds]
            in_range = (gt_areas >= area_lo) & (gt_areas <= area_hi)
            gt_boxes = gt_boxes[in_range, :]
            num_pos += len(gt_boxes)

            if candidate_boxes is None:
                boxes = entry['boxes'][entry['gt_classes'] == 0, :]
            else:
                boxes = candidate_boxes[i]
            if boxes.shape[0] == 0 or gt_boxes.shape[0] == 0:
                continue
            if limit is not None and boxes.shape[0] > limit:
                boxes = boxes[:limit, :]

            overlaps = _bbox_overlaps(boxes[:, :4], gt_boxes)
            found = np.zeros(gt_boxes.shape[0])
            for j in range(min(gt_boxes.shape[0], boxes.shape[0])):
                # the gt box best covered by any remaining candidate takes that candidate
                best_box_per_gt = overlaps.argmax(axis=0)
                best_ovr_per_gt = overlaps.max(axis=0)
                gt_ind = best_ovr_per_gt.argmax()
                box_ind = best_box_per_gt[gt_ind]
                found[j] = overlaps[box_ind, gt_ind]
                overlaps[box_ind, :] = -1
                overlaps[:, gt_ind] = -1
            gt_overlaps.append(found)

        gt_overlaps = np.sort(np.concatenate(gt_overlaps)) if gt_overlaps else np.zeros(0)
        if thresholds is None:
            thresholds = np.arange(0.5, 0.95 + 1e-5, 0.05)
        thresholds = np.asarray(thresholds, dtype=np.float64)
        recalls = np.array([(gt_overlaps >= t).sum() / max(num_pos, 1) for t in thresholds])
        return {'ar': float(recalls.mean()) if recalls.size else 0.0, 'recalls': recalls,
                'thresholds': thresholds, 'gt_overlaps': gt_overlaps}

    def dense_roidb(self):
        """Dense sliding windows (core.dense_windows) as proposals: the training RoIs of the
        paper's one-stage system (Table 10), merged after the ground truth. The windows are made
        for images scaled as training scales them: config['dense_scales'] (short sides) and
        config['dense_max_size'], which training sets to its image scaling (default: the
        paper's 600 and 1000)."""
        from core.dense_windows import dense_windows
        scales = tuple(self.config.get('dense_scales', (600,)))
        max_size = self.config.get('dense_max_size', 1000)
        gt_roidb = self.gt_roidb()
        box_list = []
        for i in range(self.num_images):
            width, height = self.image_size_at(i)
            box_list.append(dense_windows(height, width, scales, max_size))
        return self.merge_roidbs(gt_roidb, self.create_roidb_from_box_list(box_list, gt_roidb))

    def create_roidb_from_box_list(self, box_list, gt_roidb):
        """A roidb of proposal boxes (one (N, 4+) array per image; extra columns such as
        scores are dropped). With gt_roidb, each box's gt_overlaps row holds its best IoU with
        the ground truth, at that ground truth's class."""
        if len(box_list) != self.num_images:
            raise ValueError('{}: {} proposal lists for {} images'
                             .format(self.name, len(box_list), self.num_images))
        roidb = []
        for i, boxes in enumerate(box_list):
            boxes = np.asarray(boxes)
            boxes = boxes.reshape(-1, boxes.shape[-1] if boxes.ndim == 2 else 4)[:, :4]
            num_boxes = boxes.shape[0]
            overlaps = np.zeros((num_boxes, self.num_classes), dtype=np.float32)
            entry = {}
            if gt_roidb is not None:
                gt = gt_roidb[i]
                for key in ('width', 'height'):
                    if key in gt:
                        entry[key] = gt[key]
                if gt['boxes'].size > 0 and num_boxes > 0:
                    gt_overlaps = _bbox_overlaps(boxes, gt['boxes'])
                    argmaxes = gt_overlaps.argmax(axis=1)
                    maxes = gt_overlaps.max(axis=1)
                    pos = np.where(maxes > 0)[0]
                    overlaps[pos, gt['gt_classes'][argmaxes[pos]]] = maxes[pos]
            entry.update({
                'boxes': boxes,
                'gt_classes': np.zeros(num_boxes, dtype=np.int32),
                'gt_overlaps': scipy.sparse.csr_matrix(overlaps),
                'flipped': False,
                'seg_areas': np.zeros(num_boxes, dtype=np.float32),
            })
            roidb.append(entry)
        return roidb

    @staticmethod
    def merge_roidbs(a, b):
        """Appends b's boxes to a's, entry by entry (a is changed and returned)."""
        if len(a) != len(b):
            raise ValueError('cannot merge roidbs of {} and {} entries'.format(len(a), len(b)))
        for ea, eb in zip(a, b):
            ea['boxes'] = np.vstack((ea['boxes'], eb['boxes']))
            ea['gt_classes'] = np.hstack((ea['gt_classes'], eb['gt_classes']))
            ea['gt_overlaps'] = scipy.sparse.vstack([ea['gt_overlaps'], eb['gt_overlaps']],
                                                    format='csr')
            ea['seg_areas'] = np.hstack((ea['seg_areas'], eb['seg_areas']))
            for key in ('width', 'height'):
                if key not in ea and key in eb:
                    ea[key] = eb[key]
        return a
