"""What the detection Python layers read from their prototxt and bottoms.

param_str is a YAML mapping such as "'feat_stride': 16". The release's prototxts write tuples as
`!!python/tuple [8, 16, 32]`; they are read here as plain sequences without enabling YAML's
arbitrary Python constructors.
"""
import numpy as np
import yaml

from caffe import CaffeError
from core.anchors import generate_anchors


class _ParamLoader(yaml.SafeLoader):
    pass


_ParamLoader.add_constructor('tag:yaml.org,2002:python/tuple',
                             lambda loader, node: tuple(loader.construct_sequence(node)))


def load_param_str(text):
    """The mapping a param_str holds ({} for an empty one); ValueError when it is not a YAML
    mapping."""
    try:
        params = yaml.load(text, Loader=_ParamLoader) if text and text.strip() else {}
    except yaml.YAMLError as e:
        raise ValueError('param_str %r is not valid YAML: %s' % (text, e)) from None
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ValueError('param_str %r should be a mapping like "\'feat_stride\': 16"' % text)
    return params


def parse_param_str(layer, known, required=()):
    """Returns the layer's param_str as a dict; `known` maps every accepted key to its default.

    Raises CaffeError naming the layer for malformed YAML, unknown keys or missing required keys.
    """
    where = '%s layer %r' % (type(layer).__name__, layer.name)
    text = layer.param_str or ''
    try:
        params = load_param_str(text)
    except ValueError as e:
        raise CaffeError('%s: %s' % (where, e)) from None
    unknown = sorted(set(params) - set(known) - set(required))
    if unknown:
        raise CaffeError('%s: unknown param_str key(s) %s; accepted: %s'
                         % (where, ', '.join(map(str, unknown)),
                            ', '.join(sorted(set(known) | set(required)))))
    missing = [k for k in required if k not in params]
    if missing:
        raise CaffeError('%s: param_str %r lacks required key(s) %s'
                         % (where, text, ', '.join(missing)))
    out = dict(known)
    out.update(params)
    return out


def param_error(layer, message):
    """A CaffeError about a value in the layer's param_str, naming the layer."""
    return CaffeError('%s layer %r: %s' % (type(layer).__name__, layer.name, message))


def anchor_params(layer, default_scales, default_ratios, extra=None):
    """Reads feat_stride, scales and ratios (defaults given: the layers pass cfg.ANCHOR_SCALES /
    cfg.ANCHOR_RATIOS) and returns (anchors (A, 4) at the origin, feat_stride, all params)."""
    known = {'scales': tuple(default_scales), 'ratios': tuple(default_ratios)}
    known.update(extra or {})
    params = parse_param_str(layer, known, required=('feat_stride',))
    feat_stride = params['feat_stride']
    if not isinstance(feat_stride, int) or isinstance(feat_stride, bool) or feat_stride <= 0:
        raise param_error(layer, 'feat_stride should be a positive integer, got %r'
                          % (feat_stride,))
    anchors = generate_anchors(base_size=16, ratios=np.asarray(params['ratios'], dtype=np.float64),
                               scales=np.asarray(params['scales'], dtype=np.float64))
    return np.asarray(anchors, dtype=np.float64), feat_stride, params


def gt_boxes_from_blob(blob):
    """The gt_boxes bottom as a (G, 5) or (G, 6) float64 array (rows [x1, y1, x2, y2, class]
    and, for a batch of several images, the image's index); an image without objects may give
    an empty blob of any shape."""
    data = np.asarray(blob.data, dtype=np.float64)
    if data.size == 0:
        return np.zeros((0, 5))
    if data.ndim != 2 or data.shape[1] not in (4, 5, 6):
        raise CaffeError('gt_boxes should be (G, 5) rows [x1, y1, x2, y2, class] (or (G, 6) '
                         'with the image index last); got shape %s' % (data.shape,))
    return data


def gt_boxes_of_image(gt_boxes, n):
    """Image n's rows [x1, y1, x2, y2, class] of a gt_boxes array from gt_boxes_from_blob: the
    rows whose index column is n, or, without an index column, all rows (for image 0)."""
    if gt_boxes.shape[1] == 6:
        return gt_boxes[gt_boxes[:, 5] == n, :5]
    return gt_boxes if n == 0 else gt_boxes[:0]


def im_info_rows(blob, num_images, where):
    """im_info as (num_images, 3) rows [height, width, scale], one per image of the batch."""
    if blob.data.size != 3 * num_images:
        raise CaffeError('%s: im_info should hold [height, width, scale] for each of the %d '
                         'images; got shape %s' % (where, num_images, blob.data.shape))
    return np.asarray(blob.data).reshape(num_images, 3)


def zero_bottom_diffs(propagate_down, bottom):
    """Gives the bottoms that ask for a gradient a zero one: the detection Python layers compute
    targets or fixed proposals, through which the paper passes no gradient (Sec. 3.2)."""
    for wanted, blob in zip(propagate_down, bottom):
        if wanted:
            blob.diff[...] = 0
