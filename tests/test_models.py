"""The model definitions under models/: every net builds in its phase, has the released models'
layer names and parameter shapes (so the released .caffemodel files load by name), learns or stays
fixed where the release does, and runs one forward and backward pass on a small synthetic image;
every solver parses and names an existing train net with the release's settings.

The expected names and shapes below are facts about the released ImageNet and Faster R-CNN models
(ZF.v2, VGG_CNN_M_1024.v2, VGG16.v2 and the *_faster_rcnn_final models), written out here by
hand, not read from the prototxts under test.
"""
import glob
import os
import types

import cv2
import numpy as np
import pytest
import scipy.sparse
import yaml

import caffe
from caffe import io as caffe_io
from caffe.proto import caffe_pb2
from fast_rcnn import net_surgery
from fast_rcnn.experiment import Experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, 'models')


def _model_files():
    files = sorted(glob.glob(os.path.join(MODELS, '**', '*'), recursive=True))
    return [os.path.relpath(f, ROOT) for f in files
            if os.path.isfile(f) and f.endswith(('.pt', '.prototxt'))]


def _is_solver(rel):
    return 'solver' in os.path.basename(rel)


SOLVERS = [f for f in _model_files() if _is_solver(f)]
NETS = [f for f in _model_files() if not _is_solver(f)]
# The release's datasets and networks; other folders (e.g. the toy dataset's net) get the generic
# checks only.
RELEASE_CLASSES = {'pascal_voc': 21, 'coco': 81}
RELEASE_ARCHS = ('ZF', 'VGG_CNN_M_1024', 'VGG16')
# End-to-end training: the release's approximate joint training, and non-approximate joint
# training (paper Sec. 3.2) with ROIWarping and the proposal layers' coordinate backward.
END2END = ('faster_rcnn_end2end', 'faster_rcnn_end2end_nonapprox')


def is_release(rel):
    parts = rel.split(os.sep)
    return len(parts) == 5 and parts[1] in RELEASE_CLASSES and parts[2] in RELEASE_ARCHS


RELEASE_NETS = [f for f in NETS if is_release(f)]
RELEASE_SOLVERS = [f for f in SOLVERS if is_release(f)]


def _ids(files):
    return [os.path.relpath(f, 'models') for f in files]


# ------------------------------------------------------------------------------------------------
# What a released net is, from its path: models/<dataset>/<NET>/<method>/<file>


class NetFile:
    def __init__(self, rel):
        parts = rel.split(os.sep)
        self.rel = rel
        self.dataset, self.arch, self.method, self.name = parts[1:5]
        self.num_classes = RELEASE_CLASSES[self.dataset]
        self.train = 'train' in self.name
        base = self.name.split('.')[0]
        self.stage = int(base[5]) if base.startswith('stage') else 0
        self.is_rpn_training = base.endswith('rpn_train')
        self.is_rpn_test = base == 'rpn_test'
        # Nets with an RPN: end-to-end, the RPN stages and the Faster R-CNN test nets.
        self.has_rpn = (self.method in END2END or self.is_rpn_training
                        or self.is_rpn_test or base == 'faster_rcnn_test')
        # Nets whose data layer feeds images + ground truth (the RPN computes its own targets).
        self.gt_data = self.train and self.has_rpn
        self.has_detector = not (self.is_rpn_training or self.is_rpn_test)
        # The release's COCO end-to-end nets add 64^2 anchors: 4 scales x 3 ratios.
        self.num_anchors = 12 if (self.dataset == 'coco' and self.has_rpn) else 9
        self.nonapprox = self.method == 'faster_rcnn_end2end_nonapprox'


