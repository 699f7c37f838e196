#!/usr/bin/env python3
"""Writes the ResNet Faster R-CNN nets under models/ (the written files are committed; edit this
script and rerun it rather than editing them):

  models/pascal_voc/ResNet-50/{faster_rcnn_end2end,faster_rcnn_alt_opt}/
  models/pascal_voc/ResNet-101/{faster_rcnn_end2end,faster_rcnn_alt_opt}/
  models/coco/ResNet-101/faster_rcnn_end2end/
  models/toy/TOY_ResNet/faster_rcnn_end2end/

Each net is its counterpart with another backbone: the VGG16 file of the same name (the toy net:
models/toy/TOY), whose data layer, RPN, proposal and target layers, losses and solver settings
are kept as they are. The backbone follows the ResNet paper's detection design (He et al., "Deep
Residual Learning for Image Recognition", appendix A; Faster R-CNN paper Sec. 4.2):

- conv1 .. conv4_x (stride 16; last block res4f in ResNet-50, res4b22 in ResNet-101) compute the
  shared feature map, read by the RPN's 3x3 conv (512 outputs) as VGG16's conv5_3 is;
- RoI pooling to 14 x 14 at spatial scale 1/16 replaces VGG16's 7 x 7 pool5;
- conv5_x runs per RoI as the head (res5a with stride 2, so 7 x 7), followed by global average
  pooling (pool5, 2048 channels) and the cls_score / bbox_pred layers VGG16 has on fc7.

Layer and blob names are those of Kaiming He's released deploy prototxts (ResNet-50 names its
blocks res2a..res5c; ResNet-101 names conv3_x res3a, res3b1..res3b3 and conv4_x res4a,
res4b1..res4b22), so ResNet-50-model.caffemodel and ResNet-101-model.caffemodel load by name.
Bottleneck blocks: 1x1 (stride 2 in the first block of conv3_x..conv5_x), 3x3, 1x1 with 4x the
width, a projection shortcut (branch1) in each stage's first block; every conv is followed by
BatchNorm and Scale (bias_term) in place; convs have no bias except ResNet-50's conv1.

Fine-tuning as the ResNet papers: BatchNorm uses the stored ImageNet statistics
(use_global_stats: true) and, like Scale, is never trained (lr_mult 0); conv1 and conv2_x stay
fixed; the rest learns where VGG16's conv3_1 and later learn (and stays fixed where they do, in
the second stage of alternating training); conv5_x learns where fc6/fc7 learn.

The toy net (TOY_ResNet) is a small ResNet trained from random weights on CPU: BatchNorm in
training mode (batch statistics, running averages saved in the snapshots) in the train net and
with the running averages in the test net.
"""
import os
import re
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'lib'))

from google.protobuf import text_format  # noqa: E402

from caffe.io import atomic_write, read_prototxt  # noqa: E402
from caffe.proto import caffe_pb2  # noqa: E402

P = caffe_pb2.PoolingParameter

# depth name -> (blocks per stage conv2_x..conv5_x, conv1 has a bias, stages whose blocks are
# named a, b1, b2, ... instead of a, b, c, ...)
RESNETS = {
    'ResNet-50': ((3, 4, 6, 3), True, ()),
    'ResNet-101': ((3, 4, 23, 3), False, (3, 4)),
}
WIDTHS = (64, 128, 256, 512)   # bottleneck widths of conv2_x..conv5_x; outputs are 4x
ROI_SIZE = 14

FIXED = (0, 0)                 # (lr_mult, decay_mult) of a parameter that is not trained
LEARNED = (1, 1)


# Layers ------------------------------------------------------------------------------------------

def _layer(name, kind, bottoms, tops, specs=()):
    layer = caffe_pb2.LayerParameter(name=name, type=kind)
    layer.bottom.extend(bottoms)
    layer.top.extend(tops)
    for lr, decay in specs:
        spec = layer.param.add(lr_mult=lr)
        if decay != 1:
            spec.decay_mult = decay
    return layer


def conv(name, bottom, top, num_output, kernel, stride=1, pad=0, bias=False, specs=(),
         filler=None):
    layer = _layer(name, 'Convolution', [bottom], [top], specs)
    p = layer.convolution_param
    p.num_output = num_output
    p.kernel_size.append(kernel)
    if pad:
        p.pad.append(pad)
    if stride != 1:
        p.stride.append(stride)
    if not bias:
        p.bias_term = False
    if filler:
        p.weight_filler.type = filler
        if bias:
            p.bias_filler.type = 'constant'
    return layer


