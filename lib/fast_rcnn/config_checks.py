"""The checks and conversions of config values (fast_rcnn.config): each key's valid values, the
keys that bound each other, the conversion of an override to its default's type, and the errors
that name the key, the file or --set and what was expected."""
import ast

import numpy as np
import yaml


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
}

# Keys of earlier versions, and what replaced them (named in the unknown-key error).
RENAMED = {'RPN_ANCHOR_SCALES': 'ANCHOR_SCALES', 'RPN_ANCHOR_RATIOS': 'ANCHOR_RATIOS'}

# Pairs (low, high) of keys whose values must not cross, checked by check_consistency once the
# whole config is loaded (one override may set them one at a time).
ORDERED_PAIRS = (('TRAIN.BG_THRESH_LO', 'TRAIN.BG_THRESH_HI'),
                 ('TRAIN.RPN_NEGATIVE_OVERLAP', 'TRAIN.RPN_POSITIVE_OVERLAP'))


def check_value(value, dotted, source):
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


def yaml_error(filename, e):
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


def unknown_key(source, dotted):
    renamed = RENAMED.get(dotted)
    return ConfigError('%s: unknown config key %s%s' % (
        source, dotted, ' (it is %s now)' % renamed if renamed else ''))


def parse_text(text, default):
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


def checked_overrides(overrides, defaults, path, source):
    """Returns overrides converted to the defaults' types, or raises ConfigError."""
    out = {}
    for key, value in overrides.items():
        dotted = '.'.join(path + [str(key)])
        if key not in defaults:
            raise unknown_key(source, dotted)
        default = defaults[key]
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ConfigError('%s: %s is a group of keys; expected a mapping, got %r (%s)'
                                  % (source, dotted, value, type(value).__name__))
            out[key] = checked_overrides(value, default, path + [str(key)], source)
        else:
            out[key] = _converted(value, default, dotted, source)
            check_value(out[key], dotted, source)
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