def describe(param):
    """What a net is, from its definition (for any net under models/)."""
    train = bool(param.layer) and param.layer[0].type == 'Python' and \
        param.layer[0].python_param.layer == 'RoIDataLayer'
    layers = layers_by_name(param)
    if train:
        num_classes = yaml.safe_load(param.layer[0].python_param.param_str)['num_classes']
    elif 'cls_score' in layers:
        num_classes = layers['cls_score'].inner_product_param.num_output
    else:
        num_classes = 0
    modules = {layer.python_param.module for layer in param.layer if layer.type == 'Python'}
    proposal = [layer for layer in param.layer if layer.type == 'Python'
                and layer.python_param.module == 'rpn.proposal_layer']
    fixed = {layer.name for layer in param.layer
             if layer.param and all(spec.lr_mult == 0 for spec in layer.param)}
    return types.SimpleNamespace(
        train=train,
        phase=caffe.TRAIN if train else caffe.TEST,
        num_classes=num_classes,
        gt_data=train and 'gt_boxes' in param.layer[0].top,
        has_proposals='rpn.proposal_layer' in modules,
        # Non-approximate joint training: the proposals pass a gradient to rpn_bbox_pred.
        coords_backprop=bool(proposal) and bool(
            yaml.safe_load(proposal[0].python_param.param_str).get('backprop_coords')),
        has_detector='cls_score' in layers,
        num_losses=sum(layer.type in ('SoftmaxWithLoss', 'SmoothL1Loss') for layer in param.layer),
        fixed=fixed)


# ------------------------------------------------------------------------------------------------
# The released models' parameter layers: name -> weight shape (bias shape is (shape[0],)).

def _vgg16_convs():
    shapes, channels = {}, 3
    for group, n, out in [(1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512)]:
        for i in range(1, n + 1):
            shapes['conv%d_%d' % (group, i)] = (out, channels, 3, 3)
            channels = out
    return shapes


BACKBONES = {
    # conv layers, fc6/fc7, RPN conv width, layers the release keeps fixed when fine-tuning convs
    'ZF': dict(
        convs={'conv1': (96, 3, 7, 7), 'conv2': (256, 96, 5, 5), 'conv3': (384, 256, 3, 3),
               'conv4': (384, 384, 3, 3), 'conv5': (256, 384, 3, 3)},
        fc6=(4096, 256 * 6 * 6), fc7=(4096, 4096), feat_channels=256, rpn_channels=256,
        fixed=()),
    'VGG_CNN_M_1024': dict(
        convs={'conv1': (96, 3, 7, 7), 'conv2': (256, 96, 5, 5), 'conv3': (512, 256, 3, 3),
               'conv4': (512, 512, 3, 3), 'conv5': (512, 512, 3, 3)},
        fc6=(4096, 512 * 6 * 6), fc7=(1024, 4096), feat_channels=512, rpn_channels=256,
        fixed=('conv1',)),
    'VGG16': dict(
        convs=_vgg16_convs(), fc6=(4096, 512 * 7 * 7), fc7=(4096, 4096), feat_channels=512,
        rpn_channels=512, fixed=('conv1_1', 'conv1_2', 'conv2_1', 'conv2_2')),
}


def rpn_conv_name(nf):
    # The released ZF alternating-optimization models (ZF_faster_rcnn_final) call it rpn_conv1.
    if nf.arch == 'ZF' and nf.method == 'faster_rcnn_alt_opt':
        return 'rpn_conv1'
    return 'rpn_conv/3x3'


def expected_params(nf):
    """{layer name: weight shape} of the parameter layers the net must have."""
    b = BACKBONES[nf.arch]
    shapes = dict(b['convs'])
    fc7_out = b['fc7'][0]
    if nf.has_rpn or nf.method == 'faster_rcnn_alt_opt':
        c, a = b['rpn_channels'], nf.num_anchors
        shapes[rpn_conv_name(nf)] = (c, b['feat_channels'], 3, 3)
        shapes['rpn_cls_score'] = (2 * a, c, 1, 1)
        shapes['rpn_bbox_pred'] = (4 * a, c, 1, 1)
    if nf.has_detector or nf.is_rpn_training:
        shapes['fc6'] = b['fc6']
        shapes['fc7'] = b['fc7']
    if nf.has_detector:
        shapes['cls_score'] = (nf.num_classes, fc7_out)
        shapes['bbox_pred'] = (4 * nf.num_classes, fc7_out)
    return shapes


