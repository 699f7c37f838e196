"""The COCO reader on a tiny synthetic instances file, and a COCOeval round trip."""
import json
import os

import cv2
import numpy as np
import pytest
import scipy.io

from brute_force import iou
from datasets.coco import coco
from datasets.factory import get_imdb
from utils import paths

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
    monkeypatch.setattr(paths, 'DATA_DIR', str(data))
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


def make_test_dev_data(tmp_path, monkeypatch, width, height):
    """DATA_DIR with a test-dev image-info file of one image (id 1), no images."""
    data = tmp_path / 'data'
    monkeypatch.setattr(paths, 'DATA_DIR', str(data))
    (data / 'coco' / 'annotations').mkdir(parents=True)
    (data / 'coco' / 'annotations' / 'image_info_test-dev2015.json').write_text(json.dumps(
        {'images': [{'id': 1, 'width': width, 'height': height}], 'categories': CATEGORIES}))
    return data


def test_test_dev_reads_image_info_and_test2015_images(tmp_path, monkeypatch):
    make_test_dev_data(tmp_path, monkeypatch, 10, 10)
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


# Precomputed proposals -------------------------------------------------------------------------

# 1-based [x1 y1 x2 y2] rows for image 7 (64 x 48; gt: cat [10, 5, 29, 14], crowd [30, 20, 59, 39])
SS_IMAGE_7 = [[11, 6, 30, 15],    # the cat's box
              [11, 6, 30, 15],    # a repeat: dropped
              [1, 1, 1, 5],       # one pixel wide, under min_size 2: dropped
              [33, 23, 52, 37],   # inside the crowd: marked -1
              [21, 21, 40, 40],   # half in the crowd (0.5 <= 0.7): kept
              [41, 31, 64, 48],   # 200 of its 432 pixels in the crowd: kept
              [0, 0, 10, 10]]     # a 0 coordinate: clamped to 0, as the release does


def write_proposals(data, method_folder, image_id, boxes):
    # The release's layout, spelled out: prefixes of 14 and 22 characters of the file name.
    name = 'COCO_val2014_{:012d}.mat'.format(image_id)
    path = data / 'coco_proposals' / method_folder / 'mat' / name[:14] / name[:22] / name
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), {'boxes': np.asarray(boxes, np.float64).reshape(-1, 4),
                                 'scores': np.arange(len(boxes), 0, -1, dtype=np.float64)})
    return path


def expected_entry(gt_boxes, gt_classes, crowd, proposals, num_classes, crowd_thresh=0.7):
    """The gt rows, then each proposal's best IoU at its gt's class, -1 where a crowd covers
    more than crowd_thresh of its pixels (counted one by one)."""
    rows = []
    for p in proposals:
        row = np.zeros(num_classes)
        ious = [iou(p, g) for g in gt_boxes]
        if ious and max(ious) > 0:
            row[gt_classes[int(np.argmax(ious))]] = max(ious)
        for c in crowd:
            xs = range(int(p[0]), int(p[2]) + 1)
            ys = range(int(p[1]), int(p[3]) + 1)
            inside = sum(c[0] <= x <= c[2] and c[1] <= y <= c[3] for x in xs for y in ys)
            if inside / (len(xs) * len(ys)) > crowd_thresh:
                row[:] = -1
        rows.append(row)
    return np.array(rows).reshape(-1, num_classes)


def test_selective_search_roidb_reads_the_release_layout_and_drops_crowded_proposals(coco_dir):
    data = coco_dir.parent
    write_proposals(data, 'selective_search', 7, SS_IMAGE_7)
    write_proposals(data, 'selective_search', 3, np.zeros((0, 4)))
    db = get_imdb('coco_2014_minival')
    db.set_proposal_method('selective_search')
    entry = db.roidb[0]
    proposals = np.array([[10, 5, 29, 14], [32, 22, 51, 36], [20, 20, 39, 39],
                          [40, 30, 63, 47], [0, 0, 9, 9]])
    gt_boxes = [[10, 5, 29, 14], [30, 20, 59, 39]]
    np.testing.assert_array_equal(entry['boxes'], np.vstack((gt_boxes, proposals)))
    np.testing.assert_array_equal(entry['gt_classes'], [1, 2, 0, 0, 0, 0, 0])
    overlaps = entry['gt_overlaps'].toarray()
    np.testing.assert_array_equal(overlaps[:2], [[0, 1, 0], [-1, -1, -1]])
    np.testing.assert_allclose(overlaps[2:], expected_entry(gt_boxes, [1, 2], [gt_boxes[1]],
                                                            proposals, 3), rtol=1e-6)
    assert (overlaps[3] == -1).all() and overlaps[4, 2] == pytest.approx(0.25)
    # image 3 has no proposals: its gt alone
    np.testing.assert_array_equal(db.roidb[1]['boxes'], [[50, 40, 79, 59], [1, 2, 12, 15]])


def test_top_k_counts_after_repeats_and_small_boxes_are_dropped(coco_dir):
    data = coco_dir.parent
    write_proposals(data, 'selective_search', 7, SS_IMAGE_7)
    write_proposals(data, 'selective_search', 3, np.zeros((0, 4)))
    db = get_imdb('coco_2014_minival')
    db.config['top_k'] = 2
    db.set_proposal_method('selective_search')
    np.testing.assert_array_equal(db.roidb[0]['boxes'][2:], [[10, 5, 29, 14], [32, 22, 51, 36]])