class Norm:
    """How BatchNorm and Scale appear in one net. global_stats: write use_global_stats: true
    (None: leave it to the phase); specs: write the parameter specs (train nets); scale: the
    Scale layer's (lr_mult, decay_mult)."""

    def __init__(self, global_stats, specs, scale=FIXED):
        self.global_stats, self.specs, self.scale = global_stats, specs, scale

    def layers(self, suffix, blob):
        bn = _layer('bn' + suffix, 'BatchNorm', [blob], [blob], [FIXED] * 3 if self.specs else ())
        if self.global_stats:
            bn.batch_norm_param.use_global_stats = True
        scale = _layer('scale' + suffix, 'Scale', [blob], [blob],
                       [self.scale] * 2 if self.specs else ())
        scale.scale_param.bias_term = True
        return [bn, scale]


def relu(name, blob):
    return _layer(name, 'ReLU', [blob], [blob])


def conv_unit(name, bottom, num_output, kernel, stride, norm, specs, use_relu, pad=0,
              filler=None):
    """A conv named res<id>_<branch>, its bn<id>_<branch> and scale<id>_<branch>, and a ReLU
    named <conv>_relu."""
    layers = [conv(name, bottom, name, num_output, kernel, stride, pad, specs=specs,
                   filler=filler)]
    layers += norm.layers(name[len('res'):], name)
    if use_relu:
        layers.append(relu(name + '_relu', name))
    return layers


def residual_sum(name, shortcut, branch):
    return [_layer(name, 'Eltwise', [shortcut, branch], [name]), relu(name + '_relu', name)]


def bottleneck(block, bottom, width, stride, projection, norm, specs):
    """Kaiming He's bottleneck block res<block>: 1x1 (carrying the stride), 3x3, 1x1 (4x)."""
    name = 'res' + block
    layers = []
    shortcut = bottom
    if projection:
        shortcut = name + '_branch1'
        layers += conv_unit(shortcut, bottom, 4 * width, 1, stride, norm, specs, False)
    layers += conv_unit(name + '_branch2a', bottom, width, 1, stride, norm, specs, True)
    layers += conv_unit(name + '_branch2b', name + '_branch2a', width, 3, 1, norm, specs, True,
                        pad=1)
    layers += conv_unit(name + '_branch2c', name + '_branch2b', 4 * width, 1, 1, norm, specs,
                        False)
    return layers + residual_sum(name, shortcut, name + '_branch2c'), name


def block_ids(stage, count, numbered):
    if stage in numbered:
        return ['%da' % stage] + ['%db%d' % (stage, i) for i in range(1, count)]
    return ['%d%s' % (stage, chr(ord('a') + i)) for i in range(count)]


def resnet_stage(stage, count, numbered, bottom, norm, specs):
    layers = []
    for i, block in enumerate(block_ids(stage, count, numbered)):
        stride = 2 if (i == 0 and stage > 2) else 1
        more, bottom = bottleneck(block, bottom, WIDTHS[stage - 2], stride, i == 0, norm, specs)
        layers += more
    return layers, bottom


def resnet_trunk(depth, norm, learned):
    """conv1 .. conv4_x on 'data'; returns (layers, the last block's name). learned: None (no
    parameter specs), True or False for conv3_x and conv4_x (conv1 and conv2_x stay fixed)."""
    blocks, conv1_bias, numbered = RESNETS[depth]
    fixed = () if learned is None else [FIXED]
    layers = [conv('conv1', 'data', 'conv1', 64, 7, stride=2, pad=3, bias=conv1_bias,
                   specs=fixed * (2 if conv1_bias else 1))]
    layers += norm.layers('_conv1', 'conv1')
    layers.append(relu('conv1_relu', 'conv1'))
    pool = _layer('pool1', 'Pooling', ['conv1'], ['pool1'])
    pool.pooling_param.pool = P.MAX
    pool.pooling_param.kernel_size = 3
    pool.pooling_param.stride = 2
    layers.append(pool)
    more, top = resnet_stage(2, blocks[0], numbered, 'pool1', norm, fixed)
    layers += more
    specs = () if learned is None else [LEARNED if learned else FIXED]
    for stage in (3, 4):
        more, top = resnet_stage(stage, blocks[stage - 2], numbered, top, norm, specs)
        layers += more
    return layers, top


def global_average_pool(bottom, name='pool5'):
    pool = _layer(name, 'Pooling', [bottom], [name])
    pool.pooling_param.pool = P.AVE
    pool.pooling_param.global_pooling = True
    return pool


