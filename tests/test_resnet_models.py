"""The ResNet nets under models/ against an independent listing of Kaiming He's released models.

The listing is computed here from the ResNet paper's Table 1 (He et al., 2016: blocks per stage
3/4/6/3 for ResNet-50 and 3/4/23/3 for ResNet-101, bottleneck widths 64/128/256/512 with 4x
outputs, projection shortcuts in each stage's first block) and the release's naming (conv1,
bn_conv1, scale_conv1; res<stage><block>_branch1/2a/2b/2c with bn.../scale...; ResNet-101 names
its conv3_x and conv4_x blocks a, b1, b2, ...), not from models/make_resnet_prototxts.py. A
weights file with those layer names and shapes must load into every net by name; the nets must
have Kaiming's blob names and strides, the ResNet paper's detection design (conv4_x shared with
the RPN, RoI pooling to 14 x 14 at 1/16, conv5_x per RoI, average pooling) and its fine-tuning
rules (BatchNorm with stored statistics and, like Scale, never trained; conv1 and conv2_x fixed).
Forward and backward passes of every net run in test_models.py.
"""
import glob
import os

import numpy as np
import pytest

import caffe
from caffe import io as caffe_io
from caffe.proto import caffe_pb2
from fast_rcnn import net_surgery
from fast_rcnn.experiment import Experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEPTHS = {'ResNet-50': 50, 'ResNet-101': 101}
TABLE1_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
TABLE1_WIDTHS = (64, 128, 256, 512)
NUM_CLASSES = {'pascal_voc': 21, 'coco': 81}
NETS = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(
    ROOT, 'models', '*', 'ResNet-*', '*', '*')) if 'solver' not in os.path.basename(p))


def block_names(depth, stage):
    count = TABLE1_BLOCKS[depth][stage - 2]
    letters = 'abcdefghijklmnopqrstuvwxyz'
    if depth == 101 and stage in (3, 4):
        return ['%da' % stage] + ['%db%d' % (stage, i) for i in range(1, count)]
    return ['%d%s' % (stage, letters[i]) for i in range(count)]


class Released:
    """Kaiming He's ImageNet model as layers: {name: blob shapes} in order, and per conv its
    (bottom, kernel, stride, pad), per block its (shortcut, branch) sum."""

    def __init__(self, depth):
        self.params, self.convs, self.sums = {}, {}, {}
        self._conv('conv1', 'data', 3, 64, 7, 2, 3, bias=depth == 50)
        previous, channels = 'pool1', 64
        for stage in (2, 3, 4, 5):
            width = TABLE1_WIDTHS[stage - 2]
            for i, block in enumerate(block_names(depth, stage)):
                stride = 2 if (i == 0 and stage > 2) else 1
                name = 'res' + block
                shortcut = previous
                if i == 0:
                    shortcut = name + '_branch1'
                    self._conv(shortcut, previous, channels, 4 * width, 1, stride, 0)
                self._conv(name + '_branch2a', previous, channels, width, 1, stride, 0)
                self._conv(name + '_branch2b', name + '_branch2a', width, width, 3, 1, 1)
                self._conv(name + '_branch2c', name + '_branch2b', width, 4 * width, 1, 1, 0)
                self.sums[name] = (shortcut, name + '_branch2c')
                previous, channels = name, 4 * width
        self.last = previous

    def _conv(self, name, bottom, inputs, outputs, kernel, stride, pad, bias=False):
        suffix = '_conv1' if name == 'conv1' else name[len('res'):]
        self.params[name] = [(outputs, inputs, kernel, kernel)] + [(outputs,)] * bias
        self.params['bn' + suffix] = [(outputs,), (outputs,), (1,)]
        self.params['scale' + suffix] = [(outputs,), (outputs,)]
        self.convs[name] = (bottom, kernel, stride, pad, suffix)

    def stage_last(self, stage):
        return [n for n in self.sums if int(n[len('res')]) == stage][-1]

    def stage_of(self, layer):
        if layer in ('conv1', 'bn_conv1', 'scale_conv1'):
            return 1
        for prefix in ('res', 'bn', 'scale'):
            if layer.startswith(prefix):
                return int(layer[len(prefix)])
        raise ValueError(layer)

    def trunk(self):
        return {k: v for k, v in self.params.items() if self.stage_of(k) <= 4}

    def head(self):
        return {k: v for k, v in self.params.items() if self.stage_of(k) == 5}

    def weights_file(self, seed=0):
        """A NetParameter like the released .caffemodel: these layers with random blobs."""
        rs = np.random.RandomState(seed)
        param = caffe_pb2.NetParameter(name='ResNet')
        for name, shapes in self.params.items():
            kind = 'Convolution' if name in self.convs else (
                'BatchNorm' if name.startswith('bn') else 'Scale')
            layer = param.layer.add(name=name, type=kind)
            for shape in shapes:
                layer.blobs.append(caffe_io.array_to_blobproto(
                    rs.uniform(0.5, 1.5, shape).astype(np.float32)))
        return param


RELEASED = {depth: Released(depth) for depth in (50, 101)}


