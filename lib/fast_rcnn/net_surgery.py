"""Variants of a network definition: pure NetParameter -> NetParameter edits, and the adapted
copies of prototxt files the tools train and test with.

The released prototxts are written for a dataset (21 classes for PASCAL VOC, 81 for COCO) and the
paper's defaults (9 anchors, lambda = 10). An experiment that needs another class count (custom
datasets), other anchors (Table 8), another lambda (Table 9), the detector alone (testing on
given proposals, Tables 2 and 10) or a non-approximate joint training net without its coordinate
gradient (Sec. 3.2) gets an adapted copy written beside its outputs; the original
files are never changed. Each edit raises NetSurgeryError when the net lacks what it edits.

The copy also holds every setting of the experiment that the net's Python layers read, in their
param_str (with_layer_settings), and a test net the test settings (fast_rcnn.test_settings), so
that the copy describes the net completely.
"""
import copy
import os
import re

from caffe import io as caffe_io
from caffe.proto import caffe_pb2
from core import anchors
from fast_rcnn import test_settings
from google.protobuf import text_format
from utils.param_str import dump_param_str, load_param_str


class NetSurgeryError(ValueError):
    """A network definition that cannot take the asked-for edit."""


_NUM_CLASSES_RE = re.compile(r"""(['"]?num_classes['"]?\s*:\s*)(\d+)""")


def read_net(path):
    return caffe_io.read_prototxt(path, caffe_pb2.NetParameter())


def write_text(path, message):
    caffe_io.atomic_write(path, text_format.MessageToString(message))


# The edits -------------------------------------------------------------------------------------

def num_classes(param):
    """The number of classes a NetParameter is written for (from cls_score or a param_str), or
    None when it names none."""
    for layer in list(param.layer) + list(param.layers):
        if layer.name == 'cls_score' and layer.HasField('inner_product_param'):
            return layer.inner_product_param.num_output
    for layer in param.layer:
        if layer.HasField('python_param'):
            m = _NUM_CLASSES_RE.search(layer.python_param.param_str)
            if m:
                return int(m.group(2))
    return None


def with_num_classes(param, count):
    """cls_score with `count` outputs, bbox_pred with 4 * count, and every Python layer's
    param_str num_classes set to count."""
    param = copy.deepcopy(param)
    for layer in param.layer:
        if layer.name == 'cls_score' and layer.HasField('inner_product_param'):
            layer.inner_product_param.num_output = count
        elif layer.name == 'bbox_pred' and layer.HasField('inner_product_param'):
            layer.inner_product_param.num_output = 4 * count
        if layer.HasField('python_param'):
            layer.python_param.param_str = _NUM_CLASSES_RE.sub(
                lambda m: m.group(1) + str(count), layer.python_param.param_str)
    return param


def anchor_layers(param):
    """The Python layers that make anchors (their param_str has feat_stride)."""
    return [l for l in param.layer
            if l.HasField('python_param') and 'feat_stride' in l.python_param.param_str]


def rpn_layers(param):
    """The RPN's output convolutions (rpn_cls_score, rpn_bbox_pred), whose output counts are
    2A and 4A for A anchors per position."""
    return [l for l in param.layer if l.name in ('rpn_cls_score', 'rpn_bbox_pred')]


def with_anchors(param, scales=None, ratios=None):
    """The RPN with other anchors (Table 8): the anchor layers' param_str scales and ratios (each
    layer's own where None, the paper's where it names none), and rpn_cls_score / rpn_bbox_pred
    (and the score reshape) with 2A / 4A outputs. A net with the RPN's convolutions but no
    anchor layer (alt-opt's Fast R-CNN stages keep them to carry the shared weights) gets the
    output counts only."""
    param = copy.deepcopy(param)
    if not anchor_layers(param) and not rpn_layers(param):
        raise NetSurgeryError('net %r has no RPN to give other anchors' % param.name)
    num_anchors = len(scales or anchors.SCALES) * len(ratios or anchors.RATIOS)
    for layer in anchor_layers(param):
        params = load_param_str(layer.python_param.param_str)
        layer_scales = scales or tuple(params.get('scales', anchors.SCALES))
        layer_ratios = ratios or tuple(params.get('ratios', anchors.RATIOS))
        params['scales'] = [float(v) if v != int(v) else int(v) for v in layer_scales]
        params['ratios'] = [float(v) for v in layer_ratios]
        layer.python_param.param_str = dump_param_str(params)
        num_anchors = len(layer_scales) * len(layer_ratios)
    for layer in param.layer:
        if layer.name == 'rpn_cls_score':
            layer.convolution_param.num_output = 2 * num_anchors
        elif layer.name == 'rpn_bbox_pred':
            layer.convolution_param.num_output = 4 * num_anchors
        elif (layer.name.startswith('rpn') and layer.type == 'Reshape'
              and len(layer.reshape_param.shape.dim) > 1
              and layer.reshape_param.shape.dim[1] not in (0, -1, 2)):
            # rpn_cls_prob_reshape: (1, 2, A*H, W) back to (1, 2A, H, W)
            layer.reshape_param.shape.dim[1] = 2 * num_anchors
    return param


