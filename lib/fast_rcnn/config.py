"""Faster R-CNN configuration: one easydict `cfg` with the release's keys and defaults.

Defaults live here and are not edited per experiment. An experiment overrides them with a YAML
file (`cfg_from_file`, tools' --cfg) and with KEY VALUE pairs (`cfg_from_list`, tools' --set).
Both refuse keys that do not exist here and values whose type does not match the default, naming
the dotted key, so a typo cannot silently leave a default in force.

    from fast_rcnn.config import cfg
"""
import ast
import os
import os.path as osp

import numpy as np
import yaml
from easydict import EasyDict as edict

__C = edict()
cfg = __C

#
# Training options
#
__C.TRAIN = edict()

# Pixel length of the shorter image side; several values give multi-scale training.
__C.TRAIN.SCALES = (600,)
# Longest image side allowed after scaling.
__C.TRAIN.MAX_SIZE = 1000
# Images per minibatch (the release: 2 for Fast R-CNN, 1 with an RPN; here any number for both).
__C.TRAIN.IMS_PER_BATCH = 2
# RoIs per minibatch (the paper's R = 128 per image for the detector).
__C.TRAIN.BATCH_SIZE = 128
# Fraction of the RoI minibatch that is foreground.
__C.TRAIN.FG_FRACTION = 0.25
# A RoI is foreground when its IoU with some ground-truth box is >= FG_THRESH.
__C.TRAIN.FG_THRESH = 0.5
# A RoI is background when its best IoU lies in [BG_THRESH_LO, BG_THRESH_HI).
__C.TRAIN.BG_THRESH_HI = 0.5
__C.TRAIN.BG_THRESH_LO = 0.1
# Add horizontally flipped copies of the training images.
__C.TRAIN.USE_FLIPPED = True
# Train the bounding-box regressors.
__C.TRAIN.BBOX_REG = True
# A RoI needs at least this IoU with a ground-truth box to be a regression example.
__C.TRAIN.BBOX_THRESH = 0.5
# Iterations between snapshots.
__C.TRAIN.SNAPSHOT_ITERS = 10000
# Snapshots are named <solver prefix>[_<infix>]_iter_<n>.caffemodel.
__C.TRAIN.SNAPSHOT_INFIX = ''
# Prepare minibatches in a background process.
__C.TRAIN.USE_PREFETCH = False
# Normalize regression targets by means and stds (undone in the saved bbox_pred weights).
__C.TRAIN.BBOX_NORMALIZE_TARGETS = True
# Per-coordinate inside weights of the detector's smooth-L1 loss.
__C.TRAIN.BBOX_INSIDE_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
# Use the fixed means/stds below instead of ones computed from the roidb (end-to-end training
# needs them fixed, since proposals are not known in advance).
__C.TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED = False
__C.TRAIN.BBOX_NORMALIZE_MEANS = (0.0, 0.0, 0.0, 0.0)
__C.TRAIN.BBOX_NORMALIZE_STDS = (0.1, 0.1, 0.2, 0.2)
# Where training RoIs come from: 'gt', 'rpn', 'selective_search', ...
__C.TRAIN.PROPOSAL_METHOD = 'selective_search'
# Put images of like aspect ratio (both wide or both tall) in one minibatch to save padding.
__C.TRAIN.ASPECT_GROUPING = True

