"""The COCO reader on a tiny synthetic instances file, and a COCOeval round trip."""
import json
import os

import cv2
import numpy as np
import pytest

from datasets.coco import coco
from datasets.factory import get_imdb
from fast_rcnn.config import cfg

IMAGES = [{'id': 7, 'width': 64, 'height': 48, 'file_name': 'COCO_val2014_000000000007.jpg'},
          {'id': 3, 'width': 80, 'height': 60, 'file_name': 'COCO_val2014_000000000003.jpg'}]
# category ids are not contiguous, as in COCO
CATEGORIES = [{'id': 2, 'name': 'cat'}, {'id': 5, 'name': 'dog'}]
ANNOTATIONS = [
    {'id': 1, 'image_id': 7, 'category_id': 2, 'bbox': [10, 5, 20, 10], 'area': 200, 'iscrowd': 0},
    {'id': 2, 'image_id': 7, 'category_id': 5, 'bbox': [30, 20, 30, 20], 'area': 600,
     'iscrowd': 1},
    {'id': 3, 'image_id': 7, 'category_id': 5, 'bbox': [0, 0, 0, 9], 'area': 0, 'iscrowd': 0},
    {'id': 4, 'image_id': 3, 'category_id': 5, 'bbox': [50, 40, 40, 30], 'area': 1200,
     'iscrowd': 0},
    {'id': 5, 'image_id': 3, 'category_id': 2, 'bbox': [1.5, 2, 12, 14], 'area': 168,
     'iscrowd': 0},
]


@pytest.fixture
def coco_dir(tmp_path, monkeypatch):
    data = tmp_path / 'data'
    monkeypatch.setattr(cfg, 'DATA_DIR', str(data))
    (data / 'coco' / 'annotations').mkdir(parents=True)
    (data / 'coco' / 'images' / 'val2014').mkdir(parents=True)
    for im in IMAGES:
        cv2.imwrite(str(data / 'coco' / 'images' / 'val2014' / im['file_name']),
                    np.zeros((im['height'], im['width'], 3), np.uint8))
    write_annotations(data / 'coco', ANNOTATIONS)
    return data / 'coco'


def write_annotations(root, annotations):
    dataset = {'images': IMAGES, 'categories': CATEGORIES, 'annotations': annotations}
    (root / 'annotations' / 'instances_minival2014.json').write_text(json.dumps(dataset))


@pytest.fixture
def valid_coco_dir(coco_dir):
    # COCOeval counts a zero-area box as ground truth that no detection can match
    write_annotations(coco_dir, [a for a in ANNOTATIONS if a['area'] > 0])
    return coco_dir


def test_gt_roidb_converts_boxes_and_marks_crowds(coco_dir):
    db = get_imdb('coco_2014_minival')
    assert isinstance(db, coco)
    assert db.classes == ('__background__', 'cat', 'dog')
    assert db.image_index == [7, 3]
    assert db.image_path_at(0) == str(coco_dir / 'images' / 'val2014'
                                      / 'COCO_val2014_000000000007.jpg')
    entry = db.roidb[0]
    # [10, 5, 20, 10] -> x2 = 10 + 20 - 1 = 29, y2 = 5 + 10 - 1 = 14
    # the crowd [30, 20, 30, 20] -> [30, 20, 59, 39]; the zero-area box is dropped
    np.testing.assert_array_equal(entry['boxes'], [[10, 5, 29, 14], [30, 20, 59, 39]])
    np.testing.assert_array_equal(entry['gt_classes'], [1, 2])
    np.testing.assert_array_equal(entry['gt_overlaps'].toarray(), [[0, 1, 0], [-1, -1, -1]])
    np.testing.assert_array_equal(entry['seg_areas'], [200, 600])
    assert (entry['width'], entry['height']) == (64, 48)
    entry = db.roidb[1]
    # [50, 40, 40, 30] in an 80 x 60 image: x2 = min(79, 89), y2 = min(59, 69)
    # [1.5, 2, 12, 14]: x2 = 1.5 + 11 = 12.5, stored as uint16 -> [1, 2, 12, 15]
    np.testing.assert_array_equal(entry['boxes'], [[50, 40, 79, 59], [1, 2, 12, 15]])
    np.testing.assert_array_equal(entry['gt_classes'], [2, 1])