def resnet_head(depth, bottom, norm, learned):
    """conv5_x on the pooled RoIs and global average pooling: returns (layers, 'pool5')."""
    blocks, _, numbered = RESNETS[depth]
    specs = () if learned is None else [LEARNED if learned else FIXED]
    layers, top = resnet_stage(5, blocks[3], numbered, bottom, norm, specs)
    return layers + [global_average_pool(top)], 'pool5'


# The toy net ---------------------------------------------------------------------------------
#
# Basic blocks (two 3x3 convs, as ResNet-18/34) at about the TOY net's size: conv1 7x7/4 with
# 32 channels, res3a (64) at stride 8, res4a (64) at 16, shared with the RPN; RoI pooling to 6x6
# as TOY's, then res5a (128, stride 2) per RoI and global average pooling. MSRA fillers;
# BatchNorm and Scale on every conv but conv1; Scale learns without weight decay.

TOY_ROI_SIZE = 6
TOY_SCALE = (1, 0)


def basic_block(block, bottom, in_channels, width, stride, norm, specs):
    name = 'res' + block
    layers = []
    shortcut = bottom
    if stride != 1 or in_channels != width:
        shortcut = name + '_branch1'
        layers += conv_unit(shortcut, bottom, width, 1, stride, norm, specs, False,
                            filler='msra')
    layers += conv_unit(name + '_branch2a', bottom, width, 3, stride, norm, specs, True, pad=1,
                        filler='msra')
    layers += conv_unit(name + '_branch2b', name + '_branch2a', width, 3, 1, norm, specs, False,
                        pad=1, filler='msra')
    return layers + residual_sum(name, shortcut, name + '_branch2b'), name


def toy_trunk(norm, learned):
    specs = () if learned is None else [LEARNED]
    # conv1 has a bias and no BatchNorm (see TOY_DESCRIPTION).
    layers = [conv('conv1', 'data', 'conv1', 32, 7, stride=4, pad=3, bias=True,
                   specs=() if learned is None else [LEARNED, (2, 1)], filler='msra')]
    layers.append(relu('conv1_relu', 'conv1'))
    top, channels = 'conv1', 32
    for block, width, stride in (('3a', 64, 2), ('4a', 64, 2)):
        more, top = basic_block(block, top, channels, width, stride, norm, specs)
        layers += more
        channels = width
    return layers, top


def toy_head(bottom, norm, learned):
    specs = () if learned is None else [LEARNED]
    layers, top = basic_block('5a', bottom, 64, 128, 2, norm, specs)
    return layers + [global_average_pool(top)], 'pool5'


# From the VGG16 / TOY nets -------------------------------------------------------------------

class Template:
    """What is backbone in a template net: the trunk ends with the layer whose top is trunk_top;
    the head is the named layers after the RoI pooling."""

    def __init__(self, trunk_top, head):
        self.trunk_top, self.head = trunk_top, head


TEMPLATES = {
    'VGG16': Template('conv5_3', ('fc6', 'relu6', 'drop6', 'fc7', 'relu7', 'drop7')),
    'TOY': Template('conv4', ('fc6', 'relu6', 'fc7', 'relu7')),
}
BACKBONE_TYPES = ('Convolution', 'ReLU', 'Pooling')


def _learned(layer):
    """None for a layer without parameter specs (a test net), else whether it learns."""
    return None if not layer.param else any(s.lr_mult != 0 for s in layer.param)


def trunk_span(param, template):
    """(first, last) indices of the template's trunk layers."""
    first = next(i for i, l in enumerate(param.layer) if l.type == 'Convolution')
    last = first
    for i in range(first, len(param.layer)):
        layer = param.layer[i]
        if layer.type not in BACKBONE_TYPES or layer.type == 'Pooling' and \
                layer.pooling_param.pool != P.MAX:
            break
        if template.trunk_top in layer.top:
            last = i
    return first, last


