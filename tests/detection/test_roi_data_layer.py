import cv2
import numpy as np
import pytest
import scipy.sparse

import dataclasses

import caffe
from caffe.testing import layer_param
from core.roi_targets import BoxTargets
from core.sampling import RoISampling
from roi_data_layer import roidb as rdl_roidb
from roi_data_layer.layer import RoIDataLayer, shuffled_order
from roi_data_layer.minibatch import MinibatchSettings, get_minibatch as _get_minibatch
from utils.param_str import dump_param_str, settings_params
from brute_force import iou

K = 3  # classes, background included


def get_minibatch(entries, num_classes, **changes):
    """The minibatch under SETTINGS with `changes` (MinibatchSettings fields)."""
    return _get_minibatch(entries, num_classes, dataclasses.replace(SETTINGS, **changes))


def add_bbox_regression_targets(entries, **changes):
    """The roidb's targets, normalized by its own statistics unless `changes` say otherwise."""
    targets = BoxTargets(normalize=True, precomputed=False)
    return rdl_roidb.add_bbox_regression_targets(entries, dataclasses.replace(targets, **changes))
MEANS = np.array([[[100.0, 110.0, 120.0]]])
# The minibatches of these tests: images scaled to a short side of 80, one per minibatch, with
# ground truth for an RPN; a 16-RoI sample of Fast R-CNN's 25% foreground without one.
SETTINGS = MinibatchSettings(scales=(80,), max_size=1000, pixel_means=(100.0, 110.0, 120.0),
                             has_rpn=True, bbox_reg=True,
                             sampling=RoISampling(batch_size=16, fg_fraction=0.25),
                             ims_per_batch=1)


def write_image(path, height, width, seed=0):
    """A random BGR image whose left and right halves differ, so a mirror image is not itself."""
    im = np.random.RandomState(seed).randint(0, 256, size=(height, width, 3)).astype(np.uint8)
    cv2.imwrite(str(path), im)
    return im


def entry(path, width, height, gt, gt_classes, proposals=(), flipped=False):
    """A roidb entry as an imdb makes it: gt boxes first, then proposals with their best IoU."""
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    proposals = np.asarray(proposals, dtype=np.float64).reshape(-1, 4)
    boxes = np.vstack([gt, proposals])
    overlaps = np.zeros((len(boxes), K), dtype=np.float32)
    overlaps[np.arange(len(gt)), gt_classes] = 1.0
    for i, p in enumerate(proposals):
        ious = [iou(p, g) for g in gt]
        if ious and max(ious) > 0:
            overlaps[len(gt) + i, gt_classes[int(np.argmax(ious))]] = max(ious)
    return {'image': str(path), 'width': width, 'height': height, 'boxes': boxes,
            'gt_classes': np.concatenate([np.asarray(gt_classes, np.int32),
                                          np.zeros(len(proposals), np.int32)]),
            'gt_overlaps': scipy.sparse.csr_matrix(overlaps), 'flipped': flipped,
            'seg_areas': np.zeros(len(boxes), np.float32)}


class FakeImdb:
    def __init__(self, roidb):
        self.roidb = roidb
        self.name = 'fake'

    def image_path_at(self, i):
        return self.roidb[i]['image']

    def image_size_at(self, i):
        return self.roidb[i]['width'], self.roidb[i]['height']


def prepared(entries):
    rdl_roidb.prepare_roidb(FakeImdb(entries))
    return entries


