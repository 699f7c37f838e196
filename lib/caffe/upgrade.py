"""Caffe's upgrades of old net files (upgrade_proto.cpp's UpgradeNetAsNeeded), applied on read in
Caffe's order:

1. V0 nets (2013: `layers { layer { type: "conv" ... } bottom: ... }`, one flat message of every
   type's fields) become V1 nets; a V0 "padding" layer is folded into the pad of the conv or pool
   layer that reads it.
2. V1 data layers (Data, ImageData, WindowData) that still carry their transformation fields
   (scale, mean_file, crop_size, mirror) in their own parameter get them moved to transform_param.
3. V1 `layers {}` with enum types become `layer {}` with type names.
4. The old-style net inputs (`input` with `input_shape` or `input_dim`) become an Input layer.
5. A BatchNorm layer with three param specs (its first definition) gets lr_mult and decay_mult 0
   on each: its blobs are statistics, not learned weights.

Where Caffe logs a V0 field that has no place in the layer's type and goes on, so do we (a
warning); where it stops, we raise CaffeError naming the layer.
"""
import warnings

from .common import CaffeError
from .proto import caffe_pb2

V1 = caffe_pb2.V1LayerParameter

# V1's enum names -> the type names registered today (UpgradeV1LayerType).
_V1_TYPES = {
    'NONE': '', 'ABSVAL': 'AbsVal', 'ACCURACY': 'Accuracy', 'ARGMAX': 'ArgMax', 'BNLL': 'BNLL',
    'CONCAT': 'Concat', 'CONTRASTIVE_LOSS': 'ContrastiveLoss', 'CONVOLUTION': 'Convolution',
    'DATA': 'Data', 'DECONVOLUTION': 'Deconvolution', 'DROPOUT': 'Dropout',
    'DUMMY_DATA': 'DummyData', 'EUCLIDEAN_LOSS': 'EuclideanLoss', 'ELTWISE': 'Eltwise',
    'EXP': 'Exp', 'FLATTEN': 'Flatten', 'HDF5_DATA': 'HDF5Data', 'HDF5_OUTPUT': 'HDF5Output',
    'HINGE_LOSS': 'HingeLoss', 'IM2COL': 'Im2col', 'IMAGE_DATA': 'ImageData',
    'INFOGAIN_LOSS': 'InfogainLoss', 'INNER_PRODUCT': 'InnerProduct', 'LRN': 'LRN',
    'MEMORY_DATA': 'MemoryData', 'MULTINOMIAL_LOGISTIC_LOSS': 'MultinomialLogisticLoss',
    'MVN': 'MVN', 'POOLING': 'Pooling', 'POWER': 'Power', 'RELU': 'ReLU', 'SIGMOID': 'Sigmoid',
    'SIGMOID_CROSS_ENTROPY_LOSS': 'SigmoidCrossEntropyLoss', 'SILENCE': 'Silence',
    'SOFTMAX': 'Softmax', 'SOFTMAX_LOSS': 'SoftmaxWithLoss', 'SPLIT': 'Split', 'SLICE': 'Slice',
    'TANH': 'TanH', 'WINDOW_DATA': 'WindowData', 'THRESHOLD': 'Threshold',
}

# V0's type strings -> V1's enum (UpgradeV0LayerType); any other string is an error.
_V0_TYPES = {
    'accuracy': V1.ACCURACY, 'bnll': V1.BNLL, 'concat': V1.CONCAT, 'conv': V1.CONVOLUTION,
    'data': V1.DATA, 'dropout': V1.DROPOUT, 'euclidean_loss': V1.EUCLIDEAN_LOSS,
    'flatten': V1.FLATTEN, 'hdf5_data': V1.HDF5_DATA, 'hdf5_output': V1.HDF5_OUTPUT,
    'im2col': V1.IM2COL, 'images': V1.IMAGE_DATA, 'infogain_loss': V1.INFOGAIN_LOSS,
    'innerproduct': V1.INNER_PRODUCT, 'lrn': V1.LRN,
    'multinomial_logistic_loss': V1.MULTINOMIAL_LOGISTIC_LOSS, 'pool': V1.POOLING,
    'relu': V1.RELU, 'sigmoid': V1.SIGMOID, 'softmax': V1.SOFTMAX, 'softmax_loss': V1.SOFTMAX_LOSS,
    'split': V1.SPLIT, 'tanh': V1.TANH, 'window_data': V1.WINDOW_DATA,
}