class NetInfo:
    def __init__(self, rel):
        _, self.dataset, arch, self.method, self.file = rel.split(os.sep)
        self.depth = DEPTHS[arch]
        self.param = caffe_io.read_prototxt(os.path.join(ROOT, rel), caffe_pb2.NetParameter())
        self.layers = {l.name: l for l in self.param.layer}
        self.train = self.param.layer[0].type == 'Python'
        base = os.path.splitext(self.file)[0]
        self.rpn_only_train = base.endswith('rpn_train')
        self.has_detector = base != 'rpn_test' and not self.rpn_only_train
        self.stage2 = base.startswith('stage2')
        self.num_anchors = 12 if self.dataset == 'coco' else 9

    def expected_params(self):
        released = RELEASED[self.depth]
        shapes = released.trunk()
        a = self.num_anchors
        shapes.update({'rpn_conv/3x3': [(512, 1024, 3, 3), (512,)],
                       'rpn_cls_score': [(2 * a, 512, 1, 1), (2 * a,)],
                       'rpn_bbox_pred': [(4 * a, 512, 1, 1), (4 * a,)]})
        if self.has_detector or self.rpn_only_train:
            shapes.update(released.head())      # RPN training carries conv5_x through
        if self.has_detector:
            n = NUM_CLASSES[self.dataset]
            shapes.update({'cls_score': [(n, 2048), (n,)], 'bbox_pred': [(4 * n, 2048), (4 * n,)]})
        return shapes


def _ids(files):
    return [os.path.relpath(f, 'models') for f in files]


def build(info):
    param, phase = info.param, caffe.TRAIN if info.train else caffe.TEST
    if info.train:
        # What the training tools write into each kind of train net's data layer; the data
        # blob set up small.
        param = net_surgery.with_layer_settings(param, Experiment.from_files([], {'TRAIN': {
            'HAS_RPN': 'gt_boxes' in param.layer[0].top, 'IMS_PER_BATCH': 1,
            'SCALES': [224], 'MAX_SIZE': 224}}).layer_settings(phase))
    return caffe.Net(param, phase)


def test_every_resnet_net_is_there():
    expected = []
    alt = ['faster_rcnn_test.pt', 'rpn_test.pt', 'stage1_fast_rcnn_train.pt',
           'stage1_rpn_train.pt', 'stage2_fast_rcnn_train.pt', 'stage2_rpn_train.pt']
    for depth in ('ResNet-50', 'ResNet-101'):
        expected += ['models/pascal_voc/%s/faster_rcnn_end2end/%s.prototxt' % (depth, n)
                     for n in ('test', 'train')]
        expected += ['models/pascal_voc/%s/faster_rcnn_alt_opt/%s' % (depth, n) for n in alt]
    expected += ['models/coco/ResNet-101/faster_rcnn_end2end/%s.prototxt' % n
                 for n in ('test', 'train')]
    assert sorted(expected) == NETS
    # The listing itself: Table 1's depth counts the weighted layers (convs + the fc layer).
    for depth, released in RELEASED.items():
        convs = [n for n in released.convs if not n.endswith('_branch1')]
        assert len(convs) + 1 == depth


@pytest.mark.parametrize('rel', NETS, ids=_ids(NETS))
def test_parameter_names_and_shapes(rel):
    # Weights load by layer name and must match in shape: these are what a released model needs.
    info = NetInfo(rel)
    net = build(info)
    expected = info.expected_params()
    got = {name: [b.shape for b in blobs] for name, blobs in net.params.items()}
    assert sorted(got) == sorted(expected)
    for name, shapes in expected.items():
        assert got[name] == shapes, name


@pytest.mark.parametrize('rel', [
    os.path.join('models', 'pascal_voc', 'ResNet-50', 'faster_rcnn_end2end', 'test.prototxt'),
    os.path.join('models', 'pascal_voc', 'ResNet-101', 'faster_rcnn_end2end', 'train.prototxt')],
    ids=['ResNet-50', 'ResNet-101'])
def test_released_weights_load_by_name(rel):
    info = NetInfo(rel)
    net = build(info)
    released = RELEASED[info.depth]
    weights = released.weights_file()
    net.copy_from_param(weights)
    source = {l.name: l for l in weights.layer}
    for name in released.params:
        for k, blob in enumerate(net.params[name]):
            np.testing.assert_array_equal(blob.data.ravel(),
                                          np.asarray(source[name].blobs[k].data, np.float32))