def test_flipped_entry_gives_mirrored_image_and_boxes(tmp_path):
    path = tmp_path / 'a.png'
    im = write_image(path, 40, 60)
    gt = [[5, 10, 20, 30], [30, 0, 59, 39]]
    flipped_gt = [[60 - 20 - 1, 10, 60 - 5 - 1, 30], [0, 0, 60 - 30 - 1, 39]]  # W - x - 1
    plain = prepared([entry(path, 60, 40, gt, [1, 2])])[0]
    mirrored = prepared([entry(path, 60, 40, flipped_gt, [1, 2], flipped=True)])[0]
    a = get_minibatch([plain], K)
    b = get_minibatch([mirrored], K)
    # short side 40 -> 80: scale 2, im_info [height, width, scale]
    np.testing.assert_array_equal(a['im_info'], [[80, 120, 2.0]])
    np.testing.assert_array_equal(b['im_info'], [[80, 120, 2.0]])
    np.testing.assert_allclose(b['data'], a['data'][..., ::-1], atol=1e-3)
    assert np.abs(a['data'] - a['data'][..., ::-1]).max() > 10
    np.testing.assert_array_equal(a['gt_boxes'], np.hstack([np.array(gt) * 2, [[1], [2]]]))
    np.testing.assert_array_equal(b['gt_boxes'],
                                  np.hstack([np.array(flipped_gt) * 2, [[1], [2]]]))
    # At scale 1 the flipped gt boxes cover the mirrored pixels of the flipped blob.
    a = get_minibatch([plain], K, scales=(40,))['data'][0]
    b = get_minibatch([mirrored], K, scales=(40,))['data'][0]
    for (x1, y1, x2, y2), (u1, _, u2, _) in zip(gt, flipped_gt):
        np.testing.assert_array_equal(a[:, y1:y2 + 1, x1:x2 + 1],
                                      b[:, y1:y2 + 1, u1:u2 + 1][..., ::-1])
    # Mean subtraction.
    np.testing.assert_allclose(a, (im - MEANS).transpose(2, 0, 1), atol=1e-4)


def test_crowd_boxes_are_not_gt_boxes(tmp_path):
    path = tmp_path / 'c.png'
    write_image(path, 40, 40)
    e = entry(path, 40, 40, [[0, 0, 10, 10], [5, 5, 30, 30]], [1, 2])
    overlaps = e['gt_overlaps'].toarray()
    overlaps[1] = -1
    e['gt_overlaps'] = scipy.sparse.csr_matrix(overlaps)
    blobs = get_minibatch(prepared([e]), K)
    np.testing.assert_array_equal(blobs['gt_boxes'], [[0, 0, 20, 20, 1]])


def test_image_without_objects_gives_empty_gt_boxes(tmp_path):
    path = tmp_path / 'e.png'
    write_image(path, 40, 40)
    blobs = get_minibatch(prepared([entry(path, 40, 40, [], [])]), K)
    assert blobs['gt_boxes'].shape == (0, 5)


def test_random_scales_and_max_size(tmp_path):
    path = tmp_path / 's.png'
    write_image(path, 20, 50)
    e = prepared([entry(path, 50, 20, [[0, 0, 9, 9]], [1])])
    seen = set()
    np.random.seed(0)
    for _ in range(12):
        info = get_minibatch(e, K, scales=(20, 40), max_size=70)['im_info'][0]
        seen.add(tuple(info))
    # 20 -> scale 1; 40 -> scale 2 would make the long side 100 > 70, so 70 / 50.
    assert seen == {(20.0, 50.0, 1.0), (28.0, 70.0, np.float32(1.4))}


def test_unreadable_image_names_the_file(tmp_path):
    missing = tmp_path / 'no_such_image.jpg'
    with pytest.raises(OSError, match='no_such_image.jpg'):
        get_minibatch([entry(missing, 10, 10, [[0, 0, 5, 5]], [1])], K)


def test_stale_size_is_reported(tmp_path):
    path = tmp_path / 'w.png'
    write_image(path, 30, 40)
    with pytest.raises(ValueError, match='w.png'):
        get_minibatch([entry(path, 41, 30, [[0, 0, 5, 5]], [1])], K)


