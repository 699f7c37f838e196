"""imdb, pascal_voc, custom datasets and the factory, on tiny VOC-layout folders in tmp_path."""
import os
import pickle

import cv2
import numpy as np
import pytest
import scipy.io as sio
import scipy.sparse

from datasets.custom import custom_dataset
from datasets.factory import get_imdb, list_imdbs
from datasets.imdb import imdb
from datasets.pascal_voc import pascal_voc
from datasets.voc_xml import AnnotationError, BadBoxWarning
from utils import paths


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    path = tmp_path / 'data'
    path.mkdir()
    monkeypatch.setattr(paths, 'DATA_DIR', str(path))
    return path


def voc_xml(width, height, objects, size=True):
    """objects: (name, (xmin, ymin, xmax, ymax) 1-based, difficult)."""
    parts = ['<annotation>']
    if size:
        parts.append('<size><width>{}</width><height>{}</height><depth>3</depth></size>'
                     .format(width, height))
    for name, box, difficult in objects:
        parts.append('<object><name>{}</name><difficult>{}</difficult><bndbox>'
                     '<xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax>'
                     '</bndbox></object>'.format(name, difficult, *box))
    parts.append('</annotation>')
    return ''.join(parts)


def make_voc_folder(root, images, image_set='train', ext='.jpg', classes=None):
    """images: {id: (width, height, objects)}; writes Annotations, JPEGImages, ImageSets."""
    for sub in ('Annotations', 'JPEGImages', 'ImageSets/Main'):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for index, (width, height, objects) in images.items():
        (root / 'Annotations' / (index + '.xml')).write_text(voc_xml(width, height, objects))
        cv2.imwrite(str(root / 'JPEGImages' / (index + ext)),
                    np.full((height, width, 3), 128, np.uint8))
    (root / 'ImageSets' / 'Main' / (image_set + '.txt')).write_text('\n'.join(images) + '\n')
    if classes is not None:
        (root / 'classes.txt').write_text('\n'.join(classes) + '\n')
    return root


VOC_IMAGES = {
    '000001': (64, 48, [('dog', (10, 20, 30, 40), 0),
                        ('person', (1, 1, 64, 48), 1),
                        ('Cat ', (5, 6, 15, 16), 0)]),
    '000002': (50, 40, [('car', (2, 3, 11, 13), 0)]),
}


@pytest.fixture
def voc2007(data_dir):
    make_voc_folder(data_dir / 'VOCdevkit2007' / 'VOC2007', VOC_IMAGES, 'trainval')
    return data_dir


def test_voc_gt_roidb_parses_xml_minus_one_and_drops_difficult(voc2007):
    voc = get_imdb('voc_2007_trainval')
    assert isinstance(voc, pascal_voc)
    assert voc.num_classes == 21 and voc.classes[0] == '__background__'
    assert voc.image_index == ['000001', '000002']
    assert voc.config['use_07_metric'] is True  # VOC2007 is scored with the 11-point metric
    with pytest.raises(ValueError,
                       match="'objectness'.*dense, edge_boxes, gt, rpn, selective_search"):
        voc.set_proposal_method('objectness')
    voc.set_proposal_method('gt')
    entry = voc.roidb[0]
    # the difficult person is left out; names are matched case-insensitively after strip
    np.testing.assert_array_equal(entry['boxes'], [[9, 19, 29, 39], [4, 5, 14, 15]])
    assert entry['boxes'].dtype == np.uint16
    dog, cat = voc.classes.index('dog'), voc.classes.index('cat')
    np.testing.assert_array_equal(entry['gt_classes'], [dog, cat])
    assert entry['gt_classes'].dtype == np.int32
    overlaps = entry['gt_overlaps'].toarray()
    assert overlaps.shape == (2, 21)
    assert overlaps[0, dog] == 1 and overlaps[1, cat] == 1 and overlaps.sum() == 2
    np.testing.assert_array_equal(entry['seg_areas'], [21 * 21, 11 * 11])
    assert (entry['width'], entry['height'], entry['flipped']) == (64, 48, False)
    assert entry['image'].endswith(os.path.join('VOC2007', 'JPEGImages', '000001.jpg'))


def test_use_diff_keeps_difficult_objects(voc2007):
    voc = pascal_voc('trainval', '2007')
    voc.config['use_diff'] = True
    voc.set_proposal_method('gt')
    person = voc.classes.index('person')
    np.testing.assert_array_equal(voc.roidb[0]['boxes'][1], [0, 0, 63, 47])
    assert voc.roidb[0]['gt_classes'][1] == person