_CONV_IP = {'conv': 'convolution_param', 'innerproduct': 'inner_product_param'}
_CONV_POOL = {'conv': 'convolution_param', 'pool': 'pooling_param'}
_SOURCES = {'data': 'data_param', 'hdf5_data': 'hdf5_data_param', 'images': 'image_data_param',
            'window_data': 'window_data_param'}

# Where each V0 field goes in the V1 layer, by V0 type: field -> (new name, {type: param}).
# A field set on a type not listed is dropped with a warning, as Caffe drops it with an error
# line and carries on. new_num and new_channels have no place in any type (Caffe ignores them).
_V0_ROUTES = {
    'num_output': ('num_output', _CONV_IP),
    'biasterm': ('bias_term', _CONV_IP),
    'weight_filler': ('weight_filler', _CONV_IP),
    'bias_filler': ('bias_filler', _CONV_IP),
    'pad': ('pad', _CONV_POOL),
    'kernelsize': ('kernel_size', _CONV_POOL),
    'stride': ('stride', _CONV_POOL),
    'group': ('group', {'conv': 'convolution_param'}),
    'pool': ('pool', {'pool': 'pooling_param'}),
    'dropout_ratio': ('dropout_ratio', {'dropout': 'dropout_param'}),
    'local_size': ('local_size', {'lrn': 'lrn_param'}),
    'alpha': ('alpha', {'lrn': 'lrn_param'}),
    'beta': ('beta', {'lrn': 'lrn_param'}),
    'k': ('k', {'lrn': 'lrn_param'}),
    'source': ('source', dict(_SOURCES, infogain_loss='infogain_loss_param')),
    'batchsize': ('batch_size', _SOURCES),
    'rand_skip': ('rand_skip', {'data': 'data_param', 'images': 'image_data_param'}),
    'shuffle_images': ('shuffle', {'images': 'image_data_param'}),
    'new_height': ('new_height', {'images': 'image_data_param'}),
    'new_width': ('new_width', {'images': 'image_data_param'}),
    'concat_dim': ('concat_dim', {'concat': 'concat_param'}),
    'det_fg_threshold': ('fg_threshold', {'window_data': 'window_data_param'}),
    'det_bg_threshold': ('bg_threshold', {'window_data': 'window_data_param'}),
    'det_fg_fraction': ('fg_fraction', {'window_data': 'window_data_param'}),
    'det_context_pad': ('context_pad', {'window_data': 'window_data_param'}),
    'det_crop_mode': ('crop_mode', {'window_data': 'window_data_param'}),
    'hdf5_output_param': (None, {'hdf5_output': 'hdf5_output_param'}),
}
# V0 fields that went to transform_param whatever the type.
_V0_TRANSFORM = {'scale': 'scale', 'meanfile': 'mean_file', 'cropsize': 'crop_size',
                 'mirror': 'mirror'}

# V1 data layers whose own parameter held the transformation fields (UpgradeNetDataTransformation).
_DATA_TRANSFORM_PARAMS = {V1.DATA: 'data_param', V1.IMAGE_DATA: 'image_data_param',
                          V1.WINDOW_DATA: 'window_data_param'}
_TRANSFORM_FIELDS = ('scale', 'mean_file', 'crop_size', 'mirror')

# Every *_param message V1 layers carry has the same name and type in LayerParameter.
_V1_PARAM_FIELDS = tuple(f.name for f in V1.DESCRIPTOR.fields
                         if f.name.endswith('_param') and f.message_type is not None)


def net_needs_upgrade(param):
    """True when `param` is in any old form upgrade_net rewrites (Caffe's NetNeedsUpgrade)."""
    return bool(param.layers or param.input or _old_batch_norms(param))


def upgrade_net(param):
    """`param` in the current form (a new message when anything changed; `param` itself when not),
    after each of the module's five upgrades that applies."""
    if not net_needs_upgrade(param):
        return param
    if param.layers and param.layer:
        raise CaffeError('net %r mixes old-style `layers` and new-style `layer` fields; Caffe '
                         'refuses such a file too: write every layer as `layer { type: "..." }`'
                         % param.name)
    new = caffe_pb2.NetParameter()
    new.CopyFrom(param)
    if any(conn.HasField('layer') for conn in new.layers):
        new = _v0_to_v1(new)
    _move_data_transforms(new)
    if new.layers:
        v1_layers = list(new.layers)
        del new.layers[:]
        new.layer.extend(_v1_layer(conn) for conn in v1_layers)
    if new.input:
        _inputs_to_layer(new)
    for layer in _old_batch_norms(new):
        for spec in layer.param:
            spec.lr_mult = 0
            spec.decay_mult = 0
    return new


