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
forward and backward directly, as in pycaffe.
"""
from . import common
from .blob import BlobVec
from .common import CaffeError

TRAIN, TEST = 0, 1

LAYERS = {}


def register(type_name):
    def wrap(cls):
        if type_name in LAYERS:
            raise RuntimeError('layer type %r registered twice' % type_name)
        cls.type = type_name
        LAYERS[type_name] = cls
        return cls
    return wrap


def layer_class(layer_param):
    from . import layers  # noqa: F401  (registers the built-in types)
    if layer_param.type == 'Python':
        from .layers.python_layer import python_layer_class
        return python_layer_class(layer_param)
    try:
        return LAYERS[layer_param.type]
    except KeyError:
        raise CaffeError('unknown layer type %r (layer %r); known types: %s'
                         % (layer_param.type, layer_param.name, ', '.join(sorted(LAYERS))))


class Layer:
    type = 'Layer'
    # Caffe's loss layers weigh their first top by 1 unless the prototxt says otherwise.
    default_loss_weight = 0.0
    # Bottom indices that carry no gradient (labels, rois, loss weights): their diffs are zeroed.
    non_differentiable_bottoms = ()

    def __init__(self, layer_param=None, phase=TRAIN):
        self.layer_param = layer_param
        self.phase = phase
        self.blobs = BlobVec()
        self.param_propagate_down = []
        has_python = layer_param is not None and layer_param.HasField('python_param')
        self.param_str = layer_param.python_param.param_str if has_python else ''

    @property
    def name(self):
        return self.layer_param.name if self.layer_param is not None else ''

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
