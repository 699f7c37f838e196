"""fast_rcnn.test.im_detect on tiny hand-weighted nets, and fast_rcnn.train's snapshots (bbox_pred
un-normalized on disk, untouched in memory, re-normalized on restore) and roidb filtering. The
settings are arguments (TrainSettings, TestSettings) or the data layer's param_str."""
import os

import numpy as np
import pytest
import scipy.sparse

import caffe
from caffe import io
from caffe.proto import caffe_pb2
from core.roi_targets import BoxTargets
from core.sampling import RoISampling
from fast_rcnn import test as frcnn_test
from fast_rcnn import train as frcnn_train
from fast_rcnn.solver_wrapper import SolverWrapper, TrainSettings
from fast_rcnn.test_settings import TestSettings
from fast_rcnn.train_roidb import filter_roidb
from fast_rcnn.training_errors import TrainingError

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(autouse=True)
def python_layers_on_path(monkeypatch):
    monkeypatch.syspath_prepend(HERE)  # the prototxts' Python layers live in _train_test_layers


def write(path, text):
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


HEAD = '''
layer { name: "roi_pool" type: "ROIPooling" bottom: "data" bottom: "rois" top: "pool"
        roi_pooling_param { pooled_w: 2 pooled_h: 2 spatial_scale: 0.0625 } }
layer { name: "cls_score" type: "InnerProduct" bottom: "pool" top: "cls_score"
        inner_product_param { num_output: 3 } }
layer { name: "bbox_pred" type: "InnerProduct" bottom: "pool" top: "bbox_pred"
        inner_product_param { num_output: 12 } }
layer { name: "cls_prob" type: "Softmax" bottom: "cls_score" top: "cls_prob" }
'''

FAST_RCNN_NET = '''name: "tiny_fast_rcnn"
input: "data" input_shape { dim: 1 dim: 3 dim: 32 dim: 32 }
input: "rois" input_shape { dim: 1 dim: 5 }
''' + HEAD

RPN_NET = '''name: "tiny_rpn"
input: "data" input_shape { dim: 1 dim: 3 dim: 32 dim: 32 }
input: "im_info" input_shape { dim: 1 dim: 3 }
layer { name: "proposal" type: "Python" bottom: "im_info" top: "rois"
        python_param { module: "_train_test_layers" layer: "ScaledRois" } }
''' + HEAD

# Class 0 keeps the box, class 1 moves it by (0.1 w, -0.2 h), class 2 doubles w and halves h.
DELTAS = np.array([0, 0, 0, 0, 0.1, -0.2, 0, 0, 0, 0, np.log(2), np.log(0.5)], np.float32)


def fast_rcnn_net(tmp_path, deltas=DELTAS):
    net = caffe.Net(write(tmp_path / 'fast_rcnn.prototxt', FAST_RCNN_NET), caffe.TEST)
    net.params['bbox_pred'][1].data[...] = deltas
    return net


def image(height=50, width=80):
    return np.random.RandomState(1).randint(0, 255, size=(height, width, 3)).astype(np.uint8)


def test_im_detect_fast_rcnn_boxes_and_scores(tmp_path):
    net = fast_rcnn_net(tmp_path)
    proposals = np.array([[10, 20, 29, 59], [40, 10, 59, 19]], dtype=np.float64)
    scores, boxes = frcnn_test.im_detect(net, image(), proposals,
                                         TestSettings(scales=(100,), max_size=1000))

    assert scores.shape == (2, 3) and boxes.shape == (2, 12)
    np.testing.assert_allclose(scores, 1.0 / 3, rtol=1e-6)  # zero cls_score weights
    # The short side 50 -> 100: the image and the RoIs are scaled by 2.
    assert net.blobs['data'].shape == (1, 3, 100, 160)
    np.testing.assert_allclose(net.blobs['rois'].data,
                               [[0, 20, 40, 58, 118], [0, 80, 20, 118, 38]])
    # First box: w 20, h 40, center (20, 40); decoded as x2 = cx + w/2 (the release's
    # convention), then clipped to x <= 79, y <= 49.
    np.testing.assert_allclose(boxes[0], [10, 20, 30, 49,      # class 0: unchanged, y2 60 -> 49
                                          12, 12, 32, 49,      # class 1: center (22, 32)
                                          0, 30, 40, 50 - 1],  # class 2: 40 x 20
                               atol=1e-4)


