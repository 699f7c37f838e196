"""Caffe's upgrade rules for old files (upgrade_proto.cpp): V1 `layers {}` become `layer {}`, and
the old-style net inputs (`input` with `input_shape` or `input_dim`) become an Input layer."""
from .common import CaffeError
from .proto import caffe_pb2

_V1_TYPES = {
    'ABSVAL': 'AbsVal', 'ACCURACY': 'Accuracy', 'ARGMAX': 'ArgMax', 'BNLL': 'BNLL',
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

# *_param fields that V1LayerParameter and LayerParameter share (same message types).
_V1_PARAM_FIELDS = ('accuracy_param', 'concat_param', 'convolution_param', 'dropout_param',
                    'dummy_data_param', 'eltwise_param', 'inner_product_param', 'lrn_param',
                    'pooling_param', 'relu_param', 'softmax_param', 'transform_param',
                    'loss_param')


def _upgrade_v1_layer(v1):
    layer = caffe_pb2.LayerParameter()
    layer.name = v1.name
    type_name = caffe_pb2.V1LayerParameter.LayerType.Name(v1.type)
    layer.type = _V1_TYPES.get(type_name, type_name)
    layer.bottom.extend(v1.bottom)
    layer.top.extend(v1.top)
    layer.include.extend(v1.include)
    layer.exclude.extend(v1.exclude)
    layer.blobs.extend(v1.blobs)
    layer.loss_weight.extend(v1.loss_weight)
    n_specs = max(len(v1.param), len(v1.blob_share_mode), len(v1.blobs_lr), len(v1.weight_decay))
    for i in range(n_specs):
        spec = layer.param.add()
        if i < len(v1.param):
            spec.name = v1.param[i]
        if i < len(v1.blob_share_mode):
            spec.share_mode = v1.blob_share_mode[i]
        if i < len(v1.blobs_lr):
            spec.lr_mult = v1.blobs_lr[i]
        if i < len(v1.weight_decay):
            spec.decay_mult = v1.weight_decay[i]
    for field in _V1_PARAM_FIELDS:
        if v1.HasField(field):
            getattr(layer, field).CopyFrom(getattr(v1, field))
    return layer


def upgrade_net(param):
    """Returns a NetParameter in the current form: V1 `layers` become `layer`, and the old-style
    `input`/`input_shape`/`input_dim` fields become an Input layer at the front."""
    if not param.layers and not param.input:
        return param
    if param.layers and param.layer:
        raise CaffeError('net %r mixes old-style `layers` and new-style `layer` fields'
                         % param.name)
    new = caffe_pb2.NetParameter()
    new.CopyFrom(param)
    del new.layer[:]
    del new.layers[:]
    del new.input[:]
    del new.input_shape[:]
    del new.input_dim[:]
    if param.input:
        new.layer.append(_input_layer(param))
    if param.layers:
        new.layer.extend(_upgrade_v1_layer(v1) for v1 in param.layers)
    else:
        new.layer.extend(param.layer)
    return new


def _input_layer(param):
    layer = caffe_pb2.LayerParameter(name='input', type='Input')
    layer.top.extend(param.input)
    n = len(param.input)
    if param.input_shape:
        if len(param.input_shape) != n:
            raise CaffeError('net %r: %d inputs but %d input_shape entries'
                             % (param.name, n, len(param.input_shape)))
        layer.input_param.shape.extend(param.input_shape)
    else:
        if len(param.input_dim) != 4 * n:
            raise CaffeError('net %r: %d inputs need %d input_dim values, found %d'
                             % (param.name, n, 4 * n, len(param.input_dim)))
        for i in range(n):
            layer.input_param.shape.add().dim.extend(param.input_dim[4 * i:4 * i + 4])
    return layer


def upgrade_weights(param):
    """The NetParameter of a weights file (.caffemodel) in the current form. A weights file is
    only a source of layer blobs: Caffe's Net::ToProto writes the net's input names as `input`
    entries without input_dim/input_shape, and Caffe's UpgradeNetInput (run on every file it
    reads) drops an input list that has neither, so such a file loads by its layers alone."""
    if param.input and not param.input_dim and not param.input_shape:
        stripped = caffe_pb2.NetParameter()
        stripped.CopyFrom(param)
        del stripped.input[:]
        param = stripped
    return upgrade_net(param)
