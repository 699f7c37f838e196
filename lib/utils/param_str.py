"""A Python layer's param_str: the settings its prototxt gives it, read and written here.

A param_str is a YAML mapping such as "'feat_stride': 16" or "{'feat_stride': 16, 'scales':
[8, 16, 32]}". The release's prototxts write tuples as `!!python/tuple [8, 16, 32]`; they are
read as plain sequences without enabling YAML's arbitrary Python constructors.

The project's layers take their settings as the frozen settings classes of lib/core (and
roi_data_layer.minibatch, fast_rcnn.test_settings): a param_str key is a field's name, and a
field the param_str leaves out keeps the class's default. settings_params writes such an object
as param_str values and settings_from_params reads it back, so the tool that writes a prototxt
and the layer that reads it share one spelling.
"""
import dataclasses
import math

import yaml

from caffe import CaffeError


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


def dump_param_str(params):
    """The param_str text of a mapping of names to numbers, booleans, strings and lists of them,
    in the mapping's order: "{'feat_stride': 16, 'scales': [8, 16, 32], 'no_nms': false}"."""
    return _dump(dict(params))


def _dump(value):
    if isinstance(value, dict):
        return '{%s}' % ', '.join('%s: %s' % (_dump(k), _dump(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return '[%s]' % ', '.join(_dump(v) for v in value)
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError('param_str values must be finite, got %r' % value)
        text = repr(value)
        # YAML 1.1 reads 1e-05 (no dot) as a string.
        if 'e' in text and '.' not in text:
            text = text.replace('e', '.0e')
        return text
    if isinstance(value, str):
        return "'%s'" % value.replace("'", "''")
    raise TypeError('cannot write %r (%s) into a param_str' % (value, type(value).__name__))


def read_params(text, known, required=(), where='param_str'):
    """The mapping a param_str holds, with `known` (every accepted key and its default) filling
    in the keys it leaves out. ValueError, naming `where`, for malformed YAML, unknown keys or
    missing required keys."""
    try:
        params = load_param_str(text)
    except ValueError as e:
        raise ValueError('%s: %s' % (where, e)) from None
    unknown = sorted(set(params) - set(known) - set(required))
    if unknown:
        raise ValueError('%s: unknown param_str key(s) %s; accepted: %s'
                         % (where, ', '.join(map(str, unknown)),
                            ', '.join(sorted(set(known) | set(required)))))
    missing = [k for k in required if k not in params]
    if missing:
        raise ValueError('%s: param_str %r lacks required key(s) %s'
                         % (where, text, ', '.join(missing)))
    out = dict(known)
    out.update(params)
    return out


def layer_name(layer):
    """How errors name a layer: its type and name."""
    return '%s layer %r' % (type(layer).__name__, layer.name)


def layer_params(layer, known, required=()):
    """read_params of the layer's param_str; CaffeError naming the layer."""
    try:
        return read_params(layer.param_str or '', known, required, layer_name(layer))
    except ValueError as e:
        raise CaffeError(str(e)) from None


def param_error(layer, message):
    """A CaffeError about the layer's param_str, naming the layer."""
    return CaffeError('%s: %s' % (layer_name(layer), message))


def settings_params(settings, fields=None):
    """A settings object (a frozen dataclass) as param_str values: {field: value}, tuples as
    lists, the fields of a nested settings object in line with the others. fields: the names to
    keep (default: all)."""
    out = {}
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if dataclasses.is_dataclass(value):
            out.update(settings_params(value))
        else:
            out[field.name] = list(value) if isinstance(value, tuple) else value
    if fields is not None:
        out = {name: out[name] for name in fields}
    return out


def settings_keys(cls, fields=None):
    """The param_str keys settings_params writes for a settings class, with the defaults."""
    return settings_params(cls(), fields)


def settings_from_params(cls, params, where):
    """A cls (a frozen dataclass of settings) from param_str values: each field (and each field
    of a nested settings object) from the key of its name, else its default. Values are checked
    against the field's type (a list for a tuple, of the default's item type; an integer for a
    float is fine); ValueError, naming `where` and the key, for another type or a value cls
    refuses."""
    values = {}
    for field in dataclasses.fields(cls):
        default = _default(field)
        if dataclasses.is_dataclass(default):
            values[field.name] = settings_from_params(type(default), params, where)
        elif field.name in params:
            kind = field.type if field.type in (bool, int, float, str, tuple) else type(default)
            values[field.name] = _typed(params[field.name], kind, default, field.name, where)
    try:
        return cls(**values)
    except ValueError as e:
        raise ValueError('%s: %s' % (where, e)) from None


def _default(field):
    if field.default is not dataclasses.MISSING:
        return field.default
    return field.default_factory()


def _typed(value, kind, default, key, where):
    def bad(expected):
        return ValueError('%s: param_str key %r should be %s, got %r'
                          % (where, key, expected, value))

    if kind is tuple:
        if not isinstance(value, (list, tuple)):
            raise bad('a list')
        if not default:
            return tuple(value)
        return tuple(_typed(v, type(default[0]), default[0], key, where) for v in value)
    if kind is bool:
        if not isinstance(value, bool):
            raise bad('true or false')
        return value
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value):
            raise bad('a number')
        if kind is int and not isinstance(value, int):
            raise bad('an integer')
        return float(value) if kind is float else value
    if kind is str and not isinstance(value, str):
        raise bad('a string')
    return value