def expected_fixed(nf):
    """Parameter layers that a train net keeps at lr_mult 0."""
    b = BACKBONES[nf.arch]
    fixed = set(b['convs']) if nf.stage == 2 else set(b['fixed'])
    if nf.is_rpn_training:
        fixed |= {'fc6', 'fc7'}          # carried through to the snapshot, not trained
    elif nf.method == 'faster_rcnn_alt_opt':
        fixed |= {rpn_conv_name(nf), 'rpn_cls_score', 'rpn_bbox_pred'}
    return fixed


def read_net(rel):
    return caffe_io.read_prototxt(os.path.join(ROOT, rel), caffe_pb2.NetParameter())


def layers_by_name(param):
    return {layer.name: layer for layer in param.layer}


# ------------------------------------------------------------------------------------------------
# Static checks (no runtime layers needed)


def test_every_expected_file_exists():
    nets = set(_ids(RELEASE_NETS))
    solvers = set(_ids(RELEASE_SOLVERS))
    for arch in ('ZF', 'VGG_CNN_M_1024', 'VGG16'):
        alt = 'pascal_voc/%s/faster_rcnn_alt_opt/' % arch
        for stage in (1, 2):
            assert alt + 'stage%d_rpn_train.pt' % stage in nets
            assert alt + 'stage%d_fast_rcnn_train.pt' % stage in nets
            assert alt + 'stage%d_rpn_solver60k80k.pt' % stage in solvers
            assert alt + 'stage%d_fast_rcnn_solver30k40k.pt' % stage in solvers
        assert alt + 'rpn_test.pt' in nets
        assert alt + 'faster_rcnn_test.pt' in nets
    datasets = [('pascal_voc', a) for a in ('ZF', 'VGG_CNN_M_1024', 'VGG16')]
    datasets += [('coco', a) for a in ('VGG16', 'VGG_CNN_M_1024')]
    for dataset, arch in datasets:
        for method in ('faster_rcnn_end2end', 'fast_rcnn'):
            d = '%s/%s/%s/' % (dataset, arch, method)
            assert d + 'train.prototxt' in nets
            assert d + 'test.prototxt' in nets
            assert d + 'solver.prototxt' in solvers
    for arch in ('ZF', 'VGG16'):
        d = 'pascal_voc/%s/faster_rcnn_end2end_nonapprox/' % arch
        assert {d + 'train.prototxt', d + 'test.prototxt'} <= nets
        assert d + 'solver.prototxt' in solvers
    assert len(nets) == 42 and len(solvers) == 24


# The release's solver settings: every solver is SGD with a step policy from base_lr 0.001.
STEPSIZE = {
    ('pascal_voc', 'faster_rcnn_alt_opt', 'rpn'): 60000,
    ('pascal_voc', 'faster_rcnn_alt_opt', 'fast_rcnn'): 30000,
    ('pascal_voc', 'faster_rcnn_end2end', ''): 50000,
    ('pascal_voc', 'faster_rcnn_end2end_nonapprox', ''): 50000,
    ('pascal_voc', 'fast_rcnn', ''): 30000,
    ('coco', 'faster_rcnn_end2end', ''): 350000,
    ('coco', 'fast_rcnn', ''): 200000,
}
PREFIX = {'ZF': 'zf', 'VGG_CNN_M_1024': 'vgg_cnn_m_1024', 'VGG16': 'vgg16'}


LR_POLICIES = ('fixed', 'step', 'multistep', 'exp', 'inv', 'poly', 'sigmoid')


@pytest.mark.parametrize('rel', SOLVERS, ids=_ids(SOLVERS))
def test_solver(rel):
    """Every solver parses, has a learning-rate policy, and names an existing train net (relative
    to the repository root, as the training tools run from there) fed by the RoIDataLayer."""
    param = caffe_io.read_prototxt(os.path.join(ROOT, rel), caffe_pb2.SolverParameter())
    assert param.lr_policy in LR_POLICIES
    assert param.base_lr > 0
    if param.lr_policy == 'step':
        assert param.stepsize > 0 and 0 < param.gamma < 1
    assert not os.path.isabs(param.train_net)
    assert os.path.dirname(param.train_net) == os.path.dirname(rel)
    assert os.path.isfile(os.path.join(ROOT, param.train_net)), param.train_net
    assert describe(read_net(param.train_net)).train