def perfect_detections(db):
    """all_boxes holding every valid non-crowd ground-truth box, straight from the JSON."""
    all_boxes = [[np.zeros((0, 5), np.float32) for _ in db.image_index]
                 for _ in range(db.num_classes)]
    cat_to_cls = {c['id']: db.classes.index(c['name']) for c in CATEGORIES}
    for ann in ANNOTATIONS:
        if ann['iscrowd'] or ann['area'] == 0:
            continue
        x, y, w, h = ann['bbox']
        i = db.image_index.index(ann['image_id'])
        cls = cat_to_cls[ann['category_id']]
        det = np.array([[x, y, x + w - 1, y + h - 1, 0.95]], np.float32)
        all_boxes[cls][i] = np.vstack((all_boxes[cls][i], det))
    return all_boxes


def test_cocoeval_round_trip_of_perfect_detections(valid_coco_dir, tmp_path):
    db = get_imdb('coco_2014_minival')
    out = tmp_path / 'out'
    summary = db.evaluate_detections(perfect_detections(db), str(out))
    assert summary['AP'] == pytest.approx(1.0) and summary['AP50'] == pytest.approx(1.0)
    assert summary['per_class']['cat'] == pytest.approx((1.0, 1.0))
    assert summary['per_class']['dog'] == pytest.approx((1.0, 1.0))
    assert os.listdir(out) == ['detection_results.npz']  # the results JSON is cleaned up


def test_results_json_format(valid_coco_dir, tmp_path):
    db = get_imdb('coco_2014_minival')
    db.competition_mode(True)
    db.evaluate_detections(perfect_detections(db), str(tmp_path))
    results = json.loads((tmp_path / 'detections_minival2014_results.json').read_text())
    first = [r for r in results if r['image_id'] == 7][0]
    # category id 2 (not class index 1), [x, y, w, h] with w = x2 - x1 + 1
    assert first == {'image_id': 7, 'category_id': 2, 'bbox': [10, 5, 20, 10], 'score': 0.95}


def test_a_class_with_every_box_missed(valid_coco_dir, tmp_path):
    db = get_imdb('coco_2014_minival')
    all_boxes = perfect_detections(db)
    all_boxes[db.classes.index('dog')][1] = np.zeros((0, 5), np.float32)
    summary = db.evaluate_detections(all_boxes, str(tmp_path))
    # dog's only (non-crowd) box is missed: precision 0 at every recall; cat is still perfect
    assert summary['per_class']['dog'] == pytest.approx((0.0, 0.0))
    assert summary['per_class']['cat'] == pytest.approx((1.0, 1.0))
    assert summary['AP'] == pytest.approx(0.5)


def test_test_dev_reads_image_info_and_test2015_images(tmp_path, monkeypatch):
    data = tmp_path / 'data'
    monkeypatch.setattr(cfg, 'DATA_DIR', str(data))
    (data / 'coco' / 'annotations').mkdir(parents=True)
    (data / 'coco' / 'annotations' / 'image_info_test-dev2015.json').write_text(json.dumps(
        {'images': [{'id': 1, 'width': 10, 'height': 10}], 'categories': CATEGORIES}))
    db = get_imdb('coco_2015_test-dev')
    with pytest.raises(FileNotFoundError) as err:
        db.image_path_at(0)
    assert os.path.join('images', 'test2015', 'COCO_test2015_000000000001.jpg') in str(err.value)


@pytest.mark.parametrize('text, expected', [
    ('{"images": [', 'malformed JSON'),
    ('[]', 'expected a JSON object'),
    ('{"categories": []}', 'missing field "images"'),
    ('{"images": [], "categories": [], "annotations": [{"image_id": 1}]}', 'has no "category_id"'),
])
def test_malformed_annotation_file_names_it(coco_dir, text, expected):
    path = coco_dir / 'annotations' / 'instances_minival2014.json'
    path.write_text(text)
    with pytest.raises(ValueError, match=expected) as err:
        get_imdb('coco_2014_minival')
    assert str(path) in str(err.value)
