"""The proposal layer (rpn.proposal_layer.ProposalLayer) at test time in standard ONNX operators,
as a hook for the runtime's ONNX exporter (caffe.onnx_export, which knows nothing of detection).

The graph does what core.proposals.propose does for one image, in the same float32 operations:
the anchors of every feature-map cell (the reference anchors a constant, the shifts from the map's
height and width, so the image size stays free), box decoding (core.boxes.bbox_transform_inv),
clipping to im_info's height and width, the min-size filter at min_size * im_info's scale, the
pre-NMS top N by score (TopK: ties keep anchor order, as the stable sort does), NMS, the post-NMS
top N. Rows of rois are [0, x1, y1, x2, y2]: one image per graph run.

ONNX's NonMaxSuppression measures boxes without the release's +1 (a box x1..x2 is x2 - x1 wide
there); the boxes it sees have x2 + 1 and y2 + 1, which gives the release's widths, areas and
overlaps. It is given strictly decreasing scores in TopK's order, so it visits the boxes in the
order cpu_nms does; its max_output_boxes_per_class is the post-NMS top N.
"""
import dataclasses
import json

import numpy as np

import caffe
from rpn.proposal_layer import proposal_layer_settings

HOOK_KEY = 'rpn.proposal_layer.ProposalLayer'
METADATA_KEY = 'proposal_settings'


class ProposalExport:
    """The exporter hook for ProposalLayer (call it as hook(graph, layer_view)): the layer is
    exported with what its param_str says in a TEST net (rpn.proposal_layer.
    proposal_layer_settings, the layer's own reading; the tools write the experiment's settings
    there). After the export, .settings holds what each proposal layer was exported with ({layer
    name: settings}), and metadata() the graph's metadata."""

    def __init__(self):
        self.settings = {}

    def hooks(self):
        return {HOOK_KEY: self}

    def metadata(self):
        return {METADATA_KEY: json.dumps(self.settings, sort_keys=True)}

    def __call__(self, g, layer):
        try:
            read = proposal_layer_settings(layer.param.python_param.param_str, caffe.TEST,
                                           'layer %s param_str' % layer.name)
        except ValueError as e:
            raise layer.error(str(e)) from None
        limits = read.proposals
        if limits.mode == 'no_cls':
            raise layer.error("RPN mode 'no_cls' draws proposals at random; it has no "
                              'fixed graph to export')
        if len(layer.bottoms) != 3:
            raise layer.error('expected 3 bottoms (scores, deltas, im_info), got %d'
                              % len(layer.bottoms))
        if layer.bottom_shapes[0][0] != 1:
            raise layer.error('the exported proposal graph takes one image; the net has a '
                              'batch of %d' % layer.bottom_shapes[0][0])
        anchors = read.anchors
        if layer.bottom_shapes[0][1] != 2 * anchors.shape[0]:
            raise layer.error('%d anchors need %d score channels, the net has %d'
                              % (anchors.shape[0], 2 * anchors.shape[0],
                                 layer.bottom_shapes[0][1]))
        self.settings[layer.name] = dict(dataclasses.asdict(limits),
                                         feat_stride=read.feat_stride,
                                         anchors=anchors.tolist())
        _proposal_graph(g, layer, anchors, read.feat_stride, limits)


def _proposal_graph(g, layer, anchors, feat_stride, limits):
    scores_in, deltas_in, im_info = layer.bottoms
    a = anchors.shape[0]
    # Foreground scores and deltas in anchor order: cell (y, x) major, anchor minor.
    fg = g.op('Slice', [scores_in, g.ints([a]), g.ints([2 * a]), g.ints([1])])
    scores = g.op('Reshape', [g.op('Transpose', [fg], perm=[0, 2, 3, 1]), g.ints([-1])])
    grid = _anchor_grid(g, scores_in, anchors, feat_stride)
    if limits.mode == 'no_reg':
        boxes = grid
    else:
        deltas = g.op('Reshape', [g.op('Transpose', [deltas_in], perm=[0, 2, 3, 1]),
                                  g.ints([-1, 4])])
        boxes = _decode(g, grid, deltas)
    info = g.op('Reshape', [im_info, g.ints([-1])])
    boxes = _clip(g, boxes, info)

    # Boxes at least min_size * scale wide and high.
    low, high = _corners(g, boxes)
    sizes = g.op('Add', [g.op('Sub', [high, low]), g.const(1.0)])
    min_size = g.op('Mul', [g.const([limits.min_size]),
                            g.op('Slice', [info, g.ints([2]), g.ints([3])])])
    big = g.op('ReduceMin', [g.op('Cast', [g.op('GreaterOrEqual', [sizes, min_size])], to=6),
                             g.ints([1])], keepdims=0)
    kept = g.op('Reshape', [g.op('NonZero', [big]), g.ints([-1])])
    boxes = g.op('Gather', [boxes, kept], axis=0)
    scores = g.op('Gather', [scores, kept], axis=0)

    count = g.op('Shape', [scores])
    top = count if limits.pre_nms_top_n <= 0 else g.op('Min', [count, g.ints(
        [limits.pre_nms_top_n])])
    scores, order = g.op('TopK', [scores, top], num_outputs=2, axis=0, largest=1, sorted=1)
    boxes = g.op('Gather', [boxes, order], axis=0)
    post = top if limits.post_nms_top_n <= 0 else g.op('Min', [top, g.ints(
        [limits.post_nms_top_n])])
    if limits.no_nms:
        keep = g.op('Range', [g.const(0, np.int64), g.op('Squeeze', [post]),
                              g.const(1, np.int64)])
    else:
        keep = _nms(g, boxes, top, limits.nms_thresh, post)
    boxes = g.op('Gather', [boxes, keep], axis=0)
    scores = g.op('Gather', [scores, keep], axis=0)

    column = g.op('ConstantOfShape', [g.op('Concat', [g.op('Shape', [keep]), g.ints([1])],
                                           axis=0)], value=_zero())
    g.op('Concat', [column, boxes], [layer.tops[0]], axis=1)
    if len(layer.tops) > 1:
        g.op('Unsqueeze', [scores, g.ints([1])], [layer.tops[1]])