def test_mcg_boxes_are_y_first_and_a_test_split_has_no_gt(tmp_path, monkeypatch):
    data = make_test_dev_data(tmp_path, monkeypatch, 30, 20)
    name = 'COCO_test2015_000000000001.mat'
    path = data / 'coco_proposals' / 'MCG' / 'mat' / name[:14] / name[:22] / name
    path.parent.mkdir(parents=True)
    # [y1 x1 y2 x2], 1-based: x 2..25, y 3..17 (0-based)
    scipy.io.savemat(str(path), {'boxes': np.array([[4.0, 3.0, 18.0, 26.0]])})
    (data / 'coco' / 'images' / 'test2015').mkdir(parents=True)
    cv2.imwrite(str(data / 'coco' / 'images' / 'test2015' / 'COCO_test2015_000000000001.jpg'),
                np.zeros((20, 30, 3), np.uint8))
    db = get_imdb('coco_2015_test-dev')
    db.set_proposal_method('mcg')
    entry = db.roidb[0]
    np.testing.assert_array_equal(entry['boxes'], [[2, 3, 25, 17]])
    np.testing.assert_array_equal(entry['gt_classes'], [0])
    np.testing.assert_array_equal(entry['gt_overlaps'].toarray(), [[0, 0, 0]])


def test_the_proposals_cache_is_rebuilt_when_a_file_changes(coco_dir, capsys):
    data = coco_dir.parent
    write_proposals(data, 'edge_boxes_AR', 7, SS_IMAGE_7)
    path = write_proposals(data, 'edge_boxes_AR', 3, np.zeros((0, 4)))
    db = get_imdb('coco_2014_minival')
    db.set_proposal_method('edge_boxes')
    assert len(db.roidb[1]['boxes']) == 2
    db = get_imdb('coco_2014_minival')
    db.set_proposal_method('edge_boxes')
    assert len(db.roidb[1]['boxes']) == 2
    assert 'loaded from' in capsys.readouterr().out
    write_proposals(data, 'edge_boxes_AR', 3, [[5, 5, 20, 20]])
    os.utime(str(path), ns=(1, 1))  # even with an old time, the size differs
    db = get_imdb('coco_2014_minival')
    db.set_proposal_method('edge_boxes')
    np.testing.assert_array_equal(db.roidb[1]['boxes'][2:], [[4, 4, 19, 19]])


@pytest.mark.parametrize('boxes_3, expected', [
    (None, 'proposals file not found'),
    ([[1, 1, 81, 10]], 'not inside the 80x60 image'),
    (np.ones((2, 3)), r"must be an \(N, 4\) array"),
])
def test_bad_proposal_files_are_named(coco_dir, boxes_3, expected):
    data = coco_dir.parent
    write_proposals(data, 'selective_search', 7, SS_IMAGE_7)
    name = 'COCO_val2014_000000000003.mat'
    path = data / 'coco_proposals' / 'selective_search' / 'mat' / name[:14] / name[:22] / name
    if boxes_3 is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(str(path), {'boxes': np.asarray(boxes_3, np.float64)})
    db = get_imdb('coco_2014_minival')
    db.set_proposal_method('selective_search')
    with pytest.raises((ValueError, FileNotFoundError), match=expected) as err:
        db.roidb
    assert str(path) in str(err.value)


def test_missing_proposals_folder_is_named(coco_dir):
    db = get_imdb('coco_2014_minival')
    db.set_proposal_method('mcg')
    with pytest.raises(FileNotFoundError) as err:
        db.roidb
    assert os.path.join(str(coco_dir.parent), 'coco_proposals', 'MCG', 'mat') in str(err.value)


def test_coco_ss_training_roidb_flips_and_never_samples_crowded_proposals(coco_dir, monkeypatch):
    from core.sampling import RoISampling
    from fast_rcnn.train_roidb import TrainingImages, training_roidb
    data = coco_dir.parent
    write_proposals(data, 'selective_search', 7, SS_IMAGE_7)
    write_proposals(data, 'selective_search', 3, [[2, 3, 14, 17]])
    images = TrainingImages(proposal_method='selective_search', use_flipped=True)
    _, roidb = training_roidb('coco_2014_minival', images, str(data))
    assert [e['flipped'] for e in roidb] == [False, False, True, True]
    # COCO's negatives start at IoU 0 (experiments/cfgs/coco.yml): -1 must still be neither.
    sampling = RoISampling(batch_size=128, fg_fraction=0.25, fg_thresh=0.5, bg_thresh_hi=0.5,
                           bg_thresh_lo=0.0)
    for entry in (roidb[0], roidb[2]):
        fg, bg = sampling.fg_bg_masks(entry['max_overlaps'])
        # rows: cat, crowd, then the proposals of SS_IMAGE_7; the 2nd proposal is in the crowd
        np.testing.assert_array_equal(fg, [1, 0, 1, 0, 0, 0, 0])
        np.testing.assert_array_equal(bg, [0, 0, 0, 0, 1, 1, 1])
    # the mirrored image's boxes: x -> width - 1 - x
    np.testing.assert_array_equal(roidb[2]['boxes'][2], [64 - 1 - 29, 5, 64 - 1 - 10, 14])