@pytest.mark.parametrize('rel', RELEASE_SOLVERS, ids=_ids(RELEASE_SOLVERS))
def test_release_solver_settings(rel):
    param = caffe_io.read_prototxt(os.path.join(ROOT, rel), caffe_pb2.SolverParameter())
    _, dataset, arch, method, name = rel.split(os.sep)
    assert param.lr_policy == 'step'
    assert param.base_lr == pytest.approx(0.001)
    assert param.gamma == pytest.approx(0.1)
    assert param.momentum == pytest.approx(0.9)
    assert param.weight_decay == pytest.approx(0.0005)
    assert (param.display, param.average_loss, param.snapshot) == (20, 100, 0)
    kind = ''
    if method == 'faster_rcnn_alt_opt':
        kind = 'rpn' if '_rpn_' in name else 'fast_rcnn'
    assert param.stepsize == STEPSIZE[dataset, method, kind]
    expected_prefix = PREFIX[arch] + {'rpn': '_rpn', 'fast_rcnn': '_fast_rcnn', '': ''}[kind]
    if not kind:
        expected_prefix += {'faster_rcnn_end2end': '_faster_rcnn', 'fast_rcnn': '_fast_rcnn',
                            'faster_rcnn_end2end_nonapprox': '_faster_rcnn_nonapprox'}[method]
    assert param.snapshot_prefix == expected_prefix
    # The release's end-to-end ZF and VGG16 solvers accumulate two images per update.
    end2end_two = method in END2END and arch in ('ZF', 'VGG16')
    assert param.iter_size == (2 if end2end_two else 1)
    base = os.path.basename(param.train_net)
    if method == 'faster_rcnn_alt_opt':
        assert base == name.replace('_solver60k80k', '_train').replace('_solver30k40k', '_train')
    else:
        assert base == 'train.prototxt'


