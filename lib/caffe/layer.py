"""Layer base class and the registry of layer types.

Every layer file defines one class with Caffe's verbs: setup (LayerSetUp), reshape, forward_cpu,
backward_cpu, forward_gpu, backward_gpu, and registers it by its prototxt type name with
@register('TypeName'). The Net knows layers only through this registry.

Conventions every layer keeps (they are Caffe's):
- bottom and top are lists of Blob; a layer writes top data in forward and bottom diffs in
  backward, only where propagate_down[i] is true.
- Parameter gradients ACCUMULATE into self.blobs[i].diff (the solver clears them each iteration;
  iter_size and shared parameters rely on this), and are computed only where
  self.param_propagate_down[i] is true (lr_mult 0 turns it off).
- In-place use (top[0] is bottom[0]) must work for layers Caffe allows it on (ReLU, Dropout).

Python layers (type "Python") subclass this same class as caffe.Layer and override setup, reshape,
forward and backward directly, as in pycaffe. The "Python" type is registered like any other: its
creator (layers/python_layer.py) imports the class python_param names.

A layer class may declare its blob counts (exact_num_bottom_blobs, min_top_blobs, ..., or the
names `bottoms`/`tops`); the Net checks them before setup (check_blob_counts).
"""
import operator

import numpy as np

from . import common
from .blob import BlobVec, lasting_zeros
from .common import CaffeError


class Phase(int):
    """caffe.TRAIN and caffe.TEST, and every layer's `phase`: Caffe's Phase as the
    caffe-fast-rcnn fork's pycaffe shows it, a boost.python enum. It is an int (equal to, and
    hashing like, 0 and 1: caffe.proto's values) whose str() is its name, so the release's
    Python layers can look up `cfg[str(self.phase)]` (cfg.TRAIN / cfg.TEST). Phase(0) and
    Phase(1) are the two instances; anything else is an error."""
    names = {}    # boost.python's enum dicts: name -> member, value -> member
    values = {}

    def __new__(cls, value):
        try:
            return cls.values[operator.index(value)]
        except (KeyError, TypeError, ValueError):
            raise ValueError('a phase is 0 (TRAIN) or 1 (TEST), not %r' % (value,)) from None

    @property
    def name(self):
        return 'TEST' if self else 'TRAIN'

    def __str__(self):
        return self.name

    def __repr__(self):
        return 'caffe.Phase.%s' % self.name


for _value, _name in enumerate(('TRAIN', 'TEST')):
    _member = int.__new__(Phase, _value)
    Phase.values[_value] = Phase.names[_name] = _member
    setattr(Phase, _name, _member)
TRAIN, TEST = Phase.TRAIN, Phase.TEST

# Caffe's LayerRegistry: type name -> creator. A creator takes the LayerParameter and returns the
# Layer class to instantiate (most types have one class; "Python" finds the user's class).
_CREATORS = {}
# The built-in types registered by class (@register), for tools that walk the layer classes.
LAYERS = {}


def register_creator(type_name, creator):
    if type_name in _CREATORS:
        raise RuntimeError('layer type %r registered twice' % type_name)
    _CREATORS[type_name] = creator


def register(type_name):
    def wrap(cls):
        register_creator(type_name, lambda layer_param: cls)
        cls.type = type_name
        LAYERS[type_name] = cls
        return cls
    return wrap


def _load_builtin_types():
    from . import layers  # noqa: F401  (importing the package registers every built-in type)


def layer_class(layer_param):
    _load_builtin_types()
    try:
        creator = _CREATORS[layer_param.type]
    except KeyError:
        raise CaffeError('unknown layer type %r (layer %r); known types: %s'
                         % (layer_param.type, layer_param.name, ', '.join(layer_type_list())))
    return creator(layer_param)


def layer_type_list():
    """The registered layer type names, sorted (pycaffe's caffe.layer_type_list(); Caffe's
    registry is a std::map, so its list comes out sorted)."""
    _load_builtin_types()
    return sorted(_CREATORS)


def _describe_count(exact, low, high):
    if exact is not None:
        return str(exact)
    if low is not None and high is not None:
        return '%d to %d' % (low, high) if high > low else str(low)
    if low is not None:
        return 'at least %d' % low
    return 'at most %d' % high


def count_error(layer, kind, count, expected, names=None):
    """The error for a layer given the wrong number of bottom/top blobs; `expected` is a phrase
    such as '2', '2 or 4' or 'at least 1'."""
    listed = ' (%s)' % ', '.join(names) if names else ''
    return CaffeError('%s layer %r: takes %s %s blob(s)%s, got %d'
                      % (layer.type, layer.name, expected, kind, listed, count))


