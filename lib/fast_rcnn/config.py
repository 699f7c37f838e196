"""Faster R-CNN configuration: one easydict `cfg` with the release's keys and defaults.

Defaults live here and are not edited per experiment. An experiment overrides them with a YAML
file (`cfg_from_file`, tools' --cfg) and with KEY VALUE pairs (`cfg_from_list`, tools' --set).
Both refuse keys that do not exist here and values whose type does not match the default, naming
the dotted key, so a typo cannot silently leave a default in force. Every key an override sets is
remembered (keys_set): where a net's prototxt already holds a setting, the tools keep it unless
the run sets the key (fast_rcnn.experiment).

Only the tools read cfg, once, at their start, into one experiment value (fast_rcnn.experiment)
that they pass down and write into the prototxt copies they run; the project's library code and
Python layers never read it. It keeps every key of the release's config, so the release's own
Python layers (which read `cfg[str(self.phase)]`) still find theirs.

    from fast_rcnn.config import cfg
"""

import copy

import numpy as np
import yaml
from easydict import EasyDict as edict

from fast_rcnn.config_checks import (ORDERED_PAIRS, ConfigError, checked_overrides,
                                     parse_text, unknown_key, yaml_error)
from utils import paths

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
# The release's switch for a minibatch process; unused here (the RoI data layer always reads the
# next minibatch's images in a thread, every random draw staying in the training thread).
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
# Project key: how proposals are made at test time, for the paper's Table 2 ablations: 'rpn' the
# full RPN, 'no_cls' proposals drawn at random instead of ranked by score, 'no_reg' the anchors
# themselves (core.proposals.RPN_MODES).
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
__C.ROOT_DIR = paths.ROOT_DIR
# Datasets and pretrained models (see data/README.md).
__C.DATA_DIR = paths.DATA_DIR
# Prototxt files.
__C.MODELS_DIR = paths.MODELS_DIR
# MATLAB executable, for the official VOC evaluation code.
__C.MATLAB = 'matlab'
# Outputs go to output/<EXP_DIR>/<imdb name>/.
__C.EXP_DIR = paths.DEFAULT_EXP_DIR
# Run NMS on the GPU when the runtime is in GPU mode.
__C.USE_GPU_NMS = True
# Default GPU device id.
__C.GPU_ID = 0
# Project keys: the RPN's anchors, scales as multiples of the 16-pixel base box ((8, 16, 32):
# the paper's 128^2, 256^2 and 512^2 areas) and aspect ratios (height / width; the paper's 1:2,
# 1:1, 2:1). A run that sets them has the nets' RPN layers rewritten to these anchors (param_str
# scales/ratios, and the 2A / 4A outputs of rpn_cls_score / rpn_bbox_pred) in the prototxt copy
# it runs, e.g. Table 8's 1 scale x 1 ratio or COCO's 4 scales (4, 8, 16, 32); otherwise a net
# keeps the anchors its param_str names (these where it names none).
__C.ANCHOR_SCALES = (8, 16, 32)
__C.ANCHOR_RATIOS = (0.5, 1.0, 2.0)
# Project key: let cuDNN use TF32 tensor-core math (faster on Ampere and newer, but no longer
# float32-faithful to Caffe); off by default so results match Caffe to float32 rounding.
__C.CUDNN_ALLOW_TF32 = False


# The dotted keys that overrides have set (keys_set).
_set_keys = set()


def check_consistency():
    """Raises ConfigError when keys that bound each other (ORDERED_PAIRS) cross; run once the
    config files and --set pairs are all merged."""
    for low, high in ORDERED_PAIRS:
        lo, hi = (_lookup(key.split('.'), 'config') for key in (low, high))
        if lo > hi:
            raise ConfigError('%s (%r) must not exceed %s (%r)' % (low, lo, high, hi))


def get_output_dir(imdb, net=None):
    """Returns output/<EXP_DIR>/<imdb name>[/<net name>] under ROOT_DIR, creating it (the
    release's function). imdb and net may be objects with a `name` attribute or plain strings.
    """
    return paths.output_dir(imdb, net, __C.EXP_DIR, __C.ROOT_DIR)


def cfg_from_file(filename):
    """Merges a YAML file into cfg. Nothing changes if any key or value in it is bad."""
    loaded = read_config_file(filename)
    if loaded:
        merge_into_cfg(loaded, source=filename)


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
        value = parse_text(text, default)
        node = overrides
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError('--set: %s is set both as a whole and by its subkeys' % key)
        node[parts[-1]] = value
    merge_into_cfg(overrides, source='--set')


def merge_into_cfg(overrides, source='overrides'):
    """Merges a nested dict into cfg after checking every key and value; `source` names where the
    overrides came from in error messages. The keys are remembered as set (keys_set)."""
    checked = checked_overrides(overrides, __C, [], source)
    _assign(checked, __C)
    _set_keys.update(_dotted_keys(checked))


def keys_set():
    """The dotted keys (e.g. 'TRAIN.SCALES') that the config files, a tool's defaults and --set
    pairs merged so far have set, whatever their values."""
    return frozenset(_set_keys)


def merged_config(overrides, source='overrides', config=None, keys=None):
    """(a copy of config with the nested dict `overrides` merged, the keys set in it): what cfg
    and keys_set would be after merge_into_cfg, leaving them as they are. config, keys: another
    config made so and its keys (default: cfg and keys_set())."""
    checked = checked_overrides(overrides, __C, [], source)
    config = copy.deepcopy(__C if config is None else config)
    _assign(checked, config)
    return config, (keys_set() if keys is None else keys) | _dotted_keys(checked)


def read_config_file(filename):
    """The nested dict of keys a YAML config file sets (checked as cfg_from_file checks it),
    for merged_config."""
    try:
        with open(filename) as f:
            loaded = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError('cannot read config file %s: %s' % (filename, e)) from e
    except yaml.YAMLError as e:
        raise ConfigError(yaml_error(filename, e)) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError('config file %s: expected a mapping of keys to values at top level, '
                          'got %s' % (filename, type(loaded).__name__))
    checked_overrides(loaded, __C, [], filename)
    return loaded


def reset_cfg():
    """Every key back to its default, none set (for tests of the tools' edge)."""
    _assign(_checked_defaults(_DEFAULTS), __C)
    _set_keys.clear()


def _checked_defaults(node):
    return {k: _checked_defaults(v) if isinstance(v, dict) else copy.deepcopy(v)
            for k, v in node.items()}


def _dotted_keys(checked, prefix=''):
    keys = set()
    for key, value in checked.items():
        if isinstance(value, dict):
            keys |= _dotted_keys(value, prefix + key + '.')
        else:
            keys.add(prefix + key)
    return frozenset(keys)


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
            raise unknown_key(source, '.'.join(parts[:i + 1]))
        node = node[part]
    return node


def _assign(checked, target):
    for key, value in checked.items():
        if isinstance(target[key], dict):
            _assign(value, target[key])
        else:
            target[key] = value


_DEFAULTS = copy.deepcopy(__C)