# The net has an RPN (end-to-end and RPN stages of alternating training).
__C.TRAIN.HAS_RPN = False
# Anchor labels (paper Sec. 3.1.2): positive at IoU >= 0.7 (or the best anchor of a ground-truth
# box), negative below 0.3.
__C.TRAIN.RPN_POSITIVE_OVERLAP = 0.7
__C.TRAIN.RPN_NEGATIVE_OVERLAP = 0.3
# When an anchor is both (best for a box, yet below the negative threshold), make it negative.
__C.TRAIN.RPN_CLOBBER_POSITIVES = False
# Up to this fraction of the RPN minibatch is positive (paper: up to 1:1).
__C.TRAIN.RPN_FG_FRACTION = 0.5
# Anchors sampled per image for the RPN loss (paper: 256).
__C.TRAIN.RPN_BATCHSIZE = 256
# NMS threshold on RPN proposals.
__C.TRAIN.RPN_NMS_THRESH = 0.7
# Top-scoring proposals kept before NMS.
__C.TRAIN.RPN_PRE_NMS_TOP_N = 12000
# Proposals kept after NMS.
__C.TRAIN.RPN_POST_NMS_TOP_N = 2000
# Proposals narrower or shorter than this (in original-image pixels) are dropped.
__C.TRAIN.RPN_MIN_SIZE = 16
# Per-coordinate inside weights of the RPN's smooth-L1 loss.
__C.TRAIN.RPN_BBOX_INSIDE_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
# Weight p of each positive anchor (negatives get 1 - p), both divided by their counts;
# -1 weights every sampled anchor by 1 / (number sampled).
__C.TRAIN.RPN_POSITIVE_WEIGHT = -1.0
# Project key: lambda of the paper's Eq. (1), the weight of the RPN's box-regression term
# (Table 9). The release's loss (normalized by the 256-anchor minibatch, loss_weight 1) is the
# paper's lambda = 10 with N_reg ~ 2400, so rpn_loss_bbox gets loss_weight * RPN_LAMBDA / 10.
__C.TRAIN.RPN_LAMBDA = 10.0
# Project key: the solver's iter_size (minibatches accumulated per update) when > 0; 0 keeps the
# solver file's value (or derives it from RANKS_PER_UPDATE).
__C.TRAIN.ITER_SIZE = 0
# Project key: how many data-parallel ranks' minibatches make one update in the setting a cfg
# describes, e.g. the paper's 8 GPUs for COCO (Sec. 4.2, Table 11). Training on fewer ranks makes
# up the rest with the solver's iter_size: iter_size = RANKS_PER_UPDATE / ranks (it must divide),
# so 1 process, 2, 4 or 8 GPUs all update with the same effective batch. 0: not used.
__C.TRAIN.RANKS_PER_UPDATE = 0
# Project key: non-approximate joint training (paper Sec. 3.2). False turns the proposals'
# coordinate gradient off in a net that has it (the faster_rcnn_end2end_nonapprox prototxts):
# approximate joint training with ROIWarping (fast_rcnn.net_surgery.without_coordinate_gradient).
__C.TRAIN.COORD_GRADIENT = True
# Project keys: how much of it (docs/joint_training.md): the proposal layer's coord_grad_scale
# (1: as the net says), and which sampled RoIs pass it ('fg' or 'all'; '': as the net says).
# The nets carry the loss's exact derivative ('all', 1), which wrecks the RPN on the toy data;
# by default the foreground RoIs' only, scaled by 0.1, the setting that trains as well as
# approximate training there ('all' and 1: the exact gradient, an ablation).
__C.TRAIN.COORD_GRADIENT_SCALE = 0.1
__C.TRAIN.COORD_GRADIENT_ROIS = 'fg'

#
# Testing options
#
__C.TEST = edict()

# Pixel length of the shorter image side; several values give multi-scale testing.
__C.TEST.SCALES = (600,)
# Longest image side allowed after scaling.
__C.TEST.MAX_SIZE = 1000
# Per-class NMS threshold on detections.
__C.TEST.NMS = 0.3
# Treat the cls_score outputs as linear (SVM) scores instead of softmax probabilities.
__C.TEST.SVM = False
# Apply the bounding-box regressors.
__C.TEST.BBOX_REG = True
# The net has an RPN that proposes its own boxes.
__C.TEST.HAS_RPN = False
# Where test RoIs come from when the net has no RPN.
__C.TEST.PROPOSAL_METHOD = 'selective_search'
# NMS threshold on RPN proposals.
__C.TEST.RPN_NMS_THRESH = 0.7
# Top-scoring proposals kept before NMS.
__C.TEST.RPN_PRE_NMS_TOP_N = 6000
# Proposals kept after NMS (paper: 300 at test time).
__C.TEST.RPN_POST_NMS_TOP_N = 300
# Proposals narrower or shorter than this (in original-image pixels) are dropped.
__C.TEST.RPN_MIN_SIZE = 16
# Project key: at most this many detections per image over all classes (the release's test.py
# hard-codes 100; the VOC/COCO protocols assume it).
__C.TEST.MAX_PER_IMAGE = 100
# Project key: per-class score below which detections are dropped before NMS (the release's
# test.py hard-codes 0.05).
__C.TEST.SCORE_THRESH = 0.05
# Project key: skip NMS on RPN proposals at test time (the paper's Table 2 ablation
# "RPN w/o NMS", which ranks the top-N proposals without suppression).
__C.TEST.RPN_NO_NMS = False
# Project key: how proposals are made at test time, for the paper's Table 2 ablations.
# 'rpn' is the full RPN; ablation modes (e.g. without cls scores or without regression) will be
# added by the issue that implements them.
__C.TEST.RPN_MODE = 'rpn'