def _zero():
    from onnx import numpy_helper
    return numpy_helper.from_array(np.zeros(1, dtype=np.float32))


def _anchor_grid(g, scores_in, anchors, feat_stride):
    """(H * W * A, 4) anchors of an H x W map: reference anchor a shifted by (x, y) * stride at
    cell (y, x), rows (y * W + x) * A + a (core.anchors.shifted_anchors). Every value is a
    multiple of 0.5 well inside float32's exact range, so float32 gives the float64 grid."""
    def steps(axis, shape):
        size = g.op('Squeeze', [g.dim(scores_in, axis)])
        cells = g.op('Cast', [g.op('Range', [g.const(0, np.int64), size,
                                             g.const(1, np.int64)])], to=1)
        return g.op('Reshape', [g.op('Mul', [cells, g.const(float(feat_stride))]),
                                g.ints(shape)])
    xs = steps(3, [1, -1, 1, 1])
    ys = steps(2, [-1, 1, 1, 1])
    shifts = g.op('Add', [g.op('Mul', [xs, g.const([1, 0, 1, 0])]),
                          g.op('Mul', [ys, g.const([0, 1, 0, 1])])])
    grid = g.op('Add', [shifts, g.const(anchors.reshape(1, 1, -1, 4), name='anchors')])
    return g.op('Reshape', [grid, g.ints([-1, 4])])


def _corners(g, boxes):
    """(x1, y1) and (x2, y2) columns of (K, 4) boxes, each (K, 2)."""
    return g.op('Split', [boxes, g.ints([2, 2])], num_outputs=2, axis=1)


def _decode(g, anchors, deltas):
    """core.boxes.bbox_transform_inv in its order of float32 operations: w = x2 - x1 + 1,
    cx = x1 + 0.5 w; cx' = dx w + cx, w' = exp(dw) w; x1' = cx' - 0.5 w', x2' = cx' + 0.5 w'
    (y alike)."""
    low, high = _corners(g, anchors)
    size = g.op('Add', [g.op('Sub', [high, low]), g.const(1.0)])
    centre = g.op('Add', [low, g.op('Mul', [g.const(0.5), size])])
    shift, log_scale = _corners(g, deltas)
    centre = g.op('Add', [g.op('Mul', [shift, size]), centre])
    half = g.op('Mul', [g.const(0.5), g.op('Mul', [g.op('Exp', [log_scale]), size])])
    return g.op('Concat', [g.op('Sub', [centre, half]), g.op('Add', [centre, half])], axis=1)


def _clip(g, boxes, info):
    """x in [0, width - 1], y in [0, height - 1] (core.boxes.clip_boxes: max, then min)."""
    height, width = (g.op('Slice', [info, g.ints([i]), g.ints([i + 1])]) for i in (0, 1))
    limits = g.op('Sub', [g.op('Concat', [width, height, width, height], axis=0),
                          g.const(1.0)])
    return g.op('Min', [g.op('Max', [boxes, g.const(0.0)]), limits])


def _nms(g, boxes, count, thresh, post):
    """Indices (into boxes, which are in score order) that greedy NMS keeps, at most post (an
    int64 value of one element)."""
    plus_one = g.op('Add', [boxes, g.const([0, 0, 1, 1])])
    ranks = g.op('Cast', [g.op('Range', [g.op('Squeeze', [count]), g.const(0, np.int64),
                                         g.const(-1, np.int64)])], to=1)
    selected = g.op('NonMaxSuppression',
                    [g.op('Unsqueeze', [plus_one, g.ints([0])]),
                     g.op('Reshape', [ranks, g.ints([1, 1, -1])]),
                     post, g.const([thresh])])
    column = g.op('Slice', [selected, g.ints([2]), g.ints([3]), g.ints([1])])
    return g.op('Reshape', [column, g.ints([-1])])
