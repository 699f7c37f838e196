"""MS COCO through pycocotools, in the release's layout:

  data/coco/annotations/instances_<split><year>.json      (image_info_<split><year>.json for
                                                           the test splits)
  data/coco/images/<split><year>/COCO_<split><year>_<12-digit id>.jpg

minival2014 and valminusminival2014 are subsets of val2014 and read their images from
images/val2014/; test-dev2015 reads images/test2015/.

Precomputed proposals for Fast R-CNN (proposal methods selective_search, edge_boxes, mcg), one
.mat file per image as the release read them (Hosang et al.'s collection; MCG's boxes converted
to that layout):

  data/coco_proposals/<folder>/mat/COCO_val2014_0/COCO_val2014_000000447/
                                                  COCO_val2014_000000447991.mat
"""
import json
import os
import uuid

import numpy as np
import scipy.sparse
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from caffe.io import atomic_write
from core.boxes import box_coverage, filter_small_boxes, unique_boxes
from datasets import ds_utils
from datasets.imdb import imdb
from utils.data_files import save_npz

# image sets whose images live in another set's folder
IMAGE_FOLDER = {'minival2014': 'val2014',
                'valminusminival2014': 'val2014',
                'test-dev2015': 'test2015'}
# image sets with released annotations
GT_SPLITS = ('train', 'val', 'minival', 'valminusminival')
# proposal method -> its folder under data/coco_proposals (the release's names)
PROPOSAL_FOLDERS = {'selective_search': 'selective_search',
                    'edge_boxes': 'edge_boxes_AR',
                    'mcg': 'MCG'}


def proposals_dir(data_dir, method):
    """The folder of a proposal method's per-image .mat files."""
    return os.path.join(data_dir, 'coco_proposals', PROPOSAL_FOLDERS[method], 'mat')


def read_proposals(path, yx_order=False):
    """One image's proposals from its .mat file: the variable `boxes`, (N, 4) 1-based, as
    0-based uint16 [x1, y1, x2, y2] rows in the file's order. Hosang et al.'s files store
    [x1 y1 x2 y2]; MCG's [y1 x1 y2 x2] (yx_order). As in the release, coordinates below 1 become
    0 and fractions are dropped."""
    raw = np.asarray(ds_utils.read_mat_variable(path, 'boxes'), dtype=np.float64)
    if raw.size == 0:
        return np.zeros((0, 4), dtype=np.uint16)
    if raw.ndim != 2 or raw.shape[1] != 4:
        raise ValueError("{}: 'boxes' must be an (N, 4) array, got shape {}"
                         .format(path, raw.shape))
    if not np.isfinite(raw).all() or raw.max() > np.iinfo(np.uint16).max + 1:
        raise ValueError("{}: 'boxes' holds values that are not pixel coordinates".format(path))
    boxes = np.maximum(raw - 1, 0).astype(np.uint16)
    return boxes[:, (1, 0, 3, 2)] if yx_order else boxes


def mark_crowd_proposals(entry, crowd_thresh):
    """Gives gt_overlaps -1 (neither foreground nor background) to the proposals of a roidb
    entry that a crowd region covers by more than crowd_thresh of their area (core.boxes.
    box_coverage, as COCO scores detections against crowds), so that training never samples
    them; the release did this for every COCO proposal method. Returns the entry."""
    overlaps = entry['gt_overlaps'].toarray()
    crowds = np.where((overlaps == -1).all(axis=1) & (entry['gt_classes'] != 0))[0]
    proposals = np.where(entry['gt_classes'] == 0)[0]
    if len(crowds) == 0 or len(proposals) == 0:
        return entry
    covered = box_coverage(entry['boxes'][proposals], entry['boxes'][crowds]).max(axis=1)
    overlaps[proposals[covered > crowd_thresh], :] = -1
    entry['gt_overlaps'] = scipy.sparse.csr_matrix(overlaps)
    return entry


def load_coco_json(path):
    """A COCO API object for an annotation file; malformed files raise ValueError naming it."""
    if not os.path.isfile(path):
        raise FileNotFoundError('COCO annotation file not found: {}'.format(path))
    try:
        with open(path) as f:
            dataset = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError('{}: malformed JSON: {}'.format(path, err)) from None
    if not isinstance(dataset, dict):
        raise ValueError('{}: expected a JSON object with "images" and "categories", got a {}'
                         .format(path, type(dataset).__name__))
    for field in ('images', 'categories'):
        if not isinstance(dataset.get(field), list):
            raise ValueError('{}: missing field "{}" (a list)'.format(path, field))
    for k, ann in enumerate(dataset.get('annotations', [])):
        for field in ('image_id', 'category_id', 'bbox'):
            if field not in ann:
                raise ValueError('{}: annotation {} has no "{}"'.format(path, k, field))
    coco = COCO()
    coco.dataset = dataset
    coco.createIndex()
    return coco