@pytest.mark.parametrize('rel', RELEASE_NETS, ids=_ids(RELEASE_NETS))
def test_release_net_definition(rel):
    """What the release's prototxts say, checked on the text: layer settings that no forward pass
    would reveal (loss weights, sigma, fillers, dropout mode, learning-rate multipliers)."""
    nf = NetFile(rel)
    param = read_net(rel)
    layers = layers_by_name(param)
    assert len(layers) == len(param.layer), 'duplicate layer names'
    n = nf.num_classes

    if nf.train:
        data = param.layer[0]
        assert data.type == 'Python' and data.python_param.module == 'roi_data_layer.layer'
        assert data.python_param.layer == 'RoIDataLayer'
        assert data.python_param.param_str == "'num_classes': %d" % n
        tops = (['data', 'im_info', 'gt_boxes'] if nf.gt_data else
                ['data', 'rois', 'labels', 'bbox_targets', 'bbox_inside_weights',
                 'bbox_outside_weights'])
        assert list(data.top) == tops
        assert not param.input
    else:
        second = 'im_info' if nf.has_rpn else 'rois'
        assert list(param.input) == ['data', second]
        assert [list(s.dim) for s in param.input_shape] == \
            [[1, 3, 224, 224], [1, 3] if nf.has_rpn else [1, 5]]

    for layer in param.layer:
        if layer.type == 'Dropout':
            # Only the ZF models were trained with the fork's unscaled dropout.
            assert layer.dropout_param.scale_train == (nf.arch != 'ZF'), layer.name
            assert layer.dropout_param.dropout_ratio == pytest.approx(0.5)
        if layer.type in ('ROIPooling', 'ROIWarping'):
            # Non-approximate joint training pools with ROIWarping, train and test alike.
            assert layer.type == ('ROIWarping' if nf.nonapprox else 'ROIPooling'), layer.name
            size = 7 if nf.arch == 'VGG16' else 6
            p = layer.roi_warping_param if nf.nonapprox else layer.roi_pooling_param
            assert (p.pooled_h, p.pooled_w) == (size, size)
            assert p.spatial_scale == pytest.approx(1 / 16)
            if nf.nonapprox:
                assert p.samples_per_bin == 2
        if layer.type == 'Python' and layer.python_param.module.startswith('rpn.'):
            text = layer.python_param.param_str
            if layer.python_param.layer == 'ProposalTargetLayer':
                assert text == ("{'num_classes': %d, 'backprop_coords': 'all'}" % n
                                if nf.nonapprox else "'num_classes': %d" % n)
            else:
                assert "'feat_stride': 16" in text
                assert ("'scales': [4, 8, 16, 32]" in text) == (nf.num_anchors == 12)
                backprop = layer.python_param.layer == 'ProposalLayer' and nf.nonapprox and \
                    nf.train
                assert ("'backprop_coords': true" in text) == backprop, layer.name

    if nf.has_rpn:
        assert layers['rpn_cls_score_reshape'].reshape_param.shape.dim[:] == [0, 2, -1, 0]
    if nf.has_rpn and not nf.is_rpn_training:
        assert layers['rpn_cls_prob_reshape'].reshape_param.shape.dim[:] == \
            [0, 2 * nf.num_anchors, -1, 0]
        assert layers['proposal'].python_param.module == 'rpn.proposal_layer'
        assert list(layers['proposal'].top) == (['rois', 'scores'] if nf.is_rpn_test else
                                                ['rpn_rois'] if nf.train else ['rois'])
    if nf.has_detector and not nf.train:
        assert list(layers['cls_prob'].bottom) == ['cls_score']
        assert layers['cls_prob'].type == 'Softmax'

    if not nf.train:
        return
    if nf.gt_data:
        cls, box = layers['rpn_loss_cls'], layers['rpn_loss_bbox']
        assert cls.type == 'SoftmaxWithLoss' and cls.loss_param.ignore_label == -1
        assert list(cls.bottom) == ['rpn_cls_score_reshape', 'rpn_labels']
        assert box.type == 'SmoothL1Loss' and list(box.loss_weight) == [1]
        assert box.smooth_l1_loss_param.sigma == pytest.approx(3)
        for name in (rpn_conv_name(nf), 'rpn_cls_score', 'rpn_bbox_pred'):
            filler = layers[name].convolution_param.weight_filler
            assert (filler.type, filler.std) == ('gaussian', pytest.approx(0.01))
    if nf.has_detector:
        assert layers['loss_cls'].type == 'SoftmaxWithLoss'
        assert list(layers['loss_cls'].bottom) == ['cls_score', 'labels']
        box = layers['loss_bbox']
        assert box.type == 'SmoothL1Loss' and list(box.loss_weight) == [1]
        assert box.smooth_l1_loss_param.sigma == pytest.approx(1)
        assert list(box.bottom) == ['bbox_pred', 'bbox_targets', 'bbox_inside_weights',
                                    'bbox_outside_weights']
        for name, std in (('cls_score', 0.01), ('bbox_pred', 0.001)):
            filler = layers[name].inner_product_param.weight_filler
            assert (filler.type, filler.std) == ('gaussian', pytest.approx(std))

    # Learning-rate multipliers: fixed layers 0/0; learned layers 1 (weights) and 2 (biases).
    fixed = expected_fixed(nf)
    for name in expected_params(nf):
        specs = [(s.lr_mult, s.decay_mult) for s in layers[name].param]
        if name in fixed:
            assert specs == [(0, 0), (0, 0)], name
        else:
            assert [lr for lr, _ in specs] == [1, 2], name


# ------------------------------------------------------------------------------------------------
# Building and running the nets