@pytest.mark.parametrize('rel', NETS, ids=_ids(NETS))
def test_structure_and_fine_tuning_rules(rel):
    info = NetInfo(rel)
    released = RELEASED[info.depth]
    layers = info.layers
    present = [n for n in released.convs if n in layers]
    # conv5_x reads the pooled RoIs (or, where RPN training carries it, a dummy input).
    head_input = [l.top[0] for l in info.param.layer if l.type in ('ROIPooling', 'DummyData')]
    for name in present:
        bottom, kernel, stride, pad, suffix = released.convs[name]
        if bottom == released.stage_last(4):
            bottom = head_input[0]
        conv = layers[name]
        p = conv.convolution_param
        assert list(conv.bottom) == [bottom] and list(conv.top) == [name], name
        assert (list(p.kernel_size), list(p.stride) or [1], list(p.pad) or [0]) == \
            ([kernel], [stride], [pad]), name
        # BatchNorm then Scale (with a bias), in place on the conv's top, in that order.
        order = [l.name for l in info.param.layer]
        i = order.index(name)
        bn, scale = info.param.layer[i + 1], info.param.layer[i + 2]
        assert (bn.name, bn.type, list(bn.bottom), list(bn.top)) == \
            ('bn' + suffix, 'BatchNorm', [name], [name])
        assert (scale.name, scale.type, list(scale.top)) == ('scale' + suffix, 'Scale', [name])
        assert scale.scale_param.bias_term
        assert bn.batch_norm_param.use_global_stats
        relu = info.param.layer[i + 3]
        if name == 'conv1' or name.endswith(('_branch2a', '_branch2b')):
            assert (relu.name, relu.type, list(relu.top)) == (
                ('conv1_relu' if name == 'conv1' else name + '_relu'), 'ReLU', [name])
    for name, (shortcut, branch) in released.sums.items():
        if name not in layers:
            continue
        assert layers[name].type == 'Eltwise' and list(layers[name].bottom) == [shortcut, branch]
        assert list(layers[name + '_relu'].top) == [name]
    pool1 = layers['pool1'].pooling_param
    assert (pool1.pool, pool1.kernel_size, pool1.stride, pool1.pad) == \
        (caffe_pb2.PoolingParameter.MAX, 3, 2, 0)

    # The detection design: conv4_x feeds the RPN and the RoI pooling; conv5_x runs per RoI.
    trunk_top = block_names(info.depth, 4)[-1]
    assert list(layers['rpn_conv/3x3'].bottom) == ['res' + trunk_top]
    assert layers['rpn_conv/3x3'].convolution_param.num_output == 512
    if info.has_detector:
        roi = next(l for l in info.param.layer if l.type == 'ROIPooling')
        p = roi.roi_pooling_param
        assert list(roi.bottom) == ['res' + trunk_top, 'rois']
        assert (p.pooled_h, p.pooled_w) == (14, 14) and p.spatial_scale == pytest.approx(1 / 16)
        assert list(layers['res5a_branch1'].bottom) == list(roi.top)
        pool5 = layers['pool5']
        assert list(pool5.bottom) == ['res5c'] and pool5.pooling_param.global_pooling
        assert pool5.pooling_param.pool == caffe_pb2.PoolingParameter.AVE
        assert list(layers['cls_score'].bottom) == ['pool5'] == list(layers['bbox_pred'].bottom)
    if not info.train:
        return
    for layer in info.param.layer:
        if layer.type in ('BatchNorm', 'Scale'):
            assert [s.lr_mult for s in layer.param] == [0] * (3 if layer.type == 'BatchNorm'
                                                              else 2), layer.name
    for name in released.convs:
        if name not in layers:
            continue
        stage = released.stage_of(name)
        if stage <= 2:
            learned = False                                  # conv1, conv2_x
        elif stage <= 4:
            learned = not info.stage2                        # the shared convs
        else:
            learned = info.has_detector                      # conv5_x: the head
        assert [s.lr_mult != 0 for s in layers[name].param] == \
            [learned] * len(released.params[name]), name


def test_feature_stride_and_head_shapes():
    # At 224 x 224 the shared features are 14 x 14 (stride 16) and a RoI's head output 7 x 7.
    info = NetInfo(os.path.join('models', 'pascal_voc', 'ResNet-50', 'faster_rcnn_end2end',
                                'test.prototxt'))
    net = build(info)
    assert net.blobs['data'].shape == (1, 3, 224, 224)
    assert net.blobs['res4f'].shape == (1, 1024, 14, 14)
    assert net.blobs['roi_pool5'].shape[1:] == (1024, 14, 14)
    assert net.blobs['res5c'].shape[1:] == (2048, 7, 7)
    assert net.blobs['pool5'].shape[1:] == (2048, 1, 1)


@pytest.mark.parametrize('rel', sorted(glob.glob(os.path.join(
    ROOT, 'models', '*', 'ResNet-*', '*', '*solver*'))), ids=os.path.basename)
def test_solvers_are_the_vgg16_ones(rel):
    solver = caffe_io.read_prototxt(rel, caffe_pb2.SolverParameter())
    vgg = caffe_io.read_prototxt(rel.replace(os.sep + 'ResNet-101' + os.sep, os.sep + 'VGG16' +
                                             os.sep).replace(os.sep + 'ResNet-50' + os.sep,
                                                             os.sep + 'VGG16' + os.sep),
                                 caffe_pb2.SolverParameter())
    depth = 'ResNet-101' if 'ResNet-101' in rel else 'ResNet-50'
    assert solver.train_net == vgg.train_net.replace('VGG16', depth)
    assert solver.snapshot_prefix == vgg.snapshot_prefix.replace(
        'vgg16', depth.lower().replace('-', ''))
    solver.train_net, solver.snapshot_prefix = vgg.train_net, vgg.snapshot_prefix
    assert solver == vgg