def test_append_flipped_images_mirrors_boxes(voc2007):
    voc = pascal_voc('trainval', '2007')
    voc.set_proposal_method('gt')
    voc.append_flipped_images()
    assert voc.num_images == 4 and voc.image_index == ['000001', '000002'] * 2
    flipped = voc.roidb[2]
    assert flipped['flipped'] and flipped['image'] == voc.roidb[0]['image']
    # width 64: x1' = 64 - x2 - 1, x2' = 64 - x1 - 1
    # [9, 19, 29, 39] -> [34, 19, 54, 39]; [4, 5, 14, 15] -> [49, 5, 59, 15]
    np.testing.assert_array_equal(flipped['boxes'], [[34, 19, 54, 39], [49, 5, 59, 15]])
    # width 50: [1, 2, 10, 12] -> [39, 2, 48, 12]
    np.testing.assert_array_equal(voc.roidb[3]['boxes'], [[39, 2, 48, 12]])
    np.testing.assert_array_equal(voc.roidb[0]['boxes'][0], [9, 19, 29, 39])  # original kept
    with pytest.raises(RuntimeError):
        voc.set_proposal_method('rpn')


def test_gt_roidb_cache_is_rebuilt_when_an_annotation_changes(voc2007):
    ann = voc2007 / 'VOCdevkit2007' / 'VOC2007' / 'Annotations' / '000002.xml'
    first = pascal_voc('trainval', '2007').gt_roidb()
    assert os.path.exists(voc2007 / 'cache' / 'voc_2007_trainval_gt_roidb.npz')
    np.testing.assert_array_equal(first[1]['boxes'], [[1, 2, 10, 12]])
    ann.write_text(voc_xml(50, 40, [('car', (3, 3, 11, 13), 0)]))
    st = os.stat(ann)
    os.utime(ann, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    second = pascal_voc('trainval', '2007').gt_roidb()
    np.testing.assert_array_equal(second[1]['boxes'], [[2, 2, 10, 12]])


def test_gt_roidb_cache_is_keyed_on_content_not_size_and_time(voc2007):
    # An edit that keeps the file's size and modification time (a copy with preserved times,
    # a coarse file system clock) must not be answered from the cache.
    ann = voc2007 / 'VOCdevkit2007' / 'VOC2007' / 'Annotations' / '000002.xml'
    first = pascal_voc('trainval', '2007').gt_roidb()
    np.testing.assert_array_equal(first[1]['boxes'], [[1, 2, 10, 12]])
    st = os.stat(ann)
    text = ann.read_text()
    edited = text.replace('<xmin>2</xmin>', '<xmin>4</xmin>')
    assert edited != text and len(edited) == len(text)
    ann.write_text(edited)
    os.utime(ann, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(ann).st_size == st.st_size and os.stat(ann).st_mtime_ns == st.st_mtime_ns
    second = pascal_voc('trainval', '2007').gt_roidb()
    np.testing.assert_array_equal(second[1]['boxes'], [[3, 2, 10, 12]])


def test_roidb_cache_round_trips_every_field(voc2007, tmp_path):
    from datasets.ds_utils import load_or_build
    roidb = [{'boxes': np.array([[1, 2, 3, 4]], np.uint16), 'flipped': False, 'width': 50,
              'gt_overlaps': scipy.sparse.csr_matrix(np.array([[0, 0.5, 0]], np.float32)),
              'seg_areas': np.array([9.5], np.float32), 'image': 'a.jpg', 'score': 0.5},
             {'boxes': np.zeros((0, 4), np.uint16), 'flipped': True, 'width': 7,
              'gt_overlaps': scipy.sparse.csr_matrix((0, 3), dtype=np.float32),
              'seg_areas': np.zeros(0, np.float32), 'image': 'b.jpg'}]
    path = str(tmp_path / 'x_roidb.npz')
    load_or_build(path, 'k', lambda: roidb, 'test roidb')
    loaded = load_or_build(path, 'k', lambda: pytest.fail('rebuilt'), 'test roidb')
    for a, b in zip(loaded, roidb):
        assert sorted(a) == sorted(b)
        for key, value in b.items():
            if scipy.sparse.issparse(value):
                assert a[key].shape == value.shape
                np.testing.assert_array_equal(a[key].toarray(), value.toarray())
            elif isinstance(value, np.ndarray):
                assert a[key].dtype == value.dtype
                np.testing.assert_array_equal(a[key], value)
            else:
                assert a[key] == value and type(a[key]) is type(value)


def test_rpn_roidb_merges_proposals_with_iou_overlaps(voc2007, tmp_path):
    voc = pascal_voc('trainval', '2007')
    # image 2's gt (0-based) is [1, 2, 10, 12]: 10 x 11 = 110 pixels.
    # [1, 2, 5, 12] covers 5 x 11 = 55 of them: IoU 55 / 110 = 0.5.
    # [30, 30, 40, 39] misses it: IoU 0, so its row stays empty.
    proposals = [np.zeros((0, 4), np.float32),
                 np.array([[1, 2, 5, 12, 0.9], [30, 30, 40, 39, 0.8]], np.float32)]
    rpn_file = tmp_path / 'proposals.pkl'
    rpn_file.write_bytes(pickle.dumps(proposals))
    voc.config['rpn_file'] = str(rpn_file)
    voc.set_proposal_method('rpn')
    entry = voc.roidb[1]
    np.testing.assert_array_equal(entry['boxes'], [[1, 2, 10, 12], [1, 2, 5, 12], [30, 30, 40, 39]])
    np.testing.assert_array_equal(entry['gt_classes'], [voc.classes.index('car'), 0, 0])
    overlaps = entry['gt_overlaps'].toarray()
    car = voc.classes.index('car')
    assert overlaps[1, car] == pytest.approx(0.5) and overlaps[1].sum() == pytest.approx(0.5)
    assert overlaps[2].sum() == 0
    assert entry['width'] == 50 and len(entry['seg_areas']) == 3
    assert len(voc.roidb[0]['boxes']) == 2  # gt only


def test_selective_search_mat_is_converted_to_0_based_xyxy(voc2007):
    ss_dir = voc2007 / 'selective_search_data'
    ss_dir.mkdir()
    boxes = np.empty((2,), dtype=object)
    # stored [y1 x1 y2 x2], 1-based; the second row repeats the first and the third is 1 px
    boxes[0] = np.array([[20, 10, 40, 30], [20, 10, 40, 30], [5, 5, 5, 5]], dtype=np.float64)
    boxes[1] = np.array([[3, 2, 13, 11]], dtype=np.float64)
    sio.savemat(str(ss_dir / 'voc_2007_trainval.mat'), {'boxes': boxes})
    voc = pascal_voc('trainval', '2007')  # selective search is the release's default
    entry = voc.roidb[0]
    # gt first (2 boxes), then the unique, large-enough proposal [9, 19, 29, 39] (= the dog)
    np.testing.assert_array_equal(entry['boxes'][2:], [[9, 19, 29, 39]])
    assert entry['gt_overlaps'].toarray()[2, voc.classes.index('dog')] == pytest.approx(1.0)
    np.testing.assert_array_equal(voc.roidb[1]['boxes'][1:], [[1, 2, 10, 12]])


def test_evaluate_recall_pairs_each_gt_with_one_candidate():
    class two_images(imdb):
        def __init__(self):
            imdb.__init__(self, 'recall', ('__background__', 'a'))
            self._image_index = ['x']
            self._roidb = [{
                'boxes': np.array([[0, 0, 9, 9], [20, 0, 29, 9]], np.uint16),
                'gt_classes': np.array([1, 1], np.int32),
                'gt_overlaps': scipy.sparse.csr_matrix(np.array([[0, 1], [0, 1]], np.float32)),
                'seg_areas': np.array([100, 100], np.float32),
                'flipped': False, 'width': 40, 'height': 20}]

    db = two_images()
    # the first candidate covers gt 0 exactly; the second covers half of gt 1 (IoU 0.5)
    candidates = [np.array([[0, 0, 9, 9], [20, 0, 24, 9]], np.float64)]
    result = db.evaluate_recall(candidates, thresholds=[0.5, 0.7])
    np.testing.assert_allclose(result['gt_overlaps'], [0.5, 1.0])
    np.testing.assert_allclose(result['recalls'], [1.0, 0.5])
    assert result['ar'] == pytest.approx(0.75)
    # one candidate for two boxes: one box found, one not
    np.testing.assert_allclose(
        db.evaluate_recall([candidates[0][:1]], thresholds=[0.5])['recalls'], [0.5])
    # default thresholds 0.5:0.05:0.95 (10 values): recall 1 at 0.5, then 1/2 at the other 9;
    # both boxes (100 px) are 'small' (< 32^2), none is 'large'
    assert db.evaluate_recall(candidates, area='small')['ar'] == pytest.approx((1 + 9 * 0.5) / 10)
    assert db.evaluate_recall(candidates, area='large')['gt_overlaps'].size == 0


# ---- custom datasets ----

CUSTOM_IMAGES = {
    'a': (40, 30, [('widget', (2, 2, 20, 15), 0), ('gadget', (21, 5, 38, 28), 0)]),
    'b': (30, 40, [('gadget', (1, 1, 30, 40), 0), ('widget', (5, 5, 9, 9), 1)]),
}


@pytest.fixture
def mine(data_dir):
    return make_voc_folder(data_dir / 'mine', CUSTOM_IMAGES, 'train', ext='.png',
                           classes=['widget', 'gadget'])


def test_custom_dataset_through_the_factory(mine):
    assert 'mine_train' in list_imdbs() and 'voc_2007_test' in list_imdbs()
    db = get_imdb('mine_train')
    assert isinstance(db, custom_dataset) and db.name == 'mine_train'
    assert db.classes == ('__background__', 'widget', 'gadget')
    assert db.image_path_at(1).endswith(os.path.join('mine', 'JPEGImages', 'b.png'))
    entry = db.roidb[0]
    np.testing.assert_array_equal(entry['boxes'], [[1, 1, 19, 14], [20, 4, 37, 27]])
    np.testing.assert_array_equal(entry['gt_classes'], [1, 2])
    assert len(db.roidb[1]['boxes']) == 1  # the difficult widget is left out
    assert db.config['use_07_metric'] is False


def test_a_data_folder_given_by_name(tmp_path):
    # The datasets of another folder (cfg.DATA_DIR, which the tools pass as data_dir): its
    # custom datasets, caches and VOC devkits.
    other = tmp_path / 'other'
    make_voc_folder(other / 'theirs', CUSTOM_IMAGES, 'train', classes=['widget', 'gadget'])
    make_voc_folder(other / 'VOCdevkit2007' / 'VOC2007', VOC_IMAGES, 'trainval')
    assert 'theirs_train' in list_imdbs(str(other)) and 'theirs_train' not in list_imdbs()
    db = get_imdb('theirs_train', str(other))
    assert db.data_dir == str(other) and db.cache_path == str(other / 'cache')
    voc = get_imdb('voc_2007_trainval', str(other))
    assert voc.num_images == len(VOC_IMAGES) and voc.data_dir == str(other)
    with pytest.raises(KeyError, match=str(other)):
        get_imdb('nope_train', str(other))


def test_custom_dataset_through_a_symlink_with_underscored_name(data_dir, tmp_path):
    make_voc_folder(tmp_path / 'elsewhere', CUSTOM_IMAGES, 'my_split', classes=['widget', 'gadget'])
    os.symlink(tmp_path / 'elsewhere', data_dir / 'my_set')
    db = get_imdb('my_set_my_split')
    assert db.num_images == 2 and db.gt_roidb()[0]['gt_classes'].tolist() == [1, 2]


def test_unknown_names_list_the_options(mine):
    with pytest.raises(KeyError) as err:
        get_imdb('nope_train')
    assert 'nope_train' in str(err.value) and 'mine_train' in str(err.value)
    assert 'voc_2007_trainval' in str(err.value)
    with pytest.raises(KeyError, match="no image set 'val'.*train"):
        get_imdb('mine_val')


def test_custom_evaluation_of_perfect_detections(mine, tmp_path):
    db = get_imdb('mine_train')
    db.set_proposal_method('gt')
    all_boxes = [[[] for _ in range(db.num_images)] for _ in range(db.num_classes)]
    for i, entry in enumerate(db.roidb):
        for box, cls in zip(entry['boxes'], entry['gt_classes']):
            dets = np.hstack((box.astype(np.float32), [0.9]))[None, :]
            all_boxes[cls][i] = dets if len(all_boxes[cls][i]) == 0 else np.vstack(
                (all_boxes[cls][i], dets))
    out = tmp_path / 'out'
    assert db.evaluate_detections(all_boxes, str(out)) == pytest.approx(1.0)
    assert (out / 'widget_pr.npz').exists()
    assert os.listdir(mine / 'results' / 'Main') == []  # cleaned up
    # a missed gadget: AP(gadget) = 1/2 (area metric, one of two found at precision 1)
    all_boxes[2][1] = []
    assert db.evaluate_detections(all_boxes, str(out)) == pytest.approx((1.0 + 0.5) / 2)


def test_competition_mode_keeps_result_files(mine, tmp_path):
    db = get_imdb('mine_train')
    db.competition_mode(True)
    all_boxes = [[np.zeros((0, 5), np.float32)] * 2 for _ in range(db.num_classes)]
    db.evaluate_detections(all_boxes, str(tmp_path / 'out'))
    assert sorted(os.listdir(mine / 'results' / 'Main')) == [
        'comp4_det_train_gadget.txt', 'comp4_det_train_widget.txt']


# ---- bad input: each error names the file ----

def _one_image_dataset(data_dir, xml_text=None, classes=('widget',), ids='a\n'):
    root = make_voc_folder(data_dir / 'bad', {'a': (40, 30, [('widget', (2, 2, 20, 15), 0)])},
                           'train', classes=list(classes))
    if xml_text is not None:
        (root / 'Annotations' / 'a.xml').write_text(xml_text)
    (root / 'ImageSets' / 'Main' / 'train.txt').write_text(ids)
    return root


@pytest.mark.parametrize('xml_text, expected', [
    ('<annotation><size><width>40</width>', 'malformed XML'),
    ('<annotation><object><name>widget</name></object></annotation>', '<size>'),
    ('<annotation><size><width>40</width></size></annotation>', '<height>'),
    ('<annotation><size><width>40</width><height>30</height></size>'
     '<object><name>widget</name></object></annotation>', '<bndbox>'),
    ('<annotation><size><width>40</width><height>30</height></size><object><name>widget</name>'
     '<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax></bndbox></object></annotation>',
     '<ymax>'),
    ('<annotation><size><width>40</width><height>30</height></size><object><name>widget</name>'
     '<bndbox><xmin>1</xmin><ymin>one</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>'
     '</annotation>', 'should be a number'),
    (voc_xml(40, 30, [('gizmo', (2, 2, 20, 15), 0)]), "'gizmo' is not one of"),
])
def test_bad_annotation_names_the_file(data_dir, xml_text, expected):
    root = _one_image_dataset(data_dir, xml_text)
    db = get_imdb('bad_train')
    with pytest.raises(AnnotationError) as err:
        db.gt_roidb()
    assert str(root / 'Annotations' / 'a.xml') in str(err.value)
    assert expected in str(err.value)


def test_missing_image_names_the_image_set(data_dir):
    root = _one_image_dataset(data_dir, ids='a\nghost\n')
    with pytest.raises(FileNotFoundError) as err:
        get_imdb('bad_train')
    assert str(root / 'ImageSets' / 'Main' / 'train.txt') in str(err.value)
    assert "'ghost'" in str(err.value)


def test_missing_annotation_names_the_file(data_dir):
    root = _one_image_dataset(data_dir)
    os.remove(root / 'Annotations' / 'a.xml')
    with pytest.raises(FileNotFoundError, match=str(root / 'Annotations' / 'a.xml')):
        get_imdb('bad_train').gt_roidb()


def test_empty_image_set_names_the_file(data_dir):
    root = _one_image_dataset(data_dir, ids='\n\n')
    with pytest.raises(ValueError, match='empty') as err:
        get_imdb('bad_train')
    assert str(root / 'ImageSets' / 'Main' / 'train.txt') in str(err.value)


@pytest.mark.parametrize('lines, expected', [
    (['widget', '__background__'], 'background'),
    (['widget', 'Widget'], 'listed twice'),
    (['# nothing', ''], 'no class names'),
])
def test_bad_classes_file_names_the_file(data_dir, lines, expected):
    root = _one_image_dataset(data_dir, classes=lines)
    with pytest.raises(ValueError, match=expected) as err:
        custom_dataset('bad', 'train')
    assert str(root / 'classes.txt') in str(err.value)


def test_bad_boxes_are_skipped_with_a_warning_and_near_misses_clipped(data_dir):
    xml = voc_xml(40, 30, [
        ('widget', (2, 2, 20, 15), 0),      # fine
        ('widget', (20, 2, 10, 15), 0),     # xmax < xmin
        ('widget', (5, 5, 5, 12), 0),       # zero area
        ('widget', (50, 5, 60, 12), 0),     # outside the 40 x 30 image
        ('widget', (0, 3, 41, 31), 0),      # one pixel outside: clipped to [1, 3, 40, 30]
    ])
    root = _one_image_dataset(data_dir, xml)
    ann = str(root / 'Annotations' / 'a.xml')
    with pytest.warns(BadBoxWarning) as record:
        entry = get_imdb('bad_train').gt_roidb()[0]
    messages = [str(w.message) for w in record]
    assert len(messages) == 3 and all(ann in m for m in messages)
    assert "object 1 ('widget')" in messages[0] and 'xmax < xmin' in messages[0]
    assert 'object 2' in messages[1] and 'zero-area' in messages[1]
    assert 'object 3' in messages[2] and 'outside' in messages[2]
    np.testing.assert_array_equal(entry['boxes'], [[1, 1, 19, 14], [0, 2, 39, 29]])