def with_rpn_lambda(param, rpn_lambda):
    """rpn_loss_bbox weighted for lambda of Eq. (1) (Table 9): the release's loss_weight 1 with
    its 256-anchor normalization is the paper's lambda = 10, so the weight is scaled by
    rpn_lambda / 10."""
    param = copy.deepcopy(param)
    found = [l for l in param.layer if l.name == 'rpn_loss_bbox']
    if not found:
        raise NetSurgeryError('net %r has no rpn_loss_bbox layer to weight' % param.name)
    for layer in found:
        weights = list(layer.loss_weight) or [1.0]
        del layer.loss_weight[:]
        layer.loss_weight.extend(w * rpn_lambda / 10.0 for w in weights)
    return param


def coordinate_gradient_layers(param):
    """The layers of a non-approximate joint training net (paper Sec. 3.2) that pass the
    proposals' coordinate gradient: Python layers whose param_str sets backprop_coords, and the
    ROIWarping layers (whose rois bottom receives it)."""
    python = [l for l in param.layer if l.HasField('python_param')
              and load_param_str(l.python_param.param_str).get('backprop_coords')]
    if not python:
        return []
    return python + [l for l in param.layer if l.type == 'ROIWarping']


def without_coordinate_gradient(param):
    """Approximate joint training with the same layers: the proposal layers' backprop_coords
    (and backprop_targets) off, and each ROIWarping layer's rois bottom with propagate_down
    false, so the coordinate gradient is neither computed nor passed (paper Sec. 3.2)."""
    param = copy.deepcopy(param)
    layers = coordinate_gradient_layers(param)
    if not layers:
        raise NetSurgeryError('net %r passes no coordinate gradient to turn off' % param.name)
    for layer in layers:
        if layer.type == 'ROIWarping':
            del layer.propagate_down[:]
            layer.propagate_down.extend([True, False])
            continue
        params = load_param_str(layer.python_param.param_str)
        for key in ('backprop_coords', 'backprop_targets', 'coord_grad_scale'):
            params.pop(key, None)
        layer.python_param.param_str = dump_param_str(params)
    return param


def with_coordinate_gradient(param, scale=None, rois=None):
    """A non-approximate joint training net with its coordinate gradient changed: the proposal
    layer's coord_grad_scale set to `scale`, the proposal-target layer's backprop_coords to
    `rois` ('fg' or 'all'); None keeps what the net says."""
    param = copy.deepcopy(param)
    layers = [l for l in coordinate_gradient_layers(param) if l.HasField('python_param')]
    if not layers:
        raise NetSurgeryError('net %r passes no coordinate gradient to change' % param.name)
    wanted = {'rpn.proposal_layer': ('coord_grad_scale', scale),
              'rpn.proposal_target_layer': ('backprop_coords', rois)}
    for layer in layers:
        key, value = wanted.get(layer.python_param.module, (None, None))
        if value is None:
            continue
        params = load_param_str(layer.python_param.param_str)
        params[key] = value
        layer.python_param.param_str = dump_param_str(params)
    return param


def with_layer_settings(param, settings):
    """Every Python layer of a module named in `settings` with those settings in its param_str.
    settings: {module: (values, overriding)}, values a dict {param_str key: value} and
    overriding the keys whose value replaces the layer's own; the other keys are written only
    where the layer names none, so a setting the prototxt already holds stays."""
    param = copy.deepcopy(param)
    for layer in param.layer:
        if not layer.HasField('python_param') or layer.python_param.module not in settings:
            continue
        values, overriding = settings[layer.python_param.module]
        params = load_param_str(layer.python_param.param_str)
        for key, value in values.items():
            if key in overriding or key not in params:
                params[key] = value
        layer.python_param.param_str = dump_param_str(params)
    return param


def with_test_settings_layer(param):
    """A test net with the layer that carries its test settings (fast_rcnn.test_settings), first
    among its layers, if it has none: with_layer_settings then fills it in."""
    if any(l.HasField('python_param') and l.python_param.module == test_settings.MODULE
           for l in param.layer):
        return param
    param = copy.deepcopy(param)
    layers = list(param.layer)
    del param.layer[:]
    holder = param.layer.add(name=test_settings.LAYER_NAME, type='Python')
    holder.python_param.module = test_settings.MODULE
    holder.python_param.layer = test_settings.LAYER
    param.layer.extend(layers)
    return param