class Layer:
    # Every subclass that is not a registered built-in type is a Python layer, whose type Caffe's
    # PythonLayer reports as "Python" (@register overrides this for the built-in types).
    type = 'Python'
    # Caffe's loss layers weigh their first top by 1 unless the prototxt says otherwise.
    default_loss_weight = 0.0
    # Bottom indices that carry no gradient (labels, rois, loss weights): their diffs are zeroed.
    non_differentiable_bottoms = ()

    # Blob counts the Net checks before setup, as Caffe's Layer::CheckBlobCounts does with
    # ExactNumBottomBlobs(), MinBottomBlobs(), ... (None: no constraint). `bottoms`/`tops`, a
    # tuple of names, fixes the exact count and names the blobs in the error.
    bottoms = None
    tops = None
    exact_num_bottom_blobs = None
    min_bottom_blobs = None
    max_bottom_blobs = None
    exact_num_top_blobs = None
    min_top_blobs = None
    max_top_blobs = None
    equal_num_bottom_top_blobs = False
    # Caffe's AutoTopBlobs(): the Net adds the tops the layer needs where its definition names
    # fewer (LossLayer's, so a loss layer may be written without a top).
    auto_top_blobs = False

    # Caffe's layer_need_backward: the Net sets it False for a layer whose backward it never runs
    # (it leads to no loss, or nothing below it wants a gradient: every layer of a deploy net).
    # Such a layer keeps nothing for backward, so a test net holds no blob-sized state beyond its
    # blobs (Pooling's and ROIPooling's argmax, LRN's scale, an in-place Scale's input), which
    # Caffe's layers keep anyway.
    need_backward = True

    def __init__(self, layer_param=None, phase=TRAIN):
        self.layer_param = layer_param
        self.phase = Phase(phase)
        self.blobs = BlobVec()
        self.param_propagate_down = []
        has_python = layer_param is not None and layer_param.HasField('python_param')
        self.param_str = layer_param.python_param.param_str if has_python else ''
        if layer_param is not None and len(layer_param.blobs):
            # Caffe's Layer constructor: parameter blobs written into the LayerParameter itself
            # are the layer's own, and setup then skips its fillers.
            from .io import blob_values
            for proto in layer_param.blobs:
                values = blob_values(proto)
                self.blobs.add_blob(*values.shape)
                self.blobs[-1].data[...] = values

    # The caffe-fast-rcnn fork's PythonLayer sets `param_str_` before setup; BVLC Caffe renamed
    # it `param_str`. One value under both names: the release's layers read the first.
    @property
    def param_str_(self):
        return self.param_str

    @param_str_.setter
    def param_str_(self, value):
        self.param_str = value

    @property
    def name(self):
        return self.layer_param.name if self.layer_param is not None else ''

    def check_blob_counts(self, bottom, top):
        """Raises CaffeError naming the layer and its type when the bottom or top count breaks
        the class's declared counts."""
        for kind, blobs, names, exact, low, high in (
                ('bottom', bottom, self.bottoms, self.exact_num_bottom_blobs,
                 self.min_bottom_blobs, self.max_bottom_blobs),
                ('top', top, self.tops, self.exact_num_top_blobs,
                 self.min_top_blobs, self.max_top_blobs)):
            if names is not None:
                exact = len(names)
            n = len(blobs)
            if ((exact is not None and n != exact) or (low is not None and n < low)
                    or (high is not None and n > high)):
                raise count_error(self, kind, n, _describe_count(exact, low, high), names)
        if self.equal_num_bottom_top_blobs and len(bottom) != len(top):
            raise CaffeError('%s layer %r: takes as many top blobs as bottom blobs (%d), got %d'
                             % (self.type, self.name, len(bottom), len(top)))

    def kept_array(self, name, shape, dtype=np.float32):
        """The array this layer keeps under `name` for its backward, made again only when the
        shape changes."""
        kept = self.__dict__.get(name)
        if kept is None or kept.shape != tuple(shape) or kept.dtype != dtype:
            kept = lasting_zeros(tuple(shape), dtype)
            setattr(self, name, kept)
        return kept

    def kept_for_backward(self, name):
        """What forward kept under `name`; a clear error where forward kept nothing because the
        net never runs this layer's backward."""
        kept = self.__dict__.get(name)
        if kept is None:
            raise CaffeError('%s layer %r: backward needs the %s its forward keeps, and it kept '
                             'none: its net runs no backward through it (set force_backward: '
                             'true in the net to have one)' % (self.type, self.name, name))
        return kept

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        if common.mode() == common.GPU:
            self.forward_gpu(bottom, top)
        else:
            self.forward_cpu(bottom, top)

    def backward(self, top, propagate_down, bottom):
        if common.mode() == common.GPU:
            self.backward_gpu(top, propagate_down, bottom)
        else:
            self.backward_cpu(top, propagate_down, bottom)

    def forward_cpu(self, bottom, top):
        raise NotImplementedError('%s layer has no CPU forward' % self.type)

    def backward_cpu(self, top, propagate_down, bottom):
        raise NotImplementedError('%s layer has no CPU backward' % self.type)

    # Until a layer has its own kernels, the GPU path runs the CPU code on host copies.
    def forward_gpu(self, bottom, top):
        self.forward_cpu(bottom, top)

    def backward_gpu(self, top, propagate_down, bottom):
        self.backward_cpu(top, propagate_down, bottom)

    def __repr__(self):
        return '<%s layer %r>' % (self.type, self.name)


class NoBackwardLayer(Layer):
    """A layer with no gradient to send: data sources and outputs, ArgMax, Parameter (whose top
    shares the parameter's diff). Caffe's Backward_cpu and Backward_gpu of these types do
    nothing."""

    def backward_cpu(self, top, propagate_down, bottom):
        pass

    def backward_gpu(self, top, propagate_down, bottom):
        pass


class PasslessLayer(NoBackwardLayer):
    """A layer whose passes compute nothing: Input (the caller fills the tops on the host; they
    move to the device when a layer reads them), Flatten and Reshape (reshape makes the top share
    the bottom's buffers, device copies included)."""

    def forward_cpu(self, bottom, top):
        pass

    def forward_gpu(self, bottom, top):
        pass