def test_im_detect_multiscale_projects_rois_to_the_level_nearest_224(tmp_path):
    net = fast_rcnn_net(tmp_path)
    # 20 x 40 = 800 pixels: at scale 1 its area is 800, at scale 2 3200, nearer 224^2.
    frcnn_test.im_detect(net, image(), np.array([[10, 20, 29, 59]], dtype=np.float64),
                         TestSettings(scales=(50, 100), max_size=1000))
    assert net.blobs['data'].shape == (2, 3, 100, 160)
    np.testing.assert_allclose(net.blobs['rois'].data, [[1, 20, 40, 58, 118]])


def test_im_detect_caps_the_long_side(tmp_path):
    net = fast_rcnn_net(tmp_path)
    frcnn_test.im_detect(net, image(), np.array([[10, 20, 29, 59]], dtype=np.float64),
                         TestSettings(scales=(100,), max_size=120))
    assert net.blobs['data'].shape == (1, 3, 75, 120)  # scale 120 / 80 = 1.5
    np.testing.assert_allclose(net.blobs['rois'].data, [[0, 15, 30, 43.5, 88.5]])


def test_im_detect_dedups_boxes_on_one_feature_cell(tmp_path):
    net = fast_rcnn_net(tmp_path)
    # At scale 2 the first two differ by 2 pixels, less than one 16-pixel cell.
    proposals = np.array([[10, 20, 29, 59], [11, 20, 29, 59], [40, 10, 59, 19]], np.float64)
    scores, boxes = frcnn_test.im_detect(net, image(), proposals,
                                         TestSettings(scales=(100,), dedup_boxes=1. / 16))
    assert net.blobs['rois'].shape[0] == 2
    assert scores.shape == (3, 3) and boxes.shape == (3, 12)
    np.testing.assert_array_equal(boxes[0], boxes[1])


def test_im_detect_rpn_net_scales_rois_back_to_the_image(tmp_path):
    from _train_test_layers import ScaledRois
    net = caffe.Net(write(tmp_path / 'rpn.prototxt', RPN_NET), caffe.TEST)
    scores, boxes = frcnn_test.im_detect(net, image(), settings=TestSettings(
        scales=(100,), max_size=1000, has_rpn=True))
    np.testing.assert_allclose(net.blobs['im_info'].data, [[100, 160, 2]])
    assert scores.shape == (3, 3) and boxes.shape == (3, 12)
    # Zero deltas give back each box with x2, y2 one larger, clipped to the 80 x 50 image.
    expected = ScaledRois.BOXES + [0, 0, 1, 1]
    expected = np.minimum(expected, [79, 49, 79, 49])
    for k in range(3):
        np.testing.assert_allclose(boxes[:, 4 * k:4 * k + 4], expected, atol=1e-4)


def test_im_detect_without_box_regression_tiles_the_proposals(tmp_path):
    net = fast_rcnn_net(tmp_path)
    proposals = np.array([[10, 20, 29, 59]], dtype=np.float64)
    _, boxes = frcnn_test.im_detect(net, image(), proposals,
                                    TestSettings(scales=(100,), bbox_reg=False))
    np.testing.assert_array_equal(boxes, np.tile(proposals, (1, 3)))


def test_limit_detections_keeps_the_best_over_classes():
    dets = [np.array([[0, 0, 1, 1, s] for s in scores], np.float32)
            for scores in ([0.9, 0.2], [0.5, 0.8, 0.1])]
    kept = frcnn_test.limit_detections(dets, 3)
    assert sorted(np.hstack([d[:, 4] for d in kept]).tolist()) == pytest.approx([0.5, 0.8, 0.9])


# Training ---------------------------------------------------------------------------------------

TRAIN_NET = '''name: "tiny_regression"
layer { name: "input-data" type: "Python" top: "features" top: "targets" top: "inside"
        top: "outside" python_param { module: "_train_test_layers"
        layer: "FixedRegressionData" param_str: "%s" } }
layer { name: "bbox_pred" type: "InnerProduct" bottom: "features" top: "bbox_pred"
        inner_product_param { num_output: 8 weight_filler { type: "gaussian" std: 0.5 }
                              bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "SmoothL1Loss" bottom: "bbox_pred" bottom: "targets"
        bottom: "inside" bottom: "outside" top: "loss" loss_weight: 1 }
'''