def upgrade_weights(param):
    """The NetParameter of a weights file (.caffemodel) in the current form. A weights file is
    only a source of layer blobs: Caffe's Net::ToProto writes the net's input names as `input`
    entries without input_dim/input_shape, and Caffe's UpgradeNetInput (run on every file it
    reads) drops an input list that has neither, so such a file loads by its layers alone. (In a
    net definition, such inputs are an error: upgrade_net raises.)"""
    if param.input and not param.input_dim and not param.input_shape:
        stripped = caffe_pb2.NetParameter()
        stripped.CopyFrom(param)
        del stripped.input[:]
        param = stripped
    return upgrade_net(param)


# 1. V0 -> V1 ----------------------------------------------------------------------------------
def _v0_to_v1(net):
    """UpgradeV0Net: only the name, layers, inputs and force_backward carry over."""
    v1 = caffe_pb2.NetParameter()
    if net.HasField('name'):
        v1.name = net.name
    for conn in _fold_padding_layers(net):
        v1.layers.add().CopyFrom(_v0_layer(conn))
    v1.input.extend(net.input)
    v1.input_dim.extend(net.input_dim)
    if net.HasField('force_backward'):
        v1.force_backward = net.force_backward
    return v1


def _fold_padding_layers(net):
    """The V0 layers without their "padding" layers; a padding layer's pad moves to the conv or
    pool layer that reads its output, which then reads the padding layer's input."""
    kept = []
    producer = {name: None for name in net.input}   # blob -> index of the V0 layer writing it
    for i, conn in enumerate(net.layers):
        layer = conn.layer
        if layer.type != 'padding':
            kept.append(caffe_pb2.V1LayerParameter())
            kept[-1].CopyFrom(conn)
        for j, bottom in enumerate(conn.bottom):
            if bottom not in producer:
                raise CaffeError('V0 layer %r reads blob %r, which no earlier layer or input '
                                 'produces' % (layer.name, bottom))
            source = producer[bottom]
            if source is None or net.layers[source].layer.type != 'padding':
                continue
            pad_conn = net.layers[source]
            if layer.type not in ('conv', 'pool'):
                raise CaffeError('V0 padding layer %r feeds layer %r of type %r; only a conv or '
                                 'pool layer can take over its padding'
                                 % (pad_conn.layer.name, layer.name, layer.type))
            if len(conn.bottom) != 1 or len(pad_conn.bottom) != 1 or len(pad_conn.top) != 1:
                raise CaffeError('V0 padding layer %r and the layer %r it feeds must each have '
                                 'one bottom (and the padding layer one top)'
                                 % (pad_conn.layer.name, layer.name))
            kept[-1].layer.pad = pad_conn.layer.pad
            kept[-1].bottom[j] = pad_conn.bottom[0]
        for top in conn.top:
            producer[top] = i
    return kept


def _v0_layer(conn):
    """UpgradeV0LayerParameter: one V0 layer (inside its V1 connection) as a V1 layer."""
    v1 = caffe_pb2.V1LayerParameter()
    v1.bottom.extend(conn.bottom)
    v1.top.extend(conn.top)
    if not conn.HasField('layer'):
        return v1
    v0 = conn.layer
    if v0.HasField('name'):
        v1.name = v0.name
    kind = v0.type
    if v0.HasField('type'):
        if kind not in _V0_TYPES:
            raise CaffeError('V0 layer %r has unknown type %r (known: %s)'
                             % (v0.name, kind, ', '.join(sorted(_V0_TYPES))))
        v1.type = _V0_TYPES[kind]
    v1.blobs.extend(v0.blobs)
    v1.blobs_lr.extend(v0.blobs_lr)
    v1.weight_decay.extend(v0.weight_decay)
    for field, (new_name, by_type) in _V0_ROUTES.items():
        if not v0.HasField(field):
            continue
        if kind not in by_type:
            warnings.warn('V0 layer %r: field %s has no meaning for type %r; dropped (as Caffe '
                          'drops it)' % (v0.name, field, kind), RuntimeWarning, stacklevel=4)
            continue
        target = getattr(v1, by_type[kind])
        value = getattr(v0, field)
        if new_name is None:
            target.CopyFrom(value)
        elif hasattr(getattr(target, new_name), 'append'):   # Convolution's repeated pad, ...
            getattr(target, new_name).append(value)
        elif hasattr(value, 'CopyFrom'):
            getattr(target, new_name).CopyFrom(value)
        else:
            # V0's PoolMethod numbers are PoolingParameter's (MAX 0, AVE 1, STOCHASTIC 2).
            setattr(target, new_name, value)
    for field, new_name in _V0_TRANSFORM.items():
        if v0.HasField(field):
            setattr(v1.transform_param, new_name, getattr(v0, field))
    return v1