def test_fast_rcnn_minibatch_samples_rois(tmp_path):
    rng = np.random.RandomState(0)
    entries = []
    for i in range(2):
        path = tmp_path / ('f%d.png' % i)
        write_image(path, 40, 60, seed=i)
        gt = [[5, 5, 25, 30], [30, 8, 55, 36]]
        xy = rng.randint(0, 40, size=(60, 2))
        wh = rng.randint(8, 30, size=(60, 2))
        proposals = np.hstack([xy, np.minimum(xy + wh, [59, 39])])
        entries.append(entry(path, 60, 40, gt, [1, 2], proposals))
    prepared(entries)
    means, stds = add_bbox_regression_targets(entries)
    blobs = get_minibatch(entries, K, has_rpn=False, ims_per_batch=2, scales=(40,))
    rois, labels = blobs['rois'], blobs['labels']
    per_image = 8  # 16 RoIs over 2 images, 2 foreground each
    for i in range(2):
        mine = rois[:, 0] == i
        assert mine.sum() == per_image
        assert (labels[mine] > 0).sum() == 2
        e = entries[i]
        for roi, label in zip(rois[mine, 1:], labels[mine]):
            matches = np.where((e['boxes'] == roi).all(axis=1))[0]  # scale 1
            assert matches.size
            ov = e['max_overlaps'][matches[0]]
            if label > 0:
                assert ov >= 0.5 and label == e['max_classes'][matches[0]]
            else:
                assert 0.1 <= ov < 0.5
    t, w_in, w_out = blobs['bbox_targets'], blobs['bbox_inside_weights'], \
        blobs['bbox_outside_weights']
    assert t.shape == (16, 4 * K)
    for row, label in enumerate(labels.astype(int)):
        nonzero = set(np.where(w_in[row] > 0)[0])
        assert nonzero == (set(range(4 * label, 4 * label + 4)) if label else set())
    np.testing.assert_array_equal(w_out, w_in > 0)


