"""PASCAL VOC 2007/2012 in the devkit layout:

  data/VOCdevkit<year>/VOC<year>/Annotations/<id>.xml
                                 JPEGImages/<id>.jpg
                                 ImageSets/Main/<image_set>.txt
  data/VOCdevkit<year>/results/VOC<year>/Main/       detection files written for evaluation
  data/VOCdevkit<year>/annotations_cache/            parsed annotations (evaluation)
  data/selective_search_data/voc_<year>_<image_set>.mat   optional precomputed proposals

The VOC-layout machinery here (annotation reading, proposals, result files, evaluation) is also
what custom datasets use (datasets.custom).
"""
import os
import uuid

import numpy as np
import scipy.sparse

from caffe.io import atomic_write
from core.boxes import filter_small_boxes, unique_boxes
from datasets import ds_utils
from datasets.imdb import imdb
from datasets.voc_eval import voc_eval
from datasets.voc_xml import AnnotationError, read_voc_xml
from utils.data_files import save_npz

VOC_CLASSES = ('__background__',  # always index 0
               'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair',
               'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant',
               'sheep', 'sofa', 'train', 'tvmonitor')


def read_image_set(path):
    """Image ids listed in an ImageSets file (the first word of each non-empty line)."""
    if not os.path.isfile(path):
        raise FileNotFoundError('image set file not found: {}'.format(path))
    with open(path) as f:
        ids = [line.split()[0] for line in f if line.strip()]
    if not ids:
        raise ValueError('{}: the image set is empty'.format(path))
    return ids