def proposal_layers(param):
    """The Python layers that make 'rois' (the RPN's proposal layer)."""
    return [l for l in param.layer if 'rois' in l.top and l.HasField('python_param')]


def detector_only(param):
    """A Faster R-CNN test net without its RPN: the same detector reading a 'rois' input, for
    testing it on given proposals (Tables 2, 10)."""
    param = copy.deepcopy(param)
    rpn = proposal_layers(param)
    if not rpn:
        raise NetSurgeryError('net %r has no proposal layer to remove' % param.name)
    # Everything the proposal layer reads only for itself (rpn_* layers) goes with it.
    keep = [l for l in param.layer if l not in rpn and not l.name.startswith('rpn')]
    del param.layer[:]
    param.layer.extend(keep)
    names = list(param.input)
    shapes = [list(s.dim) for s in param.input_shape]
    del param.input[:]
    del param.input_shape[:]
    for name, dims in zip(names, shapes):
        if name == 'im_info':
            name, dims = 'rois', [1, 5]
        param.input.append(name)
        param.input_shape.add().dim.extend(dims)
    return param


def rpn_only(param):
    """A Faster R-CNN test net cut after its proposal layer, which gets the scores top: the RPN
    test net (rois and scores, as the release's rpn_test.pt) of an end-to-end model, for its
    proposals and their recall (Fig. 4, Sec. 3.2's experiment)."""
    param = copy.deepcopy(param)
    rpn = [i for i, l in enumerate(param.layer)
           if l.HasField('python_param') and l.python_param.module == 'rpn.proposal_layer']
    if not rpn:
        raise NetSurgeryError('net %r has no proposal layer (rpn.proposal_layer)' % param.name)
    last = rpn[0]
    del param.layer[last + 1:]
    proposal = param.layer[last]
    if list(proposal.top) != ['rois', 'scores']:
        del proposal.top[:]
        proposal.top.extend(['rois', 'scores'])
    return param


def with_svd_fc(param, ranks):
    """Each named InnerProduct layer split into <name>_L (rank outputs, no bias) and <name>_U
    (the original outputs and bias), for truncated-SVD compression (Fast R-CNN Sec. 3.1;
    the paper's Table 5 timing). ranks: [(layer name, rank)]."""
    wanted = dict(ranks)
    missing = sorted(set(wanted) - {l.name for l in param.layer})
    if missing:
        raise NetSurgeryError('the net has no layer(s) %s to compress' % ', '.join(missing))
    out = copy.deepcopy(param)
    del out.layer[:]
    for layer in param.layer:
        if layer.name not in wanted:
            out.layer.add().CopyFrom(layer)
            continue
        if layer.type != 'InnerProduct':
            raise NetSurgeryError('layer %s is a %s layer; only InnerProduct layers can be '
                                  'compressed' % (layer.name, layer.type))
        low = _factor_of(out, layer, layer.name + '_L')
        del low.top[:]
        low.top.append(low.name)
        low.inner_product_param.num_output = wanted[layer.name]
        low.inner_product_param.bias_term = False
        up = _factor_of(out, layer, layer.name + '_U')
        del up.bottom[:]
        up.bottom.append(low.name)
    return out


def _factor_of(out, layer, name):
    """A copy of `layer` named `name`, appended to out's layers, without the original's param
    specs (the factors' weights have other shapes and names)."""
    factor = out.layer.add()
    factor.CopyFrom(layer)
    factor.name = name
    del factor.param[:]
    return factor


# Adapted copies of files -----------------------------------------------------------------------

def net_changes(param, classes=None, anchor_scales=None, anchor_ratios=None, rpn_lambda=10.0,
                coord_gradient=True, coord_gradient_scale=None, coord_gradient_rois=None):
    """The edits of a NetParameter's structure an experiment needs, as a list of (tag, edit
    function); empty when it is used as written. classes: the dataset's class count (None:
    keep); anchor_scales / anchor_ratios: the RPN's anchors (None: each layer's own);
    rpn_lambda: Eq. (1)'s lambda (10: keep); coord_gradient: False turns a non-approximate
    joint training net's coordinate gradient off (True: keep), else coord_gradient_scale and
    coord_gradient_rois ('fg' or 'all') change it (with_coordinate_gradient; None: keep)."""
    changes = []
    current = num_classes(param)
    if classes is not None and current is not None and current != classes:
        changes.append(('%dcls' % classes, lambda p: with_num_classes(p, classes)))
    if (anchor_scales or anchor_ratios) and rpn_layers(param):
        scales = tuple(anchor_scales) if anchor_scales else None
        ratios = tuple(anchor_ratios) if anchor_ratios else None
        tag = 'anchors_s%s_r%s' % tuple('-'.join('%g' % v for v in values) if values else 'def'
                                        for values in (scales, ratios))
        changes.append((tag, lambda p: with_anchors(p, scales, ratios)))
    if rpn_lambda != 10.0 and any(l.name == 'rpn_loss_bbox' for l in param.layer):
        changes.append(('lambda%g' % rpn_lambda, lambda p: with_rpn_lambda(p, rpn_lambda)))
    if coordinate_gradient_layers(param):
        if not coord_gradient:
            changes.append(('nocoordgrad', without_coordinate_gradient))
        elif coord_gradient_scale is not None or coord_gradient_rois:
            scale = None if coord_gradient_scale is None else float(coord_gradient_scale)
            rois = coord_gradient_rois or None
            tag = 'coordgrad' + ('_%s' % rois if rois else '') + \
                ('_x%g' % scale if scale is not None else '')
            changes.append((tag, lambda p: with_coordinate_gradient(p, scale, rois)))
    return changes