class coco(imdb):
    def __init__(self, image_set, year, data_path=None, data_dir=None):
        imdb.__init__(self, 'coco_' + year + '_' + image_set, data_dir=data_dir)
        self._year = year
        self._image_set = image_set
        self._data_path = data_path or os.path.join(self.data_dir, 'coco')
        # top_k: proposals kept per image (the paper's Table 11: 2000 SS proposals);
        # crowd_thresh: see mark_crowd_proposals.
        self.config = {'use_salt': True,
                       'cleanup': True,
                       'rpn_file': None,
                       'top_k': 2000,
                       'crowd_thresh': 0.7,
                       'min_size': 2}
        self._COCO = load_coco_json(self._get_ann_file())
        cat_ids = self._COCO.getCatIds()
        cats = self._COCO.loadCats(cat_ids)
        self._classes = tuple(['__background__'] + [c['name'] for c in cats])
        self._class_to_ind = dict(zip(self._classes, range(self.num_classes)))
        self._class_to_coco_cat_id = dict(zip([c['name'] for c in cats], cat_ids))
        self._coco_cat_id_to_class_ind = {cat_id: i + 1 for i, cat_id in enumerate(cat_ids)}
        self._image_index = self._COCO.getImgIds()
        coco_name = image_set + year
        self._data_name = IMAGE_FOLDER.get(coco_name, coco_name)
        self._roidb_handler = self.gt_roidb
        self._salt = str(uuid.uuid4())
        self._gt_key_value = None

    def _get_ann_file(self):
        prefix = 'image_info' if 'test' in self._image_set else 'instances'
        return os.path.join(self._data_path, 'annotations',
                            prefix + '_' + self._image_set + self._year + '.json')

    def image_path_at(self, i):
        return self.image_path_from_index(self._image_index[i])

    def image_path_from_index(self, index):
        image = self._COCO.imgs[index]
        file_name = image.get('file_name') or 'COCO_{}_{:012d}.jpg'.format(self._data_name, index)
        path = os.path.join(self._data_path, 'images', self._data_name, file_name)
        if not os.path.exists(path):
            raise FileNotFoundError('{}: image {} not found: {}'
                                    .format(self._get_ann_file(), index, path))
        return path

    def _gt_available(self):
        return self._image_set in GT_SPLITS

    def gt_roidb(self):
        """Ground-truth roidb, cached in data/cache/<name>_gt_roidb.npz (rebuilt when the
        annotation file changes)."""
        cache_file = os.path.join(self.cache_path, self.name + '_gt_roidb.npz')
        return ds_utils.load_or_build(
            cache_file, self._gt_key(),
            lambda: [self._load_coco_annotation(i) for i in self.image_index],
            '{} gt roidb'.format(self.name))

    def _gt_key(self):
        # The annotation file is read once for all the caches built from it (it is large).
        if self._gt_key_value is None:
            self._gt_key_value = ds_utils.files_fingerprint([self._get_ann_file()],
                                                            extra=('coco gt_roidb v1',))
        return self._gt_key_value

    def _load_coco_annotation(self, index):
        """One gt roidb entry. COCO boxes are [x, y, w, h] in continuous coordinates; here they
        become inclusive pixel corners clipped to the image (x2 = x1 + max(0, w - 1)). Boxes
        with no area are dropped; crowd regions get gt_overlaps -1 for every class so that
        training never takes them as foreground or background."""
        im_ann = self._COCO.imgs[index]
        width, height = int(im_ann['width']), int(im_ann['height'])
        objs = self._COCO.loadAnns(self._COCO.getAnnIds(imgIds=index, iscrowd=None))
        valid = []
        for obj in objs:
            x, y, w, h = (float(v) for v in obj['bbox'])
            x1 = max(0.0, x)
            y1 = max(0.0, y)
            x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
            y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
            if obj.get('area', w * h) > 0 and x2 >= x1 and y2 >= y1:
                valid.append((obj, (x1, y1, x2, y2)))
        num_objs = len(valid)
        boxes = np.zeros((num_objs, 4), dtype=np.uint16)
        gt_classes = np.zeros(num_objs, dtype=np.int32)
        overlaps = np.zeros((num_objs, self.num_classes), dtype=np.float32)
        seg_areas = np.zeros(num_objs, dtype=np.float32)
        for ix, (obj, box) in enumerate(valid):
            cls = self._coco_cat_id_to_class_ind.get(obj['category_id'])
            if cls is None:
                raise ValueError('{}: annotation {} has category_id {} not in "categories"'
                                 .format(self._get_ann_file(), obj.get('id'), obj['category_id']))
            boxes[ix, :] = box
            gt_classes[ix] = cls
            seg_areas[ix] = obj.get('area', (box[2] - box[0] + 1) * (box[3] - box[1] + 1))
            if obj.get('iscrowd', 0):
                overlaps[ix, :] = -1.0
            else:
                overlaps[ix, cls] = 1.0
        ds_utils.validate_boxes(boxes, width, height,
                                '{} image {}'.format(self._get_ann_file(), index))
        return {'boxes': boxes,
                'gt_classes': gt_classes,
                'gt_overlaps': scipy.sparse.csr_matrix(overlaps),
                'flipped': False,
                'seg_areas': seg_areas,
                'width': width,
                'height': height}

    # ---- precomputed proposals ----

    def selective_search_roidb(self):
        """Selective search proposals (data/coco_proposals/selective_search/), merged after the
        ground truth where it is available; cached in data/cache."""
        return self._method_roidb('selective_search')

    def edge_boxes_roidb(self):
        """EdgeBoxes proposals (data/coco_proposals/edge_boxes_AR/)."""
        return self._method_roidb('edge_boxes')

    def mcg_roidb(self):
        """MCG proposals (data/coco_proposals/MCG/)."""
        return self._method_roidb('mcg')

    def proposal_file(self, method, index):
        """The .mat file of image `index`: <prefix 14>/<prefix 22>/COCO_<set>_<12-digit id>.mat
        under the method's folder (subsets such as minival read val2014's files)."""
        name = 'COCO_{}_{:012d}.mat'.format(self._data_name, index)
        return os.path.join(proposals_dir(self.data_dir, method), name[:14], name[:22], name)

    def _method_roidb(self, method):
        files = [self.proposal_file(method, index) for index in self.image_index]
        # The per-image files count by size and time (ds_utils.files_fingerprint).
        key = ds_utils.files_fingerprint([], extra=(
            'coco proposals v1', method, self._gt_available(), self._gt_key(),
            self.config['top_k'], self.config['min_size'], self.config['crowd_thresh'],
            tuple(self.image_index), ds_utils.files_fingerprint(files, content=False)))
        crowd_thresh = self.config['crowd_thresh']
        return self._proposals_roidb(
            method, proposals_dir(self.data_dir, method),
            '{}_{}_top{}_roidb.npz'.format(self.name, method, self.config['top_k']), key,
            lambda gt_roidb: self._load_proposals(method, files, gt_roidb),
            per_entry=lambda entry: mark_crowd_proposals(entry, crowd_thresh))

    def _load_proposals(self, method, files, gt_roidb):
        """Each image's first top_k proposals after dropping repeats and boxes under min_size
        pixels, in the file's order (the files list them best first)."""
        box_list = []
        for i, (index, path) in enumerate(zip(self.image_index, files)):
            if i % 1000 == 0:
                print('{} proposals: {:d} / {:d}'.format(method, i + 1, self.num_images))
            boxes = read_proposals(path, yx_order=(method == 'mcg'))
            boxes = boxes[unique_boxes(boxes)]
            boxes = boxes[filter_small_boxes(boxes, self.config['min_size'])]
            boxes = boxes[:self.config['top_k']]
            image = self._COCO.imgs[index]
            ds_utils.validate_boxes(boxes, int(image['width']), int(image['height']), path)
            box_list.append(boxes)
        return self.create_roidb_from_box_list(box_list, gt_roidb)

    # ---- results and evaluation ----

    def _coco_results_one_category(self, boxes, cat_id):
        results = []
        for im_ind, index in enumerate(self.image_index):
            dets = boxes[im_ind]
            if len(dets) == 0:
                continue
            dets = np.asarray(dets, dtype=np.float64)
            xs, ys = dets[:, 0], dets[:, 1]
            ws = dets[:, 2] - xs + 1
            hs = dets[:, 3] - ys + 1
            results.extend({'image_id': int(index), 'category_id': int(cat_id),
                            'bbox': [round(float(xs[k]), 2), round(float(ys[k]), 2),
                                     round(float(ws[k]), 2), round(float(hs[k]), 2)],
                            'score': round(float(dets[k, -1]), 5)}
                           for k in range(dets.shape[0]))
        return results

    def _write_coco_results_file(self, all_boxes, res_file):
        """COCO results JSON: [{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]."""
        results = []
        for cls_ind, cls in enumerate(self.classes):
            if cls_ind == 0:
                continue
            print('Collecting {} results ({:d}/{:d})'.format(cls, cls_ind, self.num_classes - 1))
            results.extend(self._coco_results_one_category(all_boxes[cls_ind],
                                                           self._class_to_coco_cat_id[cls]))
        print('Writing results json to {}'.format(res_file))
        atomic_write(res_file, json.dumps(results))
        return len(results)

    @staticmethod
    def _iou_index(coco_eval, thr):
        ind = np.where(np.abs(coco_eval.params.iouThrs - thr) < 1e-5)[0]
        return int(ind[0])

    def _summarize(self, coco_eval):
        """Prints AP@[.5:.95] and AP@0.5, overall and per class, and returns them."""
        lo = self._iou_index(coco_eval, 0.5)
        hi = self._iou_index(coco_eval, 0.95)
        # precision[T, R, K, A, M]: IoU, recall, class, area 'all', maxDets 100
        precision = coco_eval.eval['precision'][:, :, :, 0, -1]

        def mean_valid(p):
            p = p[p > -1]
            return float(np.mean(p)) if p.size else float('nan')

        summary = {'AP': mean_valid(precision[lo:hi + 1]), 'AP50': mean_valid(precision[lo]),
                   'per_class': {}}
        print('~~~~ Mean and per-category AP @ IoU=[0.50,0.95] / @ IoU=0.50 ~~~~')
        print('{:>20s}: {:.1f} / {:.1f}'.format('all', 100 * summary['AP'],
                                                100 * summary['AP50']))
        for cls_ind, cls in enumerate(self.classes[1:]):
            ap = mean_valid(precision[lo:hi + 1, :, cls_ind])
            ap50 = mean_valid(precision[lo, :, cls_ind])
            summary['per_class'][cls] = (ap, ap50)
            curve = precision[lo, :, cls_ind]
            summary.setdefault('pr_curves', {})[cls] = (
                (coco_eval.params.recThrs, curve, ap50) if (curve > -1).all()
                else (np.zeros(0), np.zeros(0), float('nan')))
            print('{:>20s}: {:.1f} / {:.1f}'.format(cls, 100 * ap, 100 * ap50))
        print('~~~~ Summary metrics ~~~~')
        coco_eval.summarize()
        return summary

    def _do_detection_eval(self, res_file, output_dir):
        coco_dt = self._COCO.loadRes(res_file)
        coco_eval = COCOeval(self._COCO, coco_dt, iouType='bbox')
        coco_eval.evaluate()
        coco_eval.accumulate()
        summary = self._summarize(coco_eval)
        eval_file = os.path.join(output_dir, 'detection_results.npz')
        save_npz(eval_file, 'coco_eval',
                 {'stats': coco_eval.stats, 'precision': coco_eval.eval['precision'],
                  'recall': coco_eval.eval['recall'], 'iouThrs': coco_eval.params.iouThrs,
                  'recThrs': coco_eval.params.recThrs},
                 {'summary': {k: v for k, v in summary.items() if k != 'pr_curves'}})
        print('Wrote COCO eval results to: {}'.format(eval_file))
        return summary

    def evaluate_detections(self, all_boxes, output_dir='output'):
        """Writes the results JSON to output_dir and, on annotated splits, evaluates it with
        COCOeval (bbox). Returns {'AP', 'AP50', 'per_class'} or None when not evaluated."""
        os.makedirs(output_dir, exist_ok=True)
        res_file = os.path.join(output_dir, 'detections_' + self._image_set + self._year
                                + '_results')
        if self.config['use_salt']:
            res_file += '_' + self._salt
        res_file += '.json'
        num_results = self._write_coco_results_file(all_boxes, res_file)
        summary = None
        if 'test' not in self._image_set:
            if num_results == 0:
                print('No detections: AP = 0')
                summary = {'AP': 0.0, 'AP50': 0.0,
                           'per_class': {cls: (0.0, 0.0) for cls in self.classes[1:]}}
            else:
                summary = self._do_detection_eval(res_file, output_dir)
        if self.config['cleanup']:
            os.remove(res_file)
        return summary

    def evaluate(self, all_boxes, output_dir='output'):
        """evaluate_detections as {'metric', 'mean_ap' (AP@[.5,.95]), 'ap50', 'per_class_ap',
        'per_class_ap50'}; {'metric', 'mean_ap': None} on splits without annotations."""
        summary = self.evaluate_detections(all_boxes, output_dir)
        if summary is None:
            return {'metric': 'COCO AP@[.5,.95] (not evaluated: no annotations)',
                    'mean_ap': None}
        result = {'metric': 'COCO AP@[.5,.95]', 'mean_ap': summary['AP'],
                  'ap50': summary['AP50'],
                  'per_class_ap': {c: v[0] for c, v in summary['per_class'].items()},
                  'per_class_ap50': {c: v[1] for c, v in summary['per_class'].items()}}
        if summary.get('pr_curves'):
            result['pr_curves'] = summary['pr_curves']  # at IoU 0.5
        return result

    def competition_mode(self, on):
        """On: a fixed results file name (no salt), kept after evaluation."""
        self.config['use_salt'] = not on
        self.config['cleanup'] = not on