class pascal_voc(imdb):
    def __init__(self, image_set, year, devkit_path=None, data_dir=None):
        imdb.__init__(self, 'voc_' + year + '_' + image_set, VOC_CLASSES, data_dir)
        self._year = year
        self._devkit_path = devkit_path or os.path.join(self.data_dir, 'VOCdevkit' + year)
        self._init_voc_layout(
            data_path=os.path.join(self._devkit_path, 'VOC' + year),
            image_set=image_set,
            results_path=os.path.join(self._devkit_path, 'results', 'VOC' + year, 'Main'),
            annotation_cache=os.path.join(self._devkit_path, 'annotations_cache'),
            use_07_metric=int(year) < 2010)
        # the release's default: Fast R-CNN trained on selective search proposals
        self._roidb_handler = self.selective_search_roidb

    def _init_voc_layout(self, data_path, image_set, results_path, annotation_cache,
                         use_07_metric):
        self._data_path = data_path
        self._image_set = image_set
        self._results_path = results_path
        self._annotation_cache = annotation_cache
        self._class_to_ind = {c.lower(): i for i, c in enumerate(self._classes)}
        self._image_ext = '.jpg'
        self._image_index = read_image_set(self._image_set_file())
        self._salt = str(uuid.uuid4())
        self._comp_id = 'comp4'
        self.config = {'cleanup': True,
                       'use_salt': True,
                       'use_diff': False,
                       'matlab_eval': False,
                       'rpn_file': None,
                       'min_size': 2,
                       'use_07_metric': use_07_metric,
                       # A detection matches a ground-truth box above this IoU (VOC's 0.5;
                       # tools/reval.py --ovthresh evaluates at others, e.g. 0.7).
                       'ovthresh': 0.5}

    # ---- paths ----

    def _image_set_file(self):
        return os.path.join(self._data_path, 'ImageSets', 'Main', self._image_set + '.txt')

    def _annotation_path(self, index):
        return os.path.join(self._data_path, 'Annotations', index + '.xml')

    def image_path_at(self, i):
        return self.image_path_from_index(self._image_index[i])

    def image_path_from_index(self, index):
        path = os.path.join(self._data_path, 'JPEGImages', index + self._image_ext)
        if not os.path.exists(path):
            raise FileNotFoundError('{}: no image for id {!r}: {} does not exist'
                                    .format(self._image_set_file(), index, path))
        return path

    def _gt_available(self):
        # VOC2012 (and later) test annotations were never released
        return int(self._year) == 2007 or self._image_set != 'test'

    # ---- roidbs ----

    def gt_roidb(self):
        """Ground-truth roidb, cached in data/cache/<name>_gt_roidb.npz (rebuilt when an
        annotation file, the class list or use_diff changes)."""
        paths = [self._annotation_path(index) for index in self.image_index]
        key = ds_utils.files_fingerprint(paths, extra=(
            'gt_roidb v1', self.classes, bool(self.config['use_diff']), tuple(self.image_index)))
        cache_file = os.path.join(self.cache_path, self.name + '_gt_roidb.npz')
        return ds_utils.load_or_build(
            cache_file, key, lambda: [self._load_pascal_annotation(p) for p in paths],
            '{} gt roidb'.format(self.name))

    def _class_index(self, name, filename):
        ind = self._class_to_ind.get(name.lower())
        if ind is None or ind == 0:
            raise AnnotationError('{}: object class {!r} is not one of the dataset\'s classes ({})'
                                  .format(filename, name, ', '.join(self.classes[1:])))
        return ind

    def _load_pascal_annotation(self, filename):
        """One gt roidb entry from a VOC XML file: boxes 0-based (the file's minus 1);
        difficult objects left out unless config['use_diff']."""
        ann = read_voc_xml(filename)
        objs = ann['objects']
        classes = [self._class_index(obj['name'], filename) for obj in objs]
        if not self.config['use_diff']:
            keep = [k for k, obj in enumerate(objs) if not obj['difficult']]
            objs = [objs[k] for k in keep]
            classes = [classes[k] for k in keep]
        num_objs = len(objs)
        boxes = np.zeros((num_objs, 4), dtype=np.uint16)
        gt_classes = np.array(classes, dtype=np.int32)
        overlaps = np.zeros((num_objs, self.num_classes), dtype=np.float32)
        seg_areas = np.zeros(num_objs, dtype=np.float32)
        for ix, obj in enumerate(objs):
            x1, y1, x2, y2 = (c - 1 for c in obj['bbox'])
            boxes[ix, :] = [x1, y1, x2, y2]
            overlaps[ix, classes[ix]] = 1.0
            seg_areas[ix] = (x2 - x1 + 1) * (y2 - y1 + 1)
        return {'boxes': boxes,
                'gt_classes': gt_classes,
                'gt_overlaps': scipy.sparse.csr_matrix(overlaps),
                'flipped': False,
                'seg_areas': seg_areas,
                'width': ann['width'],
                'height': ann['height']}

    def selective_search_roidb(self):
        """Selective search proposals from data/selective_search_data/<name>.mat, merged after
        the ground truth where it is available; cached in data/cache."""
        return self._mat_roidb('selective_search', 'ss_roidb v1')

    def edge_boxes_roidb(self):
        """EdgeBoxes proposals (the paper's Tables 2, 3 'EB' baseline) from
        data/edge_boxes_data/<name>.mat, in the selective search files' layout."""
        return self._mat_roidb('edge_boxes', 'eb_roidb v1')

    def _mat_roidb(self, method, version):
        mat_file = self._proposal_mat_file(method)
        paths = [mat_file] + ([self._annotation_path(i) for i in self.image_index]
                              if self._gt_available() else [])
        key = ds_utils.files_fingerprint(paths, extra=(
            version, self.classes, bool(self.config['use_diff']),
            self.config['min_size'], tuple(self.image_index)))
        return self._proposals_roidb(
            method, mat_file, '{}_{}_roidb.npz'.format(self.name, method), key,
            lambda gt_roidb: self._load_mat_roidb(mat_file, gt_roidb))

    def _selective_search_file(self):
        return self._proposal_mat_file('selective_search')

    def _proposal_mat_file(self, method):
        return os.path.abspath(os.path.join(self.data_dir, method + '_data', self.name + '.mat'))

    def _load_selective_search_roidb(self, gt_roidb):
        return self._load_mat_roidb(self._selective_search_file(), gt_roidb)

    def _load_mat_roidb(self, filename, gt_roidb):
        raw_boxes = ds_utils.read_mat_variable(filename, 'boxes').ravel()
        if len(raw_boxes) != self.num_images:
            raise ValueError('{}: {} box arrays for the {} images of {}'
                             .format(filename, len(raw_boxes), self.num_images, self.name))
        box_list = []
        for boxes in raw_boxes:
            boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
            # stored 1-based as [y1 x1 y2 x2]
            boxes = boxes[:, (1, 0, 3, 2)] - 1
            boxes = boxes[unique_boxes(boxes)]
            boxes = boxes[filter_small_boxes(boxes, self.config['min_size'])]
            box_list.append(boxes)
        return self.create_roidb_from_box_list(box_list, gt_roidb)

    # ---- results and evaluation ----

    def _get_comp_id(self):
        return self._comp_id + '_' + self._salt if self.config['use_salt'] else self._comp_id

    def _get_voc_results_file_template(self):
        # e.g. results/VOC2007/Main/comp4_<salt>_det_test_aeroplane.txt
        filename = self._get_comp_id() + '_det_' + self._image_set + '_{}.txt'
        return os.path.join(self._results_path, filename)

    def _write_voc_results_file(self, all_boxes):
        template = self._get_voc_results_file_template()
        for cls_ind, cls in enumerate(self.classes):
            if cls_ind == 0:
                continue
            print('Writing {} VOC results file'.format(cls))
            lines = []
            for im_ind, index in enumerate(self.image_index):
                dets = all_boxes[cls_ind][im_ind]
                if len(dets) == 0:
                    continue
                # the devkit's files are 1-based
                for k in range(dets.shape[0]):
                    lines.append('{} {:.3f} {:.1f} {:.1f} {:.1f} {:.1f}\n'.format(
                        index, dets[k, -1], dets[k, 0] + 1, dets[k, 1] + 1,
                        dets[k, 2] + 1, dets[k, 3] + 1))
            atomic_write(template.format(cls), ''.join(lines))

    def _do_python_eval(self, output_dir='output'):
        """Per-class AP with voc_eval at IoU config['ovthresh'] (VOC07 11-point metric when
        config['use_07_metric']);
        writes <cls>_pr.npz to output_dir and returns (mean AP over the classes that have
        ground truth, {class: (recall, precision, AP)})."""
        annopath = os.path.join(self._data_path, 'Annotations', '{}.xml')
        use_07_metric = self.config['use_07_metric']
        print('VOC07 metric? ' + ('Yes' if use_07_metric else 'No'))
        os.makedirs(output_dir, exist_ok=True)
        aps, curves = [], {}
        for cls in self.classes[1:]:
            rec, prec, ap = voc_eval(self._get_voc_results_file_template().format(cls),
                                     annopath, self._image_set_file(), cls,
                                     self._annotation_cache,
                                     ovthresh=self.config['ovthresh'],
                                     use_07_metric=use_07_metric)
            aps.append(ap)
            curves[cls] = (rec, prec, ap)
            print('AP for {} = {}'.format(cls, 'n/a (no ground truth)' if np.isnan(ap)
                                          else '{:.4f}'.format(ap)))
            save_npz(os.path.join(output_dir, cls + '_pr.npz'), 'pr_curve',
                     {'rec': rec, 'prec': prec, 'ap': np.float64(ap)})
        valid = [ap for ap in aps if not np.isnan(ap)]
        mean_ap = float(np.mean(valid)) if valid else float('nan')
        print('Mean AP = {:.4f}'.format(mean_ap))
        print('~~~~~~~~')
        print('Results:')
        for ap in aps:
            print('{:.3f}'.format(ap))
        print('{:.3f}'.format(mean_ap))
        print('~~~~~~~~')
        return mean_ap, curves

    def evaluate_detections(self, all_boxes, output_dir='output'):
        """Writes the result files, evaluates them and returns the mean AP."""
        return self.evaluate(all_boxes, output_dir)['mean_ap']

    def evaluate(self, all_boxes, output_dir='output'):
        """Writes the result files and evaluates them (AP at IoU config['ovthresh'], 0.5 unless
        changed; the VOC07 11-point metric when config['use_07_metric']). Returns {'metric',
        'mean_ap', 'per_class_ap' (None for a class without ground truth), 'pr_curves' {class:
        (recall, precision, AP)}}."""
        if self.config['matlab_eval']:
            raise NotImplementedError("config['matlab_eval']: the MATLAB devkit evaluation is "
                                      'not part of this project; voc_eval is its Python port')
        self._write_voc_results_file(all_boxes)
        mean_ap, curves = self._do_python_eval(output_dir)
        if self.config['cleanup']:
            template = self._get_voc_results_file_template()
            for cls in self.classes[1:]:
                filename = template.format(cls)
                if os.path.exists(filename):
                    os.remove(filename)
        iou = '%g' % self.config['ovthresh']
        return {'metric': ('VOC07 11-point AP@%s' % iou) if self.config['use_07_metric']
                else 'VOC AP@%s (area under the curve)' % iou,
                'ovthresh': self.config['ovthresh'],
                'mean_ap': mean_ap,
                'per_class_ap': {cls: (None if np.isnan(ap) else float(ap))
                                 for cls, (_, _, ap) in curves.items()},
                'pr_curves': curves}

    def competition_mode(self, on):
        """On: fixed result file names (no salt), kept after evaluation."""
        self.config['use_salt'] = not on
        self.config['cleanup'] = not on
