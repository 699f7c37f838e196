"""voc_eval against a hand-worked example with a difficult box, under both VOC metrics."""
import os

import numpy as np
import pytest

from datasets.voc_eval import parse_rec, voc_ap, voc_eval


def xml(objects, width=200, height=200):
    body = ''.join(
        '<object><name>{}</name><pose>Left</pose><truncated>1</truncated>'
        '<difficult>{}</difficult><bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax>'
        '<ymax>{}</ymax></bndbox></object>'.format(name, diff, *box)
        for name, box, diff in objects)
    return ('<annotation><size><width>{}</width><height>{}</height></size>{}</annotation>'
            .format(width, height, body))


# Ground truth (1-based). img1: A (dog), B (dog, difficult), a cat; img2: C and D (dogs).
GT = {
    'img1': [('dog', (1, 1, 10, 10), 0), ('dog', (21, 21, 30, 30), 1),
             ('cat', (50, 50, 60, 60), 0)],
    'img2': [('dog', (1, 1, 10, 10), 0), ('dog', (41, 41, 50, 50), 0)],
}
# Dog detections, listed out of score order on purpose.
DETS = [
    ('img2', 0.5, (100, 100, 110, 110)),  # d5: hits nothing                -> FP
    ('img1', 0.9, (1, 1, 10, 10)),        # d1: A, IoU 1                    -> TP
    ('img1', 0.6, (1, 1, 10, 10)),        # d4: A again, already matched    -> FP
    ('img2', 0.4, (41, 41, 50, 50)),      # d6: D                           -> TP
    ('img1', 0.8, (21, 21, 30, 30)),      # d2: B is difficult              -> neither
    ('img2', 0.7, (1, 1, 10, 10)),        # d3: C                           -> TP
]
# npos = 3 (A, C, D; B is difficult). In score order d1..d6:
#   cumulative tp = 1 1 2 2 2 3, fp = 0 0 0 1 2 2
#   rec  = tp / 3          = 1/3 1/3 2/3 2/3 2/3 1
#   prec = tp / (tp + fp)  = 1   1   1   2/3 1/2 3/5
# Area metric: the envelope of prec is 1 up to recall 2/3 and 3/5 after, so
#   AP = 1/3 * 1 + 1/3 * 1 + 1/3 * 3/5 = 13/15.
# VOC07 11-point metric: t = 0 .. 0.6 (7 points) see precision 1; t = 0.7 .. 1 (4 points)
#   only the last detection (rec 1, prec 3/5), so AP = (7 * 1 + 4 * 3/5) / 11 = 9.4 / 11.
EXPECTED_REC = [1 / 3, 1 / 3, 2 / 3, 2 / 3, 2 / 3, 1]
EXPECTED_PREC = [1, 1, 1, 2 / 3, 1 / 2, 3 / 5]


@pytest.fixture
def voc(tmp_path):
    ann_dir = tmp_path / 'Annotations'
    ann_dir.mkdir()
    for name, objects in GT.items():
        (ann_dir / (name + '.xml')).write_text(xml(objects))
    imageset = tmp_path / 'test.txt'
    imageset.write_text('img1\nimg2\n')
    (tmp_path / 'det_dog.txt').write_text(''.join(
        '{} {} {} {} {} {}\n'.format(i, s, *b) for i, s, b in DETS))
    return {'detpath': str(tmp_path / 'det_{}.txt'),
            'annopath': str(ann_dir / '{}.xml'),
            'imagesetfile': str(imageset),
            'cachedir': str(tmp_path / 'cache')}


def test_area_metric_hand_worked(voc):
    rec, prec, ap = voc_eval(voc['detpath'], voc['annopath'], voc['imagesetfile'], 'dog',
                             voc['cachedir'])
    np.testing.assert_allclose(rec, EXPECTED_REC)
    np.testing.assert_allclose(prec, EXPECTED_PREC)
    assert ap == pytest.approx(13 / 15)


def test_voc07_metric_hand_worked(voc):
    rec, prec, ap = voc_eval(voc['detpath'], voc['annopath'], voc['imagesetfile'], 'dog',
                             voc['cachedir'], use_07_metric=True)
    np.testing.assert_allclose(rec, EXPECTED_REC)
    assert ap == pytest.approx(9.4 / 11)