#
# Misc
#

# Boxes that map to the same cell at this scale (1/feature stride) are evaluated once.
__C.DEDUP_BOXES = 1. / 16.
# BGR pixel means subtracted from every image, shaped (1, 1, 3) to broadcast over H x W x 3.
__C.PIXEL_MEANS = np.array([[[102.9801, 115.9465, 122.7717]]])
# Seed for numpy and the runtime's RNG, for reproducible runs.
__C.RNG_SEED = 3
# A small number used to avoid division by zero.
__C.EPS = 1e-14
# Repository root.
__C.ROOT_DIR = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
# Datasets and pretrained models (see data/README.md).
__C.DATA_DIR = osp.abspath(osp.join(__C.ROOT_DIR, 'data'))
# Prototxt files.
__C.MODELS_DIR = osp.abspath(osp.join(__C.ROOT_DIR, 'models'))
# MATLAB executable, for the official VOC evaluation code.
__C.MATLAB = 'matlab'
# Outputs go to output/<EXP_DIR>/<imdb name>/.
__C.EXP_DIR = 'default'
# Run NMS on the GPU when the runtime is in GPU mode.
__C.USE_GPU_NMS = True
# Default GPU device id.
__C.GPU_ID = 0
# Project key: RPN anchor scales, multiples of the 16-pixel base box: (8, 16, 32) gives the
# paper's 128^2, 256^2 and 512^2 areas. The paper's Table 8 varies scales and ratios.
__C.ANCHOR_SCALES = (8, 16, 32)
# Project key: RPN anchor aspect ratios (height / width); the paper's 1:2, 1:1, 2:1.
__C.ANCHOR_RATIOS = (0.5, 1.0, 2.0)
# Project keys: when non-empty, the nets' RPN layers are rewritten to these anchors (param_str
# scales/ratios, and 2A / 4A outputs of rpn_cls_score / rpn_bbox_pred) in an adapted copy of the
# prototxt (tools/_common.py), e.g. Table 8's 1 scale x 1 ratio or COCO's 4 scales (4, 8, 16, 32).
__C.RPN_ANCHOR_SCALES = ()
__C.RPN_ANCHOR_RATIOS = ()
# Project key: let cuDNN use TF32 tensor-core math (faster on Ampere and newer, but no longer
# float32-faithful to Caffe); off by default so results match Caffe to float32 rounding.
__C.CUDNN_ALLOW_TF32 = False


class ConfigError(ValueError):
    """A bad configuration override: unknown key, wrong type, value out of range or malformed
    --set list."""


#
# Valid values of the numeric keys: one rule per key, checked whenever a value is set (every
# numeric key has one; floats must also be finite). Each rule is (what is expected, test).
#
def _all(test):
    return lambda values: all(test(v) for v in values)


_AT_LEAST_1 = ('an integer >= 1', lambda v: v >= 1)
_AT_LEAST_0 = ('a number >= 0', lambda v: v >= 0)
_FRACTION = ('a number in [0, 1]', lambda v: 0 <= v <= 1)
_TOP_N = ('an integer >= -1 (-1 or 0: no limit)', lambda v: v >= -1)
_SCALES = ('a non-empty list of integers >= 1 (short sides in pixels)',
           lambda v: len(v) > 0 and _all(lambda x: x >= 1)(v))