# A small image still big enough that the smallest 128 x 128 anchors fit inside it (anchors
# crossing the border are ignored in training).
IMAGE_H, IMAGE_W = 160, 192
GT_BOXES = [(16, 24, 135, 143), (88, 40, 180, 150)]


# Small settings for the nets' Python layers, written into their param_str as the tools write
# them; an RPN training net takes ground truth with precomputed target normalization (what
# experiments/cfgs and the alt-opt steps set for each kind of net).
SMALL = {'TRAIN': {'SCALES': [IMAGE_H], 'MAX_SIZE': IMAGE_W, 'IMS_PER_BATCH': 1,
                   'BATCH_SIZE': 16, 'RPN_BATCHSIZE': 64, 'RPN_PRE_NMS_TOP_N': 300,
                   'RPN_POST_NMS_TOP_N': 32},
         'TEST': {'RPN_PRE_NMS_TOP_N': 300, 'RPN_POST_NMS_TOP_N': 16}}
TEST_POST_NMS_TOP_N = 16


def with_small_settings(param, info):
    train = dict(SMALL['TRAIN'], HAS_RPN=info.gt_data,
                 BBOX_NORMALIZE_TARGETS_PRECOMPUTED=info.gt_data)
    experiment = Experiment.from_files([], dict(SMALL, TRAIN=train))
    return net_surgery.with_layer_settings(param, experiment.layer_settings(info.phase))