def rebuild(param, template, trunk, head, roi_size, dummy_shape):
    """param with its trunk and head replaced. trunk(learned) and head(bottom, learned) return
    (layers, top blob)."""
    first, last = trunk_span(param, template)
    convs = [l for l in param.layer[first:last + 1] if l.type == 'Convolution']
    trunk_layers, trunk_top = trunk(_learned(convs[-1]))
    renames = {template.trunk_top: trunk_top}
    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    del out.layer[:]
    out.layer.extend(param.layer[:first])
    out.layer.extend(trunk_layers)
    for layer in param.layer[last + 1:]:
        if layer.name in template.head:
            if layer.name == template.head[0]:
                head_layers, head_top = head(renames.get(layer.bottom[0], layer.bottom[0]),
                                             _learned(layer))
                out.layer.extend(head_layers)
                renames[_head_top(param, template)] = head_top
            continue
        new = out.layer.add()
        new.CopyFrom(layer)
        if new.type == 'ROIPooling':
            new.roi_pooling_param.pooled_h = new.roi_pooling_param.pooled_w = roi_size
            if new.top[0] == 'pool5':             # the name of ResNet's average pooling
                renames['pool5'] = new.top[0] = 'roi_pool5'
        if new.type == 'DummyData' and dummy_shape:
            del new.dummy_data_param.shape[:]
            new.dummy_data_param.shape.add().dim.extend(dummy_shape)
        for i, name in enumerate(new.bottom):
            new.bottom[i] = renames.get(name, name)
        if new.type == 'Silence':
            new.name = 'silence_' + '_'.join(new.bottom)
    return out


def _head_top(param, template):
    return [l.top[0] for l in param.layer if l.name in template.head][-1]


# Writing -------------------------------------------------------------------------------------

def _collapse(text, width=100):
    """Puts nested blocks that fit on one line of `width` characters on one line."""
    lines = text.splitlines()
    changed = True
    while changed:
        changed = False
        out, i = [], 0
        while i < len(lines):
            line = lines[i]
            if line.endswith('{'):
                j = i + 1
                while j < len(lines) and not lines[j].strip().endswith(('{', '}')):
                    j += 1
                if j < len(lines) and lines[j].strip() == '}':
                    joined = '%s %s }' % (line, ' '.join(l.strip() for l in lines[i + 1:j]))
                    if len(joined) <= width and line.strip() != 'layer {':
                        out.append(joined)
                        i = j + 1
                        changed = True
                        continue
            out.append(line)
            i += 1
        lines = out
    return '\n'.join(lines) + '\n'


def net_text(param, header):
    body = caffe_pb2.NetParameter()
    body.CopyFrom(param)
    del body.layer[:]
    text = [_comment(header) + _collapse(_message_text(body))]
    for layer in param.layer:
        text.append(_collapse('layer {\n%s}' % _message_text(layer, indent=2)))
    return '\n'.join(text)


def _message_text(message, indent=0):
    # Numbers as Caffe's files write them (lr_mult: 0, not 0.0); single quotes unescaped inside
    # double-quoted strings (the release's param_str "'num_classes': 21").
    text = text_format.MessageToString(message, indent=indent, use_index_order=True)
    text = re.sub(r'(: -?\d+)\.0(?=\s|$)', r'\1', text)
    return text.replace("\\'", "'")


def _comment(text):
    lines = []
    for paragraph in text.strip().split('\n'):
        lines += textwrap.wrap(paragraph, 98) or ['']
    return ''.join('# %s\n' % line if line else '#\n' for line in lines)


def leading_comment(path):
    lines = []
    with open(path) as f:
        for line in f:
            if not line.startswith('#'):
                break
            lines.append(line[1:].strip())
    return '\n'.join(lines)


def write(path, text):
    atomic_write(path, text.encode())
    print('wrote %s' % os.path.relpath(path, ROOT))


GENERATED = 'Generated by models/make_resnet_prototxts.py from %s; edit the script, not this file.'


def describe_resnet(depth):
    blocks, bias, _ = RESNETS[depth]
    return ('%s (He et al., 2016) for Faster R-CNN: conv1 .. conv4_x (%s bottleneck blocks, '
            'stride 16, 1024 channels) shared with the RPN; RoI pooling to 14 x 14; conv5_x '
            '(%d blocks, res5a at stride 2) per RoI, then global average pooling (2048). '
            'BatchNorm (stored statistics) and Scale are never trained; conv1 and conv2_x stay '
            'fixed. Layer names are those of Kaiming He\'s release, so %s-model.caffemodel '
            'loads by name.' % (depth, '+'.join(str(b) for b in blocks[:3]), blocks[3], depth))