_FOUR_WEIGHTS = ('4 numbers >= 0', lambda v: len(v) == 4 and _all(lambda x: x >= 0)(v))
_POSITIVE_LIST = ('a non-empty list of numbers > 0',
                  lambda v: len(v) > 0 and _all(lambda x: x > 0)(v))
_OPTIONAL_POSITIVE_LIST = ('an empty list or numbers > 0', _all(lambda x: x > 0))

VALID_VALUES = {
    'TRAIN.SCALES': _SCALES,
    'TRAIN.MAX_SIZE': _AT_LEAST_1,
    'TRAIN.IMS_PER_BATCH': _AT_LEAST_1,
    'TRAIN.BATCH_SIZE': _AT_LEAST_1,
    'TRAIN.FG_FRACTION': _FRACTION,
    'TRAIN.FG_THRESH': _FRACTION,
    'TRAIN.BG_THRESH_HI': _FRACTION,
    'TRAIN.BG_THRESH_LO': _FRACTION,
    'TRAIN.BBOX_THRESH': _FRACTION,
    'TRAIN.SNAPSHOT_ITERS': ('an integer >= 0 (0: a snapshot only at the end)', lambda v: v >= 0),
    'TRAIN.BBOX_INSIDE_WEIGHTS': _FOUR_WEIGHTS,
    'TRAIN.BBOX_NORMALIZE_MEANS': ('4 numbers', lambda v: len(v) == 4),
    'TRAIN.BBOX_NORMALIZE_STDS': ('4 numbers > 0', lambda v: len(v) == 4 and
                                  _all(lambda x: x > 0)(v)),
    'TRAIN.RPN_POSITIVE_OVERLAP': _FRACTION,
    'TRAIN.RPN_NEGATIVE_OVERLAP': _FRACTION,
    'TRAIN.RPN_FG_FRACTION': _FRACTION,
    'TRAIN.RPN_BATCHSIZE': _AT_LEAST_1,
    'TRAIN.RPN_NMS_THRESH': _FRACTION,
    'TRAIN.RPN_PRE_NMS_TOP_N': _TOP_N,
    'TRAIN.RPN_POST_NMS_TOP_N': _TOP_N,
    'TRAIN.RPN_MIN_SIZE': _AT_LEAST_0,
    'TRAIN.RPN_BBOX_INSIDE_WEIGHTS': _FOUR_WEIGHTS,
    # The release's rule (anchor_target_layer.py): uniform weights, or p for the positives.
    'TRAIN.RPN_POSITIVE_WEIGHT': ('a negative number (uniform weights) or a number in (0, 1)',
                                  lambda v: v < 0 or 0 < v < 1),
    'TRAIN.RPN_LAMBDA': _AT_LEAST_0,
    'TRAIN.ITER_SIZE': ('an integer >= 0 (0: the solver file\'s iter_size)', lambda v: v >= 0),
    'TRAIN.RANKS_PER_UPDATE': ('an integer >= 0 (0: not used)', lambda v: v >= 0),
    'TRAIN.COORD_GRADIENT_SCALE': ('a number >= 0 (1: the loss\'s derivative)', lambda v: v >= 0),
    'TEST.SCALES': _SCALES,
    'TEST.MAX_SIZE': _AT_LEAST_1,
    'TEST.NMS': _FRACTION,
    'TEST.RPN_NMS_THRESH': _FRACTION,
    'TEST.RPN_PRE_NMS_TOP_N': _TOP_N,
    'TEST.RPN_POST_NMS_TOP_N': _TOP_N,
    'TEST.RPN_MIN_SIZE': _AT_LEAST_0,
    'TEST.MAX_PER_IMAGE': _TOP_N,
    # Linear (TEST.SVM) scores may be negative: any finite threshold.
    'TEST.SCORE_THRESH': ('a number', lambda v: True),
    'DEDUP_BOXES': ('a number >= 0 (0: off)', lambda v: v >= 0),
    'PIXEL_MEANS': ('3 numbers (B, G, R)', lambda v: v.size == 3),
    # np.random.seed takes 0 <= seed < 2**32.
    'RNG_SEED': ('an integer in [0, 2**32 - 1]', lambda v: 0 <= v < 2 ** 32),
    'EPS': ('a number > 0', lambda v: v > 0),
    'GPU_ID': ('an integer >= 0', lambda v: v >= 0),
    'ANCHOR_SCALES': _POSITIVE_LIST,
    'ANCHOR_RATIOS': _POSITIVE_LIST,
    'RPN_ANCHOR_SCALES': _OPTIONAL_POSITIVE_LIST,
    'RPN_ANCHOR_RATIOS': _OPTIONAL_POSITIVE_LIST,
}