def adapted_net_file(prototxt, out_dir, layer_settings=None, test_net=False, **changes):
    """The net file to run: prototxt adapted by the structural `changes` (net_changes'
    keywords), for a test net (test_net) with the test settings layer, and with layer_settings
    (with_layer_settings) in its Python layers. prototxt itself when that changes nothing; else
    an adapted copy written to out_dir, named <stem>_<the changes' tags, or 'run'>."""
    original = read_net(prototxt)
    edits = net_changes(original, **changes)
    param = original
    for _, edit in edits:
        param = edit(param)
    if test_net:
        param = with_test_settings_layer(param)
    if layer_settings:
        param = with_layer_settings(param, layer_settings)
    if param == original:
        return prototxt
    tag = '_'.join(t for t, _ in edits) or 'run'
    path = _write_copy(param, prototxt, out_dir, tag)
    print('%s adapted (%s): using the copy %s' % (prototxt, tag.replace('_', ', '), path),
          flush=True)
    return path


def _write_copy(param, original, out_dir, tag):
    """Writes param to out_dir/<original's stem>_<tag><original's extension>; returns the path."""
    stem, ext = os.path.splitext(os.path.basename(original))
    path = os.path.join(out_dir, '%s_%s%s' % (stem, tag, ext or '.prototxt'))
    write_text(path, param)
    return path


def detector_net_file(prototxt, out_dir):
    """A copy of a Faster R-CNN test net without its RPN (detector_only) in out_dir, or
    prototxt itself when it has no proposal layer."""
    param = read_net(prototxt)
    if not proposal_layers(param):
        return prototxt
    path = _write_copy(detector_only(param), prototxt, out_dir, 'detector')
    print('%s: testing the detector alone on given proposals with %s' % (prototxt, path),
          flush=True)
    return path


def rpn_net_file(prototxt, out_dir):
    """The RPN test net of prototxt: prototxt itself when it ends at a proposal layer with rois
    and scores tops (rpn_test.pt), else a copy cut there (rpn_only) in out_dir."""
    param = read_net(prototxt)
    cut = rpn_only(param)
    if cut == param:
        return prototxt
    path = _write_copy(cut, prototxt, out_dir, 'rpn')
    print('%s: proposals from its RPN part, %s' % (prototxt, path), flush=True)
    return path


def _resolve_beside(path, reference):
    # Net paths in a solver are relative to the working directory (Caffe), else to the solver.
    if os.path.isabs(path) or os.path.exists(path):
        return path
    beside = os.path.join(os.path.dirname(os.path.abspath(reference)), path)
    return beside if os.path.exists(beside) else path


def adapted_solver_file(solver_prototxt, out_dir, iter_size=0, layer_settings=None, **changes):
    """The solver file to train with: solver_prototxt itself, or an adapted copy in out_dir
    whose train net is adapted (adapted_net_file) and whose iter_size is `iter_size` when > 0
    (the paper's multi-GPU batches accumulated on one device, Table 11)."""
    param = caffe_io.read_prototxt(solver_prototxt, caffe_pb2.SolverParameter())
    field = 'train_net' if param.train_net else 'net' if param.net else None
    if field is None:
        return solver_prototxt
    net_path = _resolve_beside(getattr(param, field), solver_prototxt)
    if not os.path.isfile(net_path):
        raise FileNotFoundError('%s: net file %s not found' % (solver_prototxt, net_path))
    adapted = adapted_net_file(net_path, out_dir, layer_settings, **changes)
    if adapted == net_path and iter_size <= 0:
        return solver_prototxt
    setattr(param, field, os.path.abspath(adapted))
    tag = 'fitted'
    if iter_size > 0:
        param.iter_size = iter_size
        tag += '_iter%d' % iter_size
    return _write_copy(param, solver_prototxt, out_dir, tag)