def make_resnet_nets(dataset, depth, method):
    src_dir = os.path.join(ROOT, 'models', dataset, 'VGG16', method)
    dst_dir = os.path.join(ROOT, 'models', dataset, depth, method)
    template = TEMPLATES['VGG16']
    for name in sorted(os.listdir(src_dir)):
        src = os.path.join(src_dir, name)
        rel_src = os.path.relpath(src, ROOT)
        if 'solver' in name:
            solver = read_prototxt(src, caffe_pb2.SolverParameter())
            solver.train_net = solver.train_net.replace('/VGG16/', '/%s/' % depth)
            solver.snapshot_prefix = solver.snapshot_prefix.replace(
                'vgg16', depth.lower().replace('-', ''))
            header = '%s\n\n%s' % (leading_comment(src), GENERATED % rel_src)
            write(os.path.join(dst_dir, name), _comment(header) + _message_text(solver))
            continue
        vgg = read_prototxt(src, caffe_pb2.NetParameter())
        train = bool(vgg.layer) and vgg.layer[0].type == 'Python'
        norm = Norm(global_stats=True, specs=train)
        net = rebuild(vgg, template,
                      lambda learned: resnet_trunk(depth, norm, learned),
                      lambda bottom, learned: resnet_head(depth, bottom, norm, learned),
                      ROI_SIZE, (1, 1024, ROI_SIZE, ROI_SIZE))
        net.name = depth
        first = leading_comment(src).split('\n')[0].replace('VGG16', depth)
        header = '%s\n\n%s\n\n%s' % (first, describe_resnet(depth), GENERATED % rel_src)
        write(os.path.join(dst_dir, name), net_text(net, header))


TOY_DESCRIPTION = (
    'A small ResNet for the toy dataset, trained from random weights on the CPU: conv1 7x7/4 '
    '(32 channels), then basic residual blocks (two 3x3 convs and a 1x1 projection shortcut) '
    'res3a (64, stride 8) and res4a (64, stride 16) feed the RPN; RoI pooling to 6 x 6, res5a '
    '(128, stride 2) per RoI and global average pooling feed cls_score / bbox_pred. Every conv '
    'but conv1 is followed by BatchNorm and Scale (bias_term). In the train net BatchNorm '
    'normalizes with batch statistics and keeps running averages (saved in the snapshots); the '
    'test net normalizes with those. End-to-end training sees one image per batch, so a '
    'BatchNorm on conv1 would normalize each image by its own colour statistics, which the '
    'running averages cannot do for a test image (in a larger variant of this net, mAP 0.942 '
    'with it and 0.951 without); conv1 has a bias instead.')


# The TOY solver's settings, except:
TOY_SOLVER = {'snapshot_prefix': 'toy_resnet_faster_rcnn'}


def make_toy_nets():
    src_dir = os.path.join(ROOT, 'models', 'toy', 'TOY', 'faster_rcnn_end2end')
    dst_dir = os.path.join(ROOT, 'models', 'toy', 'TOY_ResNet', 'faster_rcnn_end2end')
    src = os.path.join(src_dir, 'solver.prototxt')
    solver = read_prototxt(src, caffe_pb2.SolverParameter())
    solver.train_net = solver.train_net.replace('/TOY/', '/TOY_ResNet/')
    for key, value in TOY_SOLVER.items():
        setattr(solver, key, value)
    header = '%s\n\n%s' % (leading_comment(src).replace('the toy net', 'the toy ResNet'),
                            GENERATED % os.path.relpath(src, ROOT))
    write(os.path.join(dst_dir, 'solver.prototxt'), _comment(header) + _message_text(solver))
    for name in ('train.prototxt', 'test.prototxt'):
        src = os.path.join(src_dir, name)
        toy = read_prototxt(src, caffe_pb2.NetParameter())
        train = name.startswith('train')
        norm = Norm(global_stats=None, specs=train, scale=TOY_SCALE)
        net = rebuild(toy, TEMPLATES['TOY'],
                      lambda learned: toy_trunk(norm, learned),
                      lambda bottom, learned: toy_head(bottom, norm, learned),
                      TOY_ROI_SIZE, ())
        net.name = 'TOY_ResNet'
        kind = 'approximate joint ("end-to-end") training' if train else 'detection (test)'
        header = ('TOY_ResNet: a Faster R-CNN for the generated toy dataset (datasets.toy: 4 '
                  'classes with background), %s.\n\n%s\n\n%s'
                  % (kind, TOY_DESCRIPTION, GENERATED % os.path.relpath(src, ROOT)))
        write(os.path.join(dst_dir, name), net_text(net, header))


def main():
    for dataset, depth, method in (('pascal_voc', 'ResNet-50', 'faster_rcnn_end2end'),
                                   ('pascal_voc', 'ResNet-50', 'faster_rcnn_alt_opt'),
                                   ('pascal_voc', 'ResNet-101', 'faster_rcnn_end2end'),
                                   ('pascal_voc', 'ResNet-101', 'faster_rcnn_alt_opt'),
                                   ('coco', 'ResNet-101', 'faster_rcnn_end2end')):
        make_resnet_nets(dataset, depth, method)
    make_toy_nets()


if __name__ == '__main__':
    main()