def _iou(boxes, gt):
    """IoU with the release's +1 pixel convention, for the synthetic roidb."""
    ix1 = np.maximum(boxes[:, None, 0], gt[None, :, 0])
    iy1 = np.maximum(boxes[:, None, 1], gt[None, :, 1])
    ix2 = np.minimum(boxes[:, None, 2], gt[None, :, 2])
    iy2 = np.minimum(boxes[:, None, 3], gt[None, :, 3])
    inter = np.clip(ix2 - ix1 + 1, 0, None) * np.clip(iy2 - iy1 + 1, 0, None)

    def area(b):
        return (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    return inter / (area(boxes)[:, None] + area(gt)[None, :] - inter)


class _TinyImdb:
    """Just what roidb.prepare_roidb reads from an imdb."""

    def __init__(self, roidb, paths):
        self.name = 'tiny'
        self.roidb = roidb
        self._paths = paths

    def image_path_at(self, i):
        return self._paths[i]

    def image_size_at(self, i):
        return IMAGE_W, IMAGE_H


def tiny_roidb(tmp_path, num_classes, with_proposals):
    """Two synthetic PNG images with two ground-truth boxes each; with_proposals adds jittered and
    random boxes (Fast R-CNN training samples its RoIs from them) and the regression targets."""
    from roi_data_layer import roidb as rdl_roidb

    rng = np.random.RandomState(0)
    gt = np.array(GT_BOXES, dtype=np.float32)
    gt_classes = np.array([1, num_classes - 1], dtype=np.int32)
    roidb, paths = [], []
    for i in range(2):
        path = str(tmp_path / ('im%d.png' % i))
        cv2.imwrite(path, rng.randint(0, 256, size=(IMAGE_H, IMAGE_W, 3)).astype(np.uint8))
        paths.append(path)
        boxes, classes = gt, gt_classes
        if with_proposals:
            jitter = np.repeat(gt, 8, axis=0) + rng.randint(-12, 13, size=(16, 4))
            x1 = rng.randint(0, IMAGE_W - 40, size=16)
            y1 = rng.randint(0, IMAGE_H - 40, size=16)
            random = np.stack([x1, y1, x1 + rng.randint(20, 40, 16),
                               y1 + rng.randint(20, 40, 16)], axis=1)
            # Boxes shifted by half a ground-truth box overlap it by about 1/3: background RoIs.
            sizes = gt[:, 2:] - gt[:, :2] + 1
            shifted = np.vstack([gt + np.tile(sizes * d, 2) / 2
                                 for d in ((1, 0), (-1, 0), (0, 1), (0, -1))])
            props = np.vstack([jitter, shifted, random]).astype(np.float32)
            props[:, 0::2] = np.clip(props[:, 0::2], 0, IMAGE_W - 1)
            props[:, 1::2] = np.clip(props[:, 1::2], 0, IMAGE_H - 1)
            boxes = np.vstack([gt, props])
            classes = np.concatenate([gt_classes, np.zeros(len(props), np.int32)])
        iou = _iou(boxes, gt)
        overlaps = np.zeros((len(boxes), num_classes), dtype=np.float32)
        best = iou.argmax(axis=1)
        rows = np.arange(len(boxes))
        overlaps[rows, gt_classes[best]] = iou[rows, best]
        roidb.append({'boxes': boxes.astype(np.uint16), 'gt_classes': classes,
                      'gt_overlaps': scipy.sparse.csr_matrix(overlaps), 'flipped': False,
                      'width': IMAGE_W, 'height': IMAGE_H})
    rdl_roidb.prepare_roidb(_TinyImdb(roidb, paths))
    if with_proposals:
        from core.roi_targets import BoxTargets
        rdl_roidb.add_bbox_regression_targets(roidb, BoxTargets())
    return roidb


# The layers that end in the net's outputs start small, as their fillers do in the prototxts, so
# box deltas stay in a sane range.
OUTPUT_LAYERS = ('rpn_cls_score', 'rpn_bbox_pred', 'cls_score', 'bbox_pred')


def randomize_params(net, seed=0):
    """Random weights that pass a signal and a gradient through every layer (the prototxts' conv
    layers have no fillers: their weights come from the ImageNet models): He-uniform, drawn from
    random bytes because fc6 alone has up to 10^8 weights."""
    rng = np.random.default_rng(seed)
    for name, blobs in net.params.items():
        kind = net.layer_dict[name].type
        if kind in ('BatchNorm', 'Scale'):
            # ResNets: unit statistics (mean sum, variance sum, weight); scale 0.5 and bias 0, so
            # the 33 residual sums of ResNet-101 do not double the signal each.
            values = (0, 1, 1) if kind == 'BatchNorm' else (0.5, 0)
            for blob, value in zip(blobs, values):
                blob.data[...] = value
            continue
        for k, blob in enumerate(blobs):
            data = blob.data
            if k == 0:
                limit = np.sqrt(6.0 / np.prod(data.shape[1:]))
                if name in OUTPUT_LAYERS:
                    limit *= 0.01
            else:
                limit = 0.01
            noise = np.frombuffer(rng.bytes(data.size), dtype=np.int8).reshape(data.shape)
            np.multiply(noise, np.float32(limit / 128), out=data, casting='unsafe')


def check_param_shapes(net, rel):
    """A released net has exactly the released models' parameter layers, with their shapes."""
    if not is_release(rel):
        return
    expected = expected_params(NetFile(rel))
    assert sorted(net.params) == sorted(expected)
    for name, shape in expected.items():
        blobs = net.params[name]
        assert len(blobs) == 2, name
        assert tuple(blobs[0].data.shape) == shape, name
        assert tuple(blobs[1].data.shape) == (shape[0],), name


def small_image():
    rng = np.random.default_rng(1)
    return rng.uniform(-100, 100, size=(1, 3, IMAGE_H, IMAGE_W)).astype(np.float32)


def build(rel, force_backward=False):
    param = read_net(rel)
    info = describe(param)
    param = with_small_settings(param, info)
    param.force_backward = force_backward
    return caffe.Net(param, info.phase), info


def _run_train_net(rel, tmp_path):
    net, info = build(rel)
    check_param_shapes(net, rel)
    randomize_params(net)
    net.layers[0].set_roidb(tiny_roidb(tmp_path, info.num_classes,
                                       with_proposals=not info.gt_data))

    out = net.forward()
    losses = {name: float(np.sum(value)) for name, value in out.items()
              if net.blob_loss_weights.get(name)}
    assert len(losses) == info.num_losses > 0, sorted(out)
    for name, value in losses.items():
        assert np.isfinite(value) and value > 0, (name, value)
    assert net.blobs['data'].data.shape[2:] == (IMAGE_H, IMAGE_W)

    net.backward()
    if info.has_proposals:
        # Approximate joint training passes no gradient through the proposals (paper Sec. 3.2);
        # non-approximate joint training passes the detector's to the box regression.
        i = list(net._layer_names).index('proposal')
        bbox_diff = net.bottom_vecs[i][1].diff
        assert np.all(np.isfinite(bbox_diff))
        assert np.any(bbox_diff) == info.coords_backprop
    for name, blobs in net.params.items():
        for k, blob in enumerate(blobs):
            diff = blob.diff
            assert np.all(np.isfinite(diff)), (name, k)
            if name in info.fixed:
                assert not np.any(diff), 'fixed layer %s got a gradient' % name
            else:
                assert np.any(diff), 'learned layer %s (param %d) got no gradient' % (name, k)


def _run_test_net(rel):
    net, info = build(rel, force_backward=True)
    check_param_shapes(net, rel)
    randomize_params(net)
    image = small_image()
    if info.has_proposals:
        out = net.forward(data=image, im_info=np.array([[IMAGE_H, IMAGE_W, 1.0]], np.float32))
        rois = net.blobs['rois'].data
        assert rois.ndim == 2 and rois.shape[1] == 5
        assert 0 < rois.shape[0] <= TEST_POST_NMS_TOP_N
        assert np.all(rois[:, 0] == 0)
        assert np.all(rois[:, 1:] >= 0)
        assert np.all(rois[:, [1, 3]] <= IMAGE_W - 1) and np.all(rois[:, [2, 4]] <= IMAGE_H - 1)
    else:
        rois = np.array([[0, 10, 10, 90, 100], [0, 50, 20, 180, 150], [0, 0, 0, 191, 159]],
                        dtype=np.float32)
        out = net.forward(data=image, rois=rois)
    r = rois.shape[0]
    if info.has_detector:
        assert sorted(out) == ['bbox_pred', 'cls_prob']
        probs = out['cls_prob']
        assert probs.shape == (r, info.num_classes)
        assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
        assert out['bbox_pred'].shape == (r, 4 * info.num_classes)
        seed = 'cls_prob'
    else:
        # An RPN-only net (rpn_test.pt): proposals and their objectness.
        assert sorted(out) == ['rois', 'scores']
        scores = out['scores']
        assert scores.shape == (r, 1) and np.all((scores >= 0) & (scores <= 1))
        seed = 'scores'

    # force_backward: every layer runs its backward pass, from a gradient on the output.
    diff = np.random.default_rng(2).standard_normal(net.blobs[seed].data.shape)
    grads = net.backward(**{seed: diff.astype(np.float32)})
    assert grads['data'].shape == image.shape and np.all(np.isfinite(grads['data']))
    # The detector's outputs depend on the image through the conv layers; the RPN's proposals
    # and scores are passed on without a gradient (ProposalLayer, paper Sec. 3.2).
    assert np.any(grads['data']) == info.has_detector
    for name, blobs in net.params.items():
        assert np.all(np.isfinite(blobs[0].diff)), name


def _run_params(train):
    """The nets of one kind as test parameters; the VGG16 ones (fc6 alone holds 10^8 weights) and
    the ResNets (up to 101 layers) are marked slow, though they run by default."""
    out = []
    for rel in NETS:
        if describe(read_net(rel)).train != train:
            continue
        slow = {'VGG16', 'ResNet-50', 'ResNet-101'} & set(rel.split(os.sep))
        marks = [pytest.mark.slow] if slow else []
        out.append(pytest.param(rel, id=os.path.relpath(rel, 'models'), marks=marks))
    return out


@pytest.mark.parametrize('rel', _run_params(train=True))
def test_train_net_forward_backward(rel, tmp_path):
    _run_train_net(rel, tmp_path)


@pytest.mark.parametrize('rel', _run_params(train=False))
def test_test_net_forward_backward(rel):
    _run_test_net(rel)