# 2. transformation fields of V1 data layers ---------------------------------------------------
def _move_data_transforms(net):
    for conn in net.layers:
        name = _DATA_TRANSFORM_PARAMS.get(conn.type)
        if name is None or not conn.HasField(name):
            continue
        own = getattr(conn, name)
        for field in _TRANSFORM_FIELDS:
            if own.HasField(field):
                setattr(conn.transform_param, field, getattr(own, field))
                own.ClearField(field)


# 3. V1 -> current -----------------------------------------------------------------------------
def _v1_layer(v1):
    """UpgradeV1LayerParameter: a V0 layer still inside is ignored, as Caffe ignores it."""
    layer = caffe_pb2.LayerParameter()
    layer.bottom.extend(v1.bottom)
    layer.top.extend(v1.top)
    if v1.HasField('name'):
        layer.name = v1.name
    layer.include.extend(v1.include)
    layer.exclude.extend(v1.exclude)
    if v1.HasField('type'):
        layer.type = _V1_TYPES[V1.LayerType.Name(v1.type)]
    layer.blobs.extend(v1.blobs)
    n_specs = max(len(v1.param), len(v1.blob_share_mode), len(v1.blobs_lr), len(v1.weight_decay))
    for i in range(n_specs):
        spec = layer.param.add()
        if i < len(v1.param):
            spec.name = v1.param[i]
        if i < len(v1.blob_share_mode):
            # V1's DimCheckMode numbers are ParamSpec's (STRICT 0, PERMISSIVE 1).
            spec.share_mode = v1.blob_share_mode[i]
        if i < len(v1.blobs_lr):
            spec.lr_mult = v1.blobs_lr[i]
        if i < len(v1.weight_decay):
            spec.decay_mult = v1.weight_decay[i]
    layer.loss_weight.extend(v1.loss_weight)
    for field in _V1_PARAM_FIELDS:
        if v1.HasField(field):
            getattr(layer, field).CopyFrom(getattr(v1, field))
    return layer


# 4. net inputs -> Input layer -----------------------------------------------------------------
def _inputs_to_layer(net):
    """UpgradeNetInput, for a net definition: inputs without shapes or dims are an error here
    (Caffe drops them, then stops at the first layer that reads one)."""
    layers = [_input_layer(net)] + list(net.layer)
    del net.layer[:]
    net.layer.extend(layers)
    del net.input[:]
    del net.input_shape[:]
    del net.input_dim[:]


def _input_layer(net):
    layer = caffe_pb2.LayerParameter(name='input', type='Input')
    layer.top.extend(net.input)
    n = len(net.input)
    if net.input_shape:
        if len(net.input_shape) != n:
            raise CaffeError('net %r: %d inputs but %d input_shape entries'
                             % (net.name, n, len(net.input_shape)))
        layer.input_param.shape.extend(net.input_shape)
    else:
        if len(net.input_dim) != 4 * n:
            raise CaffeError('net %r: %d inputs need %d input_dim values, found %d'
                             % (net.name, n, 4 * n, len(net.input_dim)))
        for i in range(n):
            layer.input_param.shape.add().dim.extend(net.input_dim[4 * i:4 * i + 4])
    return layer


# 5. BatchNorm's old param specs ---------------------------------------------------------------
def _old_batch_norms(net):
    return [layer for layer in net.layer if layer.type == 'BatchNorm' and len(layer.param) == 3]
