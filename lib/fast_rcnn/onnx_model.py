"""A Fast/Faster R-CNN test net as one ONNX graph (caffe.onnx_export with the proposal layer's
hook), with the detection settings it was made with in its metadata.

Graph inputs are the net's: `data` (the preprocessed (1, 3, H, W) BGR-minus-means blob of
fast_rcnn.test.image_blob, height and width free) and `im_info` ([height, width, scale]); a Fast
R-CNN net (no RPN) takes `data` (images x 3 x H x W) and `rois` instead. Outputs are the net's
(`cls_prob`, `bbox_pred`) and the proposal layer's tops (`rois`, and `scores` where the layer
has them): what fast_rcnn.test.im_detect reads.
"""
import json
import os

import numpy as np

from caffe.common import CaffeError
from caffe.io import atomic_write
from fast_rcnn import test_settings
from rpn.proposal_onnx import HOOK_KEY, ProposalExport
from utils.param_str import settings_from_params, settings_params

TEST_SETTINGS_KEY = 'test_settings'


def proposal_tops(net):
    """The tops of the net's proposal layers (Python layers exported by ProposalExport)."""
    tops = []
    for layer, name in zip(net.layers, net._layer_names):
        p = layer.layer_param
        if p.type == 'Python' and '%s.%s' % (p.python_param.module,
                                              p.python_param.layer) == HOOK_KEY:
            tops += net.top_names[name]
    return tops


def export_detector(net, sources=()):
    """The ONNX ModelProto of a runtime test Net, with the settings its prototxt carries (the
    proposal layers' param_str, the test settings layer: fast_rcnn.test_settings) in the graph
    and its metadata; sources: the files the net came from, named in the metadata."""
    from caffe.onnx_export import export_net
    proposals = ProposalExport()
    rpn_tops = proposal_tops(net)
    outputs = list(net.outputs) + [t for t in rpn_tops if t not in net.outputs]
    if rpn_tops:
        # One image per run: the proposal graph makes the rois of image 0.
        dynamic = {'data': {2: 'height', 3: 'width'}, 'im_info': {}}
    else:
        dynamic = {'data': {0: 'images', 2: 'height', 3: 'width'}, 'rois': {0: 'rois'}}
    # The test settings layer computes nothing: its settings go into the metadata instead.
    hooks = dict(proposals.hooks(), **{'%s.%s' % (test_settings.MODULE, test_settings.LAYER):
                                       lambda g, layer: None})
    model = export_net(net, outputs=outputs, dynamic_axes=dynamic, python_layers=hooks,
                       check=False)
    metadata = dict(proposals.metadata()) if rpn_tops else {}
    metadata[TEST_SETTINGS_KEY] = json.dumps(settings_params(test_settings.of_net(net),
                                                             test_settings.NET_KEYS))
    metadata['source_files'] = json.dumps([os.path.basename(s) for s in sources])
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    import onnx
    onnx.checker.check_model(model, full_check=True)
    return model


def settings_of(onnx_net):
    """The TestSettings an exported graph (an OnnxNet) was made with (its metadata), has_rpn
    from its inputs as test_settings.of_net decides it for a Net."""
    text = onnx_net.metadata.get(TEST_SETTINGS_KEY)
    if text is None:
        raise CaffeError('%s has no %s metadata: export it with tools/export_onnx.py'
                         % (onnx_net.source, TEST_SETTINGS_KEY))
    where = '%s metadata %s' % (onnx_net.source, TEST_SETTINGS_KEY)
    try:
        settings = settings_from_params(test_settings.TestSettings, json.loads(text), where)
    except ValueError as e:
        raise CaffeError(str(e)) from None
    return settings.replace(has_rpn='rois' not in onnx_net.inputs)


def compare(net, onnx_net, inputs, roi_tolerance=1e-3):
    """How far an exported graph (OnnxNet) is from the runtime net on the same inputs, for each
    graph output (the proposal tops included): {name: {'shape': the runtime's, 'same_shape',
    'max_abs_diff', 'max_rel_diff' (the largest difference over the runtime's largest
    magnitude)}}; differences are None where the shapes differ (another proposal count).

    RoIs are compared as sets. Two proposals whose objectness scores differ by less than the
    two runtimes' rounding (adjacent cells of a flat image region give such ties) may come out
    in either order, or, when they overlap beyond the NMS threshold, the other one may be kept.
    Each runtime RoI is therefore lined up with the graph's nearest one: report['rois']
    ['reordered'] counts the rows that moved, ['unmatched'] the runtime RoIs with no graph RoI
    within roi_tolerance pixels; the per-RoI outputs (cls_prob, bbox_pred, scores) are compared
    on the matched rows."""
    for name, value in inputs.items():
        net.blobs[name].reshape(*value.shape)
    expected = {k: np.array(v, copy=True) for k, v in net.forward(**inputs).items()}
    got = dict(onnx_net.forward(**inputs))
    for name in onnx_net.outputs:
        if name not in expected:
            expected[name] = np.array(net.blobs[name].data, copy=True)
    rows = extra = None
    if 'rois' in got and got['rois'].shape == expected['rois'].shape:
        order, matched = _matching_rows(expected['rois'], got['rois'], roi_tolerance)
        count = expected['rois'].shape[0]
        extra = {'reordered': int(np.sum(order[matched] != np.arange(count)[matched])),
                 'unmatched': int(count - matched.sum())}
        got = {k: v[order] if v.ndim and v.shape[0] == count else v for k, v in got.items()}
        rows = matched
    report = {}
    for name in onnx_net.outputs:
        value, other = expected[name], got[name]
        same = other.shape == value.shape
        diff = scale = None
        if same and rows is not None and value.ndim and value.shape[0] == rows.size:
            value, other = value[rows], other[rows]
        if same:
            diff = float(np.abs(other.astype(np.float64) - value).max()) if value.size else 0.0
            scale = float(np.abs(value).max()) if value.size else 0.0
        report[name] = {'shape': list(expected[name].shape), 'same_shape': same,
                        'max_abs_diff': diff,
                        'max_rel_diff': None if diff is None else diff / max(scale, 1e-30)}
    if extra is not None:
        report['rois'].update(extra)
    return report


def _matching_rows(expected, got, tolerance):
    """(order, matched): got[order] lines got's rows up with expected's, each row that matches
    in place staying, the others taking their nearest row of got (largest coordinate
    difference); matched marks the rows of expected that have one within tolerance."""
    count = expected.shape[0]
    order = np.arange(count)
    if not count:
        return order, np.ones(0, dtype=bool)
    moved = np.where(np.abs(expected - got).max(axis=1) > tolerance)[0]
    matched = np.ones(count, dtype=bool)
    if moved.size:
        distance = np.abs(expected[moved, None, :] - got[None, :, :]).max(axis=2)
        nearest = distance.argmin(axis=1)
        order[moved] = nearest
        matched[moved] = distance[np.arange(moved.size), nearest] <= tolerance
    return order, matched


def write_model(model, path):
    """Writes the ModelProto to path atomically."""
    atomic_write(path, model.SerializeToString())