SOLVER = '''train_net: "%s"
base_lr: 0.01
lr_policy: "fixed"
momentum: 0.9
weight_decay: 0.0005
display: 1
snapshot: 0
snapshot_prefix: "tiny"
'''

MEANS = (0.1, -0.2, 0.05, 0.3)
STDS = (0.1, 0.1, 0.2, 0.2)


def tiny_roidb(num_classes=2):
    """One image with a ground-truth box of class 1 and a proposal of IoU 0.6 with it."""
    boxes = np.array([[10, 10, 29, 29], [10, 10, 29, 35]], dtype=np.float64)
    overlaps = np.array([[0, 1.0], [0, 20 * 20 / (20 * 26.)]])
    return [{'boxes': boxes, 'gt_classes': np.array([1, 0], np.int32),
             'gt_overlaps': scipy.sparse.csr_matrix(overlaps), 'flipped': False,
             'max_overlaps': overlaps.max(axis=1), 'max_classes': overlaps.argmax(axis=1),
             'image': 'none.jpg', 'width': 40, 'height': 40}]


def solver_with(tmp_path, data_param_str='{}'):
    """The solver of TRAIN_NET whose data layer has this param_str (its has_rpn, bbox_reg)."""
    net = write(tmp_path / 'train.prototxt', TRAIN_NET % data_param_str)
    return write(tmp_path / 'solver.prototxt', SOLVER % net)


@pytest.fixture
def solver_file(tmp_path):
    return solver_with(tmp_path)


# Box targets normalized by fixed means and stds, as end-to-end training has them.
NORMALIZED = TrainSettings(BoxTargets(normalize=True, precomputed=True, means=MEANS, stds=STDS))


def read_params(path, layer_name):
    model = io.read_binary(path, caffe_pb2.NetParameter())
    layer = [l for l in model.layer if l.name == layer_name][0]
    return [io.blobproto_to_array(b) for b in layer.blobs]


def test_snapshot_unnormalizes_bbox_pred_on_disk_only(solver_file, tmp_path):
    frcnn_train.seed_rngs(5)
    sw = SolverWrapper(solver_file, tiny_roidb(), str(tmp_path / 'out'), settings=NORMALIZED)
    sw.solver.step(3)
    weights = sw.solver.net.params['bbox_pred'][0].data.copy()
    biases = sw.solver.net.params['bbox_pred'][1].data.copy()

    path = sw.snapshot()

    assert path == str(tmp_path / 'out' / 'tiny_iter_3.caffemodel')
    saved_w, saved_b = read_params(path, 'bbox_pred')
    stds = np.tile(STDS, 2)
    means = np.tile(MEANS, 2)
    np.testing.assert_allclose(saved_w, weights * stds[:, None], rtol=1e-6)
    np.testing.assert_allclose(saved_b, biases * stds + means, rtol=1e-6, atol=1e-7)
    # The net keeps training on normalized targets: its weights are exactly as before.
    np.testing.assert_array_equal(sw.solver.net.params['bbox_pred'][0].data, weights)
    np.testing.assert_array_equal(sw.solver.net.params['bbox_pred'][1].data, biases)
    assert os.path.isfile(str(tmp_path / 'out' / 'tiny_iter_3.solverstate'))
    assert not [f for f in os.listdir(str(tmp_path / 'out')) if f.endswith('.tmp')]


def test_snapshot_infix_and_no_unnormalization_without_bbox_reg(tmp_path):
    solver_file = solver_with(tmp_path, "{'bbox_reg': false}")
    settings = TrainSettings(NORMALIZED.box_targets, snapshot_infix='stage1')
    sw = SolverWrapper(solver_file, tiny_roidb(), str(tmp_path), settings=settings)
    sw.solver.step(1)
    weights = sw.solver.net.params['bbox_pred'][0].data.copy()
    path = sw.snapshot()
    assert os.path.basename(path) == 'tiny_stage1_iter_1.caffemodel'
    np.testing.assert_array_equal(read_params(path, 'bbox_pred')[0], weights)