# Pairs (low, high) of keys whose values must not cross, checked by check_consistency once the
# whole config is loaded (one override may set them one at a time).
ORDERED_PAIRS = (('TRAIN.BG_THRESH_LO', 'TRAIN.BG_THRESH_HI'),
                 ('TRAIN.RPN_NEGATIVE_OVERLAP', 'TRAIN.RPN_POSITIVE_OVERLAP'))


def _check_value(value, dotted, source):
    """Raises ConfigError naming the key when a numeric value is not finite or breaks its
    VALID_VALUES rule."""
    rule = VALID_VALUES.get(dotted)
    numbers = np.asarray(value, dtype=np.float64).ravel() if _is_numeric(value) else None
    if numbers is None:
        return
    if not np.isfinite(numbers).all():
        raise ConfigError('%s: %s expects finite numbers, got %r' % (source, dotted, value))
    if rule is not None and not rule[1](value):
        raise ConfigError('%s: %s expects %s, got %r' % (source, dotted, rule[0], _shown(value)))


def _is_numeric(value):
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float, np.ndarray)):
        return True
    return isinstance(value, (list, tuple)) and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)


def _shown(value):
    return value.tolist() if isinstance(value, np.ndarray) else value


def check_consistency():
    """Raises ConfigError when keys that bound each other (ORDERED_PAIRS) cross; run once the
    config files and --set pairs are all merged."""
    for low, high in ORDERED_PAIRS:
        lo, hi = (_lookup(key.split('.'), 'config') for key in (low, high))
        if lo > hi:
            raise ConfigError('%s (%r) must not exceed %s (%r)' % (low, lo, high, hi))


def get_output_dir(imdb, net=None):
    """Returns output/<EXP_DIR>/<imdb name>[/<net name>] under ROOT_DIR, creating it.

    imdb and net may be objects with a `name` attribute or plain strings.
    """
    path = osp.abspath(osp.join(__C.ROOT_DIR, 'output', __C.EXP_DIR, _name_of(imdb)))
    if net is not None:
        path = osp.join(path, _name_of(net))
    os.makedirs(path, exist_ok=True)
    return path


def _name_of(thing):
    return thing if isinstance(thing, str) else thing.name


def cfg_from_file(filename):
    """Merges a YAML file into cfg. Nothing changes if any key or value in it is bad."""
    try:
        with open(filename) as f:
            loaded = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError('cannot read config file %s: %s' % (filename, e)) from e
    except yaml.YAMLError as e:
        raise ConfigError(_yaml_error(filename, e)) from None
    if loaded is None:
        return
    if not isinstance(loaded, dict):
        raise ConfigError('config file %s: expected a mapping of keys to values at top level, '
                          'got %s' % (filename, type(loaded).__name__))
    merge_into_cfg(loaded, source=filename)


def _yaml_error(filename, e):
    """One line for a YAML error: file:line:column, the problem, and where its context began."""
    mark = getattr(e, 'problem_mark', None)
    where = filename if mark is None else '%s:%d:%d' % (filename, mark.line + 1, mark.column + 1)
    problem = getattr(e, 'problem', None) or ' '.join(str(e).split())
    context = getattr(e, 'context', None)
    context_mark = getattr(e, 'context_mark', None)
    if context and context_mark is not None:
        context = '%s at line %d' % (context, context_mark.line + 1)
    return 'config file %s: not valid YAML: %s%s' % (where, problem,
                                                     ' (%s)' % context if context else '')