def test_prepare_and_regression_targets(tmp_path):
    path = tmp_path / 'r.png'
    write_image(path, 100, 100)
    gt = [[10, 10, 49, 59], [60, 20, 89, 89]]
    proposals = [[12, 8, 50, 55], [8, 14, 47, 62], [58, 25, 92, 85], [62, 18, 86, 95],
                 [0, 0, 30, 30], [70, 70, 99, 99]]
    entries = prepared([entry(path, 100, 100, gt, [1, 2], proposals),
                        entry(path, 100, 100, gt[::-1], [2, 1], proposals[::-1])])
    e = entries[0]
    expected_max = [1, 1] + [max(iou(p, g) for g in gt) for p in proposals]
    np.testing.assert_allclose(e['max_overlaps'], expected_max, rtol=1e-6)
    assert list(e['max_classes'][:2]) == [1, 2]

    raw = []
    for en in entries:
        for box, ov in zip(en['boxes'], en['max_overlaps']):
            if ov < BoxTargets().thresh:
                continue
            g = max(en['boxes'][en['gt_classes'] > 0], key=lambda g: iou(box, g))
            c = int(en['gt_classes'][np.where((en['boxes'] == g).all(axis=1))[0][0]])
            w, h = box[2] - box[0] + 1, box[3] - box[1] + 1
            gw, gh = g[2] - g[0] + 1, g[3] - g[1] + 1
            raw.append([c, (g[0] + 0.5 * gw - box[0] - 0.5 * w) / w,
                        (g[1] + 0.5 * gh - box[1] - 0.5 * h) / h,
                        np.log(gw / w), np.log(gh / h)])
    raw = np.array(raw)
    means, stds = add_bbox_regression_targets(entries)
    assert means.shape == stds.shape == (4 * K,)
    for c in (1, 2):
        rows = raw[raw[:, 0] == c, 1:]
        np.testing.assert_allclose(means[4 * c:4 * c + 4], rows.mean(axis=0), atol=1e-6)
        np.testing.assert_allclose(stds[4 * c:4 * c + 4], rows.std(axis=0), rtol=1e-5)
    assert not means[:4].any() and not stds[:4].any()
    normalized = np.vstack([en['bbox_targets'] for en in entries])
    normalized = normalized[normalized[:, 0] > 0]
    for c in (1, 2):
        rows = normalized[normalized[:, 0] == c, 1:]
        np.testing.assert_allclose(rows.mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(rows.std(axis=0), 1, rtol=1e-4)


def test_precomputed_normalization_uses_the_given_means_and_stds(tmp_path):
    path = tmp_path / 'p.png'
    write_image(path, 100, 100)
    e = prepared([entry(path, 100, 100, [[10, 10, 49, 59]], [2], [[10, 10, 59, 59]])])
    means, stds = add_bbox_regression_targets(e, precomputed=True)
    np.testing.assert_array_equal(means, np.tile([0, 0, 0, 0], K))  # the paper's, as given
    np.testing.assert_array_equal(stds, np.tile([0.1, 0.1, 0.2, 0.2], K))
    # proposal 50 x 50 at centre (35, 35) -> gt 40 x 50 at centre (30, 35)
    raw = np.array([-5 / 50, 0, np.log(40 / 50), 0])
    np.testing.assert_allclose(e[0]['bbox_targets'][1], [2] + list(raw / [0.1, 0.1, 0.2, 0.2]),
                               rtol=1e-5, atol=1e-6)


def test_aspect_grouping_pairs_like_images():
    widths = np.array([100, 50, 100, 50, 100, 100, 50, 50, 100, 100])
    heights = np.array([50, 100, 50, 100, 50, 50, 100, 100, 50, 50])
    np.random.seed(0)
    for _ in range(20):
        order = shuffled_order(widths, heights, 2, True)
        assert sorted(order) == list(range(10))
        for pair in order.reshape(-1, 2):
            horizontal = widths[pair] >= heights[pair]
            assert horizontal[0] == horizontal[1]
    # Odd counts of each kind (3 and 3 here) leave exactly one mixed pair.
    w, h = np.array([100, 50, 100, 50, 100, 50]), np.array([50, 100, 50, 100, 50, 100])
    order = shuffled_order(w, h, 2, True)
    assert sorted(order) == list(range(6))
    mixed = [p for p in order.reshape(-1, 2) if (w[p] >= h[p])[0] != (w[p] >= h[p])[1]]
    assert len(mixed) == 1
    # An odd total leaves the incomplete minibatch at the end.
    order = shuffled_order(widths[:7], heights[:7], 2, True)
    assert sorted(order) == list(range(7))
    for pair in order[:6].reshape(-1, 2):
        assert (widths[pair] >= heights[pair])[0] == (widths[pair] >= heights[pair])[1]
    orders = {tuple(shuffled_order(widths, heights, 2, False)) for _ in range(5)}
    assert len(orders) > 1


def data_layer_param_str(settings=SETTINGS, **extra):
    """The data layer's param_str for these settings, as a training tool writes it."""
    return dump_param_str(dict({'num_classes': K}, **settings_params(settings), **extra))


def make_data_layer(num_tops, settings=SETTINGS):
    param = layer_param('name: "input-data" type: "Python"')
    param.python_param.param_str = data_layer_param_str(settings)
    layer = RoIDataLayer(param, caffe.TRAIN)
    top = [caffe.Blob() for _ in range(num_tops)]
    layer.setup([], top)
    return layer, top


def test_layer_tops_and_epochs(tmp_path):
    entries = []
    for i, (h, w) in enumerate([(40, 60), (60, 40), (40, 40)]):
        path = tmp_path / ('l%d.png' % i)
        write_image(path, h, w, seed=i)
        entries.append(entry(path, w, h, [[0, 0, 9, 9]], [1]))
    prepared(entries)
    layer, top = make_data_layer(3)
    assert top[0].shape == (1, 3, 80, 1000)
    with pytest.raises(caffe.CaffeError, match='set_roidb'):
        layer.forward([], top)
    layer.set_roidb(entries)
    shapes = set()
    for _ in range(3):
        layer.forward([], top)
        shapes.add(top[0].shape)
        assert top[1].shape == (1, 3) and top[2].shape == (1, 5)
    assert shapes == {(1, 3, 80, 120), (1, 3, 120, 80), (1, 3, 80, 80)}  # one epoch
    with pytest.raises(caffe.CaffeError, match='gt_boxes'):
        make_data_layer(6)
    # Without an RPN the layer makes the 6 tops of Fast R-CNN training.
    layer, top = make_data_layer(6, dataclasses.replace(SETTINGS, has_rpn=False))
    assert layer.settings.has_rpn is False
    with pytest.raises(caffe.CaffeError, match='has_rpn False.*rois'):
        make_data_layer(3, dataclasses.replace(SETTINGS, has_rpn=False))


def test_layer_settings_come_from_the_param_str():
    param = layer_param('name: "input-data" type: "Python"')
    param.python_param.param_str = data_layer_param_str(aspect_grouping=False)
    layer = RoIDataLayer(param, caffe.TRAIN)
    layer.setup([], [caffe.Blob() for _ in range(3)])
    assert layer.settings == SETTINGS and layer._aspect_grouping is False
    param.python_param.param_str = "'num_classes': 3"
    layer = RoIDataLayer(param, caffe.TRAIN)
    layer.setup([], [caffe.Blob() for _ in range(6)])
    assert layer.settings == MinibatchSettings() and layer._aspect_grouping is True
    for bad, match in (("{'num_classes': 3, 'scales': 600}", "'scales' should be a list"),
                       ("{'num_classes': 3, 'ims_per_batch': 1.5}", 'an integer'),
                       ("{'num_classes': 3, 'aspect_grouping': 1}", 'true or false'),
                       ("{'num_classes': 3, 'use_prefetch': true}", 'unknown param_str')):
        param.python_param.param_str = bad
        with pytest.raises(caffe.CaffeError, match=match):
            RoIDataLayer(param, caffe.TRAIN).setup([], [caffe.Blob() for _ in range(6)])


def test_layer_in_a_net(tmp_path):
    path = tmp_path / 'n.png'
    write_image(path, 40, 60)
    entries = prepared([entry(path, 60, 40, [[5, 10, 20, 30]], [2])])
    proto = tmp_path / 'train.prototxt'
    proto.write_text('name: "t"\nlayer { name: "input-data" type: "Python" top: "data" '
                     'top: "im_info" top: "gt_boxes" python_param { module: '
                     '"roi_data_layer.layer" layer: "RoIDataLayer" param_str: "%s" } }\n'
                     % data_layer_param_str())
    net = caffe.Net(str(proto), caffe.TRAIN)
    net.layers[0].set_roidb(entries)
    net.forward()
    np.testing.assert_array_equal(net.blobs['gt_boxes'].data, [[10, 20, 40, 60, 2]])
    np.testing.assert_array_equal(net.blobs['im_info'].data, [[80, 120, 2]])


def prefetch_entries(tmp_path, count=5):
    entries = []
    for i in range(count):
        path = tmp_path / ('p%d.png' % i)
        h, w = (40, 60) if i % 2 else (60, 40)
        write_image(path, h, w, seed=i)
        entries.append(entry(path, w, h, [[0, 0, 9, 9]], [1], flipped=i == 3))
    return prepared(entries)


def read_minibatches(layer, top, entries, count):
    np.random.seed(11)
    layer.set_roidb(entries)
    batches = []
    for _ in range(count):
        layer.forward([], top)
        batches.append([t.data.copy() for t in top])
    return batches, np.random.get_state()[1].copy()


@pytest.mark.parametrize('scales', [(80, 50), (80,)])
def test_prefetched_minibatches_are_those_read_in_turn(monkeypatch, tmp_path, scales):
    # Two epochs (a reshuffle in between); two scales drawn at random (images read ahead) or
    # one (images also scaled ahead): the background work must give the same minibatches and
    # leave the same random stream as reading each image when its minibatch is made.
    from roi_data_layer.minibatch import ScaledImage
    entries = prefetch_entries(tmp_path)
    layer, top = make_data_layer(3, dataclasses.replace(SETTINGS, scales=scales))
    got, got_state = read_minibatches(layer, top, entries, 12)
    ahead = layer._prefetch._pending[2].result()  # the 13th minibatch's image
    assert isinstance(ahead[0], ScaledImage) == (len(scales) == 1)
    monkeypatch.setattr(layer._prefetch, 'start', lambda roidb, inds, settings: None)
    expected, expected_state = read_minibatches(layer, top, entries, 12)
    for a, b in zip(got, expected):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(got_state, expected_state)


def test_a_prefetched_read_error_surfaces_with_its_minibatch(monkeypatch, tmp_path):
    from roi_data_layer import minibatch
    entries = prefetch_entries(tmp_path, 3)
    layer, top = make_data_layer(3)
    np.random.seed(3)
    layer.set_roidb(entries)
    order = list(layer._perm)
    real = minibatch.load_image

    def failing(entry):
        if entry is entries[order[1]]:
            raise OSError('cannot read image %s (simulated)' % entry['image'])
        return real(entry)
    monkeypatch.setattr(minibatch, 'load_image', failing)
    layer.forward([], top)  # reads ahead the second image, which fails in the background
    with pytest.raises(OSError, match='simulated'):
        layer.forward([], top)


# Data-parallel ranks ------------------------------------------------------------------------------

def rank_reader(entries, rank, count, shuffle_seed=5, ims_per_batch=1):
    caffe.set_solver_count(count)
    caffe.set_solver_rank(rank)
    try:
        layer, _ = make_data_layer(3, dataclasses.replace(SETTINGS, ims_per_batch=ims_per_batch))
        layer.set_roidb(entries, shuffle_seed=shuffle_seed)
    finally:
        caffe.set_solver_count(1)
        caffe.set_solver_rank(0)
    return layer


def sized_entries(count):
    # Landscape and portrait sizes, so that aspect grouping has something to group.
    return [{'width': 60 + 10 * (i % 3), 'height': 40 + 35 * (i % 2)} for i in range(count)]


@pytest.mark.parametrize('ranks,ims,images', [(2, 1, 12), (4, 1, 12), (2, 2, 16)])
def test_ranks_share_one_order_and_each_reads_its_part(ranks, ims, images):
    entries = sized_entries(images)
    single = rank_reader(entries, 0, 1, ims_per_batch=ims)
    epochs = 3
    order = [tuple(single._get_next_minibatch_inds()) for _ in range(epochs * images // ims)]
    assert sorted(i for batch in order[:images // ims] for i in batch) == list(range(images))
    assert order[:images // ims] != order[images // ims:2 * images // ims]  # reshuffled
    layers = [rank_reader(entries, r, ranks, ims_per_batch=ims) for r in range(ranks)]
    for t in range(epochs * images // (ims * ranks)):
        for r, layer in enumerate(layers):
            assert tuple(layer._get_next_minibatch_inds()) == order[t * ranks + r], (t, r)


def test_a_rank_resumes_its_reading_exactly():
    entries = sized_entries(6)
    layer = rank_reader(entries, 1, 2)
    for _ in range(2):
        layer._get_next_minibatch_inds()
    state = layer.get_state()
    expected = [tuple(layer._get_next_minibatch_inds()) for _ in range(7)]  # past two epochs
    resumed = rank_reader(entries, 1, 2, shuffle_seed=99)
    resumed.set_state(state)
    assert [tuple(resumed._get_next_minibatch_inds()) for _ in range(7)] == expected


def test_ranks_need_a_shared_shuffle_seed_and_enough_images():
    with pytest.raises(caffe.CaffeError, match='share one shuffled order'):
        rank_reader(sized_entries(6), 0, 2, shuffle_seed=None)
    with pytest.raises(caffe.CaffeError, match=r'3 images, fewer than .* x 4 solver'):
        rank_reader(sized_entries(3), 0, 4)