def test_restore_resumes_with_normalized_weights(solver_file, tmp_path):
    frcnn_train.seed_rngs(5)
    sw = SolverWrapper(solver_file, tiny_roidb(), str(tmp_path), settings=NORMALIZED)
    sw.solver.step(4)
    weights = sw.solver.net.params['bbox_pred'][0].data.copy()
    biases = sw.solver.net.params['bbox_pred'][1].data.copy()
    sw.snapshot()

    resumed = SolverWrapper(solver_file, tiny_roidb(), str(tmp_path), settings=NORMALIZED)
    resumed.restore(str(tmp_path / 'tiny_iter_4.solverstate'))
    assert resumed.solver.iter == 4
    np.testing.assert_allclose(resumed.solver.net.params['bbox_pred'][0].data, weights,
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(resumed.solver.net.params['bbox_pred'][1].data, biases,
                               rtol=1e-5, atol=1e-7)
    # Resumed training continues where the first run would have gone.
    sw.solver.step(2)
    resumed.solver.step(2)
    np.testing.assert_allclose(resumed.solver.net.params['bbox_pred'][0].data,
                               sw.solver.net.params['bbox_pred'][0].data, rtol=1e-4, atol=1e-6)


def test_train_net_snapshots_periodically_and_at_the_end(solver_file, tmp_path, capsys):
    settings = TrainSettings(NORMALIZED.box_targets, snapshot_iters=2)
    paths = frcnn_train.train_net(solver_file, tiny_roidb(), str(tmp_path), max_iters=5,
                                  settings=settings)
    assert [os.path.basename(p) for p in paths] == \
        ['tiny_iter_2.caffemodel', 'tiny_iter_4.caffemodel', 'tiny_iter_5.caffemodel']
    out = capsys.readouterr().out
    assert 'Iteration 5/5: loss = ' in out and 's/iter' in out and 'ETA' in out


def test_train_net_is_reproducible_with_the_seed(solver_file, tmp_path):
    a = frcnn_train.train_net(solver_file, tiny_roidb(), str(tmp_path / 'a'), max_iters=2,
                              seed=5, settings=NORMALIZED)
    b = frcnn_train.train_net(solver_file, tiny_roidb(), str(tmp_path / 'b'), max_iters=2,
                              seed=5, settings=NORMALIZED)
    np.testing.assert_array_equal(read_params(a[-1], 'bbox_pred')[0],
                                  read_params(b[-1], 'bbox_pred')[0])


def test_train_net_rejects_missing_weights(solver_file, tmp_path):
    with pytest.raises(TrainingError, match='see data/README.md'):
        frcnn_train.train_net(solver_file, tiny_roidb(), str(tmp_path),
                              pretrained_model=str(tmp_path / 'nope.caffemodel'))


def test_end_to_end_needs_precomputed_normalization(tmp_path):
    # A data layer for an RPN (ground truth in) and no proposal-target layer to say otherwise.
    solver_file = solver_with(tmp_path, "{'has_rpn': true}")
    settings = TrainSettings(BoxTargets(normalize=True, precomputed=False))
    with pytest.raises(TrainingError, match='PRECOMPUTED'):
        SolverWrapper(solver_file, tiny_roidb(), str(tmp_path), settings=settings)


def test_filter_roidb_drops_images_without_fg_or_bg():
    keep_fg = {'max_overlaps': np.array([0.7])}
    keep_bg = {'max_overlaps': np.array([0.3])}
    drop = {'max_overlaps': np.array([0.05, 0.0])}
    assert filter_roidb([keep_fg, drop, keep_bg], RoISampling()) == [keep_fg, keep_bg]
    rule = RoISampling(bg_thresh_lo=0.0)
    assert filter_roidb([keep_fg, drop, keep_bg], rule) == [keep_fg, drop, keep_bg]


def test_the_trainer_filters_with_the_data_layers_rule(tmp_path, capsys):
    # Only the data layer's param_str says which entries can give a minibatch.
    drop = dict(tiny_roidb()[0], max_overlaps=np.array([0.05, 0.0]))
    solver_file = solver_with(tmp_path, "{'bg_thresh_lo': 0.0}")
    SolverWrapper(solver_file, tiny_roidb() + [drop], str(tmp_path / 'a'), settings=NORMALIZED)
    assert 'Filtered 0 roidb entries: 2 -> 2' in capsys.readouterr().out
    (tmp_path / 'b').mkdir()
    solver_file = solver_with(tmp_path / 'b')  # the paper's rule: background from IoU 0.1
    SolverWrapper(solver_file, tiny_roidb() + [drop], str(tmp_path / 'b'), settings=NORMALIZED)
    assert 'Filtered 1 roidb entries: 2 -> 1' in capsys.readouterr().out