def cfg_from_list(cfg_list):
    """Sets keys from a flat list ['TRAIN.SCALES', '(500,)', 'EXP_DIR', 'x', ...] (tools' --set).

    Values are read as Python literals, else as YAML scalars (true, 1e-3), else kept as text;
    string-valued keys always take the text as given. Nothing changes if any pair is bad.
    """
    cfg_list = list(cfg_list)
    if len(cfg_list) % 2 != 0:
        raise ConfigError('--set expects KEY VALUE pairs, got an odd number of items (%d): %s'
                          % (len(cfg_list), ' '.join(map(str, cfg_list))))
    overrides = {}
    for key, text in zip(cfg_list[0::2], cfg_list[1::2]):
        if not isinstance(key, str) or not key:
            raise ConfigError('--set: key %r is not a dotted key name' % (key,))
        parts = key.split('.')
        default = _lookup(parts, source='--set')
        value = _parse_text(text, default)
        node = overrides
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError('--set: %s is set both as a whole and by its subkeys' % key)
        node[parts[-1]] = value
    merge_into_cfg(overrides, source='--set')


def merge_into_cfg(overrides, source='overrides'):
    """Merges a nested dict into cfg after checking every key and value; `source` names where the
    overrides came from in error messages."""
    checked = _checked(overrides, __C, [], source)
    _assign(checked, __C)


def cfg_to_string(config=None):
    """One 'KEY.SUB: value' line per leaf, sorted, for logs."""
    lines = []

    def walk(node, prefix):
        for key in sorted(node):
            value = node[key]
            if isinstance(value, dict):
                walk(value, prefix + key + '.')
            elif isinstance(value, np.ndarray):
                lines.append('%s%s: %s' % (prefix, key, value.tolist()))
            else:
                lines.append('%s%s: %r' % (prefix, key, value))

    walk(__C if config is None else config, '')
    return '\n'.join(lines)


def _lookup(parts, source):
    node = __C
    for i, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError('%s: unknown config key %s' % (source, '.'.join(parts[:i + 1])))
        node = node[part]
    return node


def _parse_text(text, default):
    if not isinstance(text, str):
        return text
    if isinstance(default, str):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
        return value if isinstance(value, str) else text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _checked(overrides, defaults, path, source):
    """Returns overrides converted to the defaults' types, or raises ConfigError."""
    out = {}
    for key, value in overrides.items():
        dotted = '.'.join(path + [str(key)])
        if key not in defaults:
            raise ConfigError('%s: unknown config key %s' % (source, dotted))
        default = defaults[key]
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ConfigError('%s: %s is a group of keys; expected a mapping, got %r (%s)'
                                  % (source, dotted, value, type(value).__name__))
            out[key] = _checked(value, default, path + [str(key)], source)
        else:
            out[key] = _converted(value, default, dotted, source)
            _check_value(out[key], dotted, source)
    return out


def _converted(value, default, dotted, source):
    def bad(expected):
        return ConfigError('%s: %s expects %s, got %r (%s)'
                           % (source, dotted, expected, value, type(value).__name__))

    if isinstance(default, np.ndarray):
        try:
            array = np.array(value, dtype=default.dtype)
        except (TypeError, ValueError):
            raise bad('a numeric array like %s' % default.tolist()) from None
        if array.dtype == object or array.size != default.size:
            raise bad('%d numbers like %s' % (default.size, default.tolist()))
        return array.reshape(default.shape)
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            raise bad('a list')
        kinds = {_kind(x) for x in default}
        if len(kinds) == 1:
            kind = kinds.pop()
            try:
                items = [_converted_scalar(x, kind) for x in value]
            except TypeError:
                raise bad('a list of %s' % kind.__name__) from None
        else:
            items = list(value)
        return type(default)(items)
    try:
        return _converted_scalar(value, _kind(default))
    except TypeError:
        raise bad(_kind(default).__name__) from None


def _kind(value):
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind
    return type(value)


def _converted_scalar(value, kind):
    # bool is an int subclass; keep True out of numeric keys and 1 out of boolean ones.
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        # YAML 1.1 reads 1e-3 (no dot) as a string.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif isinstance(value, kind):
        return value
    raise TypeError(kind)


def _assign(checked, target):
    for key, value in checked.items():
        if isinstance(target[key], dict):
            _assign(value, target[key])
        else:
            target[key] = value