def test_voc_ap_simple_curves():
    # one detection, correct, finding half the boxes: area 1/2; 11-point: t = 0..0.5 -> 6/11
    assert voc_ap([0.5], [1.0]) == pytest.approx(0.5)
    assert voc_ap([0.5], [1.0], use_07_metric=True) == pytest.approx(6 / 11)
    # a later precision rise lifts the envelope: prec 1/2 at rec 1/2, then 2/3 at rec 1
    assert voc_ap([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3]) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_iou_threshold_is_strict(voc, tmp_path):
    # [1, 1, 10, 5] covers 50 of A's 100 pixels: IoU exactly 0.5, not > 0.5 -> FP
    (tmp_path / 'det_dog.txt').write_text('img1 0.9 1 1 10 5\n')
    rec, prec, ap = voc_eval(voc['detpath'], voc['annopath'], voc['imagesetfile'], 'dog',
                             voc['cachedir'])
    np.testing.assert_allclose(rec, [0])
    rec, prec, ap = voc_eval(voc['detpath'], voc['annopath'], voc['imagesetfile'], 'dog',
                             voc['cachedir'], ovthresh=0.49)
    np.testing.assert_allclose(rec, [1 / 3])


def test_parse_rec_reads_the_file_coordinates(voc):
    objs = parse_rec(voc['annopath'].format('img1'))
    assert [o['name'] for o in objs] == ['dog', 'dog', 'cat']
    assert objs[1]['difficult'] == 1 and objs[0]['difficult'] == 0
    assert objs[0]['bbox'] == [1, 1, 10, 10] and objs[0]['pose'] == 'Left'
    assert objs[0]['truncated'] == 1


def test_annotation_cache_is_per_image_set_and_follows_edits(voc, tmp_path):
    voc_eval(voc['detpath'], voc['annopath'], voc['imagesetfile'], 'dog', voc['cachedir'])
    assert len(os.listdir(voc['cachedir'])) == 1
    # a second image set in the same cache folder must not reuse the first one's records
    only2 = tmp_path / 'only2.txt'
    only2.write_text('img2\n')
    (tmp_path / 'det_dog.txt').write_text('img2 0.9 1 1 10 10\n')
    rec, _, ap = voc_eval(voc['detpath'], voc['annopath'], str(only2), 'dog', voc['cachedir'])
    np.testing.assert_allclose(rec, [0.5])
    assert len(os.listdir(voc['cachedir'])) == 2
    # editing an annotation (C becomes difficult) invalidates the cache
    ann = voc['annopath'].format('img2')
    with open(ann, 'w') as f:
        f.write(xml([('dog', (1, 1, 10, 10), 1), ('dog', (41, 41, 50, 50), 0)]))
    st = os.stat(ann)
    os.utime(ann, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    rec, prec, ap = voc_eval(voc['detpath'], voc['annopath'], str(only2), 'dog',
                             voc['cachedir'])
    assert rec.tolist() == [0] and prec.tolist() == [0]  # the only detection hit a difficult


def test_class_without_ground_truth_gives_nan(voc, tmp_path):
    (tmp_path / 'det_bird.txt').write_text('img1 0.9 1 1 10 10\n')
    _, _, ap = voc_eval(voc['detpath'], voc['annopath'], voc['imagesetfile'], 'bird', None)
    assert np.isnan(ap)


def test_empty_detection_file(voc, tmp_path):
    (tmp_path / 'det_dog.txt').write_text('')
    rec, prec, ap = voc_eval(voc['detpath'], voc['annopath'], voc['imagesetfile'], 'dog', None)
    assert rec.size == 0 and ap == 0


@pytest.mark.parametrize('line, expected', [
    ('img9 0.9 1 1 10 10\n', "'img9' is not in the image set"),
    ('img1 0.9 1 1 10\n', 'expected "image_id score x1 y1 x2 y2"'),
    ('img1 high 1 1 10 10\n', 'should be numbers'),
])
def test_bad_detection_file_names_it(voc, tmp_path, line, expected):
    (tmp_path / 'det_dog.txt').write_text(line)
    with pytest.raises(ValueError, match=expected) as err:
        voc_eval(voc['detpath'], voc['annopath'], voc['imagesetfile'], 'dog', None)
    assert str(tmp_path / 'det_dog.txt') in str(err.value)
