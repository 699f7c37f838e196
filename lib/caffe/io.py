"""Reading and writing Caffe's files: text .prototxt, binary .caffemodel/.solverstate, and the
upgrade of old-style (V1 `layers {}` and `input:`) nets to the current LayerParameter form."""
import os
import tempfile

import numpy as np
from google.protobuf import text_format
from google.protobuf.message import DecodeError

from .common import CaffeError
from .proto import caffe_pb2


def read_prototxt(path, message):
    """Parses a text-format file into `message` (a protobuf message instance) and returns it."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise CaffeError('cannot read %s: %s' % (path, e.strerror or e))
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as e:
        # ParseError carries the line and column; its text already starts with "line:col : ".
        line, col = e.GetLine(), e.GetColumn()
        msg = str(e)
        if line is not None and msg.startswith('%d:%d' % (line, col)):
            msg = msg.split(':', 2)[-1].strip()
        where = '%s:%s:%s' % (path, line, col) if line is not None else path
        raise CaffeError('%s: syntax error in %s: %s'
                         % (where, message.DESCRIPTOR.name, msg))
    return message


def read_binary(path, message, what='file'):
    """Parses a binary protobuf file (.caffemodel, .solverstate) into `message`."""
    if not os.path.isfile(path):
        raise CaffeError('%s %s not found' % (what, path))
    with open(path, 'rb') as f:
        data = f.read()
    if not data:
        raise CaffeError('%s %s is empty' % (what, path))
    try:
        message.ParseFromString(data)
    except (DecodeError, RuntimeError) as e:
        raise CaffeError('%s %s is not a valid %s (truncated or another format?): %s'
                         % (what, path, message.DESCRIPTOR.name, e))
    return message


def write_binary(path, message):
    """Writes a message atomically: a temporary file in the same folder, then a rename, so a
    crash never leaves a half-written file under the final name."""
    atomic_write(path, message.SerializeToString())


def atomic_write(path, data):
    """Writes path so that readers see the old file or the whole new one, never a part: into a
    temporary file in the same folder, synced, then renamed over path (folders are made).
    data: bytes, str (written as UTF-8), or a function given the open binary file to write to.
    The temporary file is removed when anything fails."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(path) + '.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# Blobs <-> arrays ------------------------------------------------------------------------------

def blobproto_shape(proto):
    if proto.HasField('shape'):
        return tuple(int(d) for d in proto.shape.dim)
    if proto.num or proto.channels or proto.height or proto.width:
        return (proto.num, proto.channels, proto.height, proto.width)
    return (len(proto.data) or len(proto.double_data),)


def blobproto_to_array(proto, return_diff=False):
    shape = blobproto_shape(proto)
    if return_diff:
        values = proto.double_diff if len(proto.double_diff) else proto.diff
    else:
        values = proto.double_data if len(proto.double_data) else proto.data
    arr = np.asarray(values, dtype=np.float32)
    if arr.size != int(np.prod(shape, dtype=np.int64)):
        raise CaffeError('blob of shape %s holds %d values' % (shape, arr.size))
    return arr.reshape(shape)


def array_to_blobproto(arr, diff=None):
    proto = caffe_pb2.BlobProto()
    proto.shape.dim.extend(arr.shape)
    proto.data.extend(np.asarray(arr, dtype=np.float32).ravel().tolist())
    if diff is not None:
        proto.diff.extend(np.asarray(diff, dtype=np.float32).ravel().tolist())
    return proto


def legacy_shape_matches(proto, shape):
    """Caffe accepts a legacy 4-D blob (num, channels, height, width) for a blob of fewer axes
    when the shapes agree after padding the blob's shape with leading 1s."""
    if proto.HasField('shape') or len(shape) > 4:
        return False
    padded = (1,) * (4 - len(shape)) + tuple(shape)
    return padded == (proto.num, proto.channels, proto.height, proto.width)


# Upgrades ---------------------------------------------------------------------------------------

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
