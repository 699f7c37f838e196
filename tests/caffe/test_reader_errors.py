"""What the readers of Caffe's files say about broken files (the cases fuzzing found, written
out): one clear CaffeError naming the file and what is wrong, and nothing changed when a read
fails half-way (a net's weights, a solver's state)."""
import numpy as np
import pytest
from google.protobuf import text_format

import caffe
from caffe import io
from caffe.blob import Blob, check_shape
from caffe.proto import caffe_pb2

NET = '''name: "two"
input: "x" input_shape { dim: 1 dim: 3 }
layer { name: "a" type: "InnerProduct" bottom: "x" top: "a" inner_product_param { num_output: 2 } }
layer { name: "b" type: "InnerProduct" bottom: "a" top: "b" inner_product_param { num_output: 2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "b" bottom: "label" top: "loss"
        include { phase: TRAIN } }
'''
TRAIN_INPUT = 'input: "label" input_shape { dim: 1 }\n'


def write(path, data):
    mode = 'wb' if isinstance(data, bytes) else 'w'
    with open(path, mode) as f:
        f.write(data)
    return str(path)


def blob_proto(shape=None, legacy=None, values=(), double=False):
    proto = caffe_pb2.BlobProto()
    if shape is not None:
        proto.shape.dim.extend(shape)
    if legacy is not None:
        proto.num, proto.channels, proto.height, proto.width = legacy
    (proto.double_data if double else proto.data).extend(values)
    return proto


# Text files -------------------------------------------------------------------------------------

def test_a_prototxt_that_is_not_utf8_names_file_line_and_byte(tmp_path):
    path = write(tmp_path / 'net.prototxt', b'name: "n"\nlayer { name: "\xed\xa0" }\n')
    with pytest.raises(caffe.CaffeError, match=r'net\.prototxt:2: not UTF-8 text \(byte 0xed'):
        caffe.Net(path, caffe.TEST)


def test_a_prototxt_missing_a_required_field_is_refused_as_caffe_refuses_it(tmp_path):
    path = write(tmp_path / 'net.prototxt',
                 'layer { name: "c" type: "Clip" clip_param { min: 0 } }')
    with pytest.raises(caffe.CaffeError, match=r'net\.prototxt: NetParameter is missing required '
                                               r'fields: layer\[0\]\.clip_param\.max'):
        io.read_prototxt(path, caffe_pb2.NetParameter())


def test_a_solvers_net_or_weights_error_names_the_solver_file_first(tmp_path):
    write(tmp_path / 'net.prototxt', NET)                     # no label in TRAIN: a net error
    solver = write(tmp_path / 'solver.prototxt', 'net: "net.prototxt"\nbase_lr: 0.1\n')
    with pytest.raises(caffe.CaffeError) as error:
        caffe.SGDSolver(solver)
    assert str(error.value).startswith(solver + ': ' + str(tmp_path / 'net.prototxt') + ': ')
    write(tmp_path / 'net.prototxt', NET.replace('name: "two"\n', 'name: "two"\n' + TRAIN_INPUT))
    write(tmp_path / 'not_weights.caffemodel', b'\xff\xff\xff')
    solver = write(tmp_path / 'solver.prototxt', 'net: "net.prototxt"\nbase_lr: 0.1\n'
                   'lr_policy: "fixed"\nweights: "not_weights.caffemodel"\n')
    with pytest.raises(caffe.CaffeError) as error:
        caffe.SGDSolver(solver)
    assert str(error.value).startswith(solver + ': ')
    assert 'not_weights.caffemodel is not a valid NetParameter' in str(error.value)


def test_a_test_net_layer_that_cannot_share_the_training_weights_is_named(tmp_path):
    # Caffe's ShareTrainedLayersWith refuses a same-named layer of another shape
    write(tmp_path / 'net.prototxt', NET.replace('name: "two"\n', 'name: "two"\n' + TRAIN_INPUT))
    write(tmp_path / 'test.prototxt', NET.replace('dim: 3 }', 'dim: 4 }'))
    solver = write(tmp_path / 'solver.prototxt', 'train_net: "net.prototxt"\n'
                   'test_net: "test.prototxt"\ntest_iter: 1\nbase_lr: 0.1\n')
    with pytest.raises(caffe.CaffeError, match=r"cannot share param 0 of layer 'a': shape "
                                               r"\(2, 3\) in .*net\.prototxt, \(2, 4\)") as error:
        caffe.SGDSolver(solver)
    assert str(error.value).startswith(solver + ': ')


def test_a_layers_error_names_the_net_file(tmp_path):
    path = write(tmp_path / 'net.prototxt', NET.replace('num_output: 2 } }\nlayer { name: "b"',
                                                       'num_output: 0 } }\nlayer { name: "b"'))
    with pytest.raises(caffe.CaffeError) as error:
        caffe.Net(path, caffe.TEST)
    message = str(error.value)
    assert message.startswith(path + ': ') and "'a'" in message and 'num_output' in message


# Binary files -----------------------------------------------------------------------------------

def test_a_binary_string_field_that_is_not_utf8_is_named(tmp_path):
    # protobuf keeps a proto2 string's bytes as they are; the reader checks them at once.
    weights = caffe_pb2.NetParameter()
    weights.layer.add(name='a').blobs.add()
    weights.layer.add(name='b').bottom.append('ok')
    data = weights.SerializeToString().replace(b'\x0a\x01b', b'\x0a\x01\xff')
    path = write(tmp_path / 'w.caffemodel', data)
    with pytest.raises(caffe.CaffeError, match=r'w\.caffemodel is not a valid NetParameter: '
                                               r'field layer\[1\]\.name is not UTF-8 text'):
        io.read_binary(path, caffe_pb2.NetParameter())


def test_read_blobproto_reads_caffes_three_layouts(tmp_path):
    legacy = write(tmp_path / 'mean.binaryproto',
                   blob_proto(legacy=(1, 3, 2, 2), values=range(12)).SerializeToString())
    np.testing.assert_array_equal(io.read_blobproto(legacy),
                                  np.arange(12, dtype=np.float32).reshape(1, 3, 2, 2))
    shaped = write(tmp_path / 's.binaryproto',
                   blob_proto(shape=(2, 3), values=range(6)).SerializeToString())
    assert io.read_blobproto(shaped).shape == (2, 3)
    double = write(tmp_path / 'd.binaryproto',
                   blob_proto(values=[0.5, 1e40], double=True).SerializeToString())
    out = io.read_blobproto(double)
    assert out.dtype == np.float32 and out.shape == (2,) and out[0] == 0.5 and np.isinf(out[1])


@pytest.mark.parametrize('proto,match', [
    (blob_proto(shape=(2, 3), values=range(5)), r'blob of shape \(2, 3\) holds 5 values'),
    (blob_proto(legacy=(0, 0, -1, 0)), 'negative dimension'),
    (blob_proto(shape=[1] * 33, values=[1]), 'at most 32'),
    (blob_proto(shape=(2 ** 31 - 1, 0, 255, 2 ** 31 - 1)), 'exceeds INT_MAX'),
])
def test_read_blobproto_errors_name_the_file(tmp_path, proto, match):
    path = write(tmp_path / 'bad.binaryproto', proto.SerializeToString())
    with pytest.raises(caffe.CaffeError, match=match) as error:
        io.read_blobproto(path)
    assert path in str(error.value)


@pytest.mark.parametrize('proto', [
    blob_proto(legacy=(0, 0, -1, 0)),                          # a negative legacy dimension
    blob_proto(legacy=(0, 2 ** 31 - 1, 0, 2 ** 31 - 1)),       # empty, but no array has it
])
def test_pycaffes_blobproto_to_array_keeps_its_value_error(proto):
    with pytest.raises(ValueError, match='BlobProto of shape'):
        io.blobproto_to_array(proto)


@pytest.mark.parametrize('shape,match', [
    ((1,) * 33, 'at most 32'), ((2, -1), 'negative dimension'),
    ((65536, 32768), 'exceeds INT_MAX'), ((2 ** 31, 0, 2), 'exceeds INT_MAX'),
])
def test_blob_shapes_obey_caffes_blob_checks(shape, match):
    with pytest.raises(caffe.CaffeError, match=match):
        check_shape(shape)
    with pytest.raises(caffe.CaffeError, match=match):
        Blob((1,)).reshape(shape)
    assert Blob((2 ** 31 - 1, 0)).count == 0 and Blob((1,) * 32).count == 1


# Reads that fail half-way change nothing ---------------------------------------------------------

def test_weights_with_one_bad_layer_leave_the_net_as_it_was(tmp_path):
    path = write(tmp_path / 'net.prototxt', NET)
    net = caffe.Net(path, caffe.TEST)
    before = {name: [b.data.copy() for b in blobs] for name, blobs in net.params.items()}
    weights = caffe_pb2.NetParameter()
    a = weights.layer.add(name='a')
    a.blobs.add().CopyFrom(blob_proto(shape=(2, 3), values=np.ones(6)))
    a.blobs.add().CopyFrom(blob_proto(shape=(2,), values=np.ones(2)))
    b = weights.layer.add(name='b')
    b.blobs.add().CopyFrom(blob_proto(shape=(2, 2), values=np.ones(4)))
    b.blobs.add().CopyFrom(blob_proto(shape=(2,), values=np.ones(3)))   # 3 values for 2
    bad = write(tmp_path / 'bad.caffemodel', weights.SerializeToString())
    with pytest.raises(caffe.CaffeError, match=r"bad\.caffemodel: layer 'b' param 1 blob of "
                                               r"shape \(2,\) holds 3 values"):
        net.copy_from(bad)
    for name, blobs in net.params.items():
        for blob, old in zip(blobs, before[name]):
            np.testing.assert_array_equal(blob.data, old)


def _solver(tmp_path):
    write(tmp_path / 'net.prototxt', NET.replace('name: "two"\n', 'name: "two"\n' + TRAIN_INPUT))
    solver_file = write(tmp_path / 'solver.prototxt',
                        'net: "%s"\nbase_lr: 0.1\nlr_policy: "fixed"\nmomentum: 0.9\n'
                        'snapshot_prefix: "%s"\n' % (tmp_path / 'net.prototxt', tmp_path / 's'))
    solver = caffe.SGDSolver(solver_file)
    solver.step(1)
    solver.snapshot()
    return solver, str(tmp_path / 's_iter_1.solverstate')


def test_a_shapeless_history_blob_is_read_as_caffe_reads_it(tmp_path):
    solver, state_file = _solver(tmp_path)
    state = caffe_pb2.SolverState.FromString(open(state_file, 'rb').read())
    values = [list(h.data) for h in state.history]
    for h, v in zip(state.history, values):   # values only: Caffe's FromProto makes one axis
        h.Clear()
        h.data.extend(v)
    path = write(tmp_path / 'shapeless.solverstate', state.SerializeToString())
    solver.history[0].data[...] = 0
    solver.restore(path)
    np.testing.assert_array_equal(solver.history[0].data.ravel(), np.float32(values[0]))


def test_a_bad_history_blob_leaves_the_solver_as_it_was(tmp_path):
    solver, state_file = _solver(tmp_path)
    state = caffe_pb2.SolverState.FromString(open(state_file, 'rb').read())
    state.iter = 99
    state.history[-1].data.append(1.0)                  # one value too many
    path = write(tmp_path / 'bad.solverstate', state.SerializeToString())
    solver.net.params['a'][0].data[...] = 7             # differs from the snapshot's weights
    history = [h.data.copy() for h in solver.history]
    with pytest.raises(caffe.CaffeError, match=r'bad\.solverstate: history blob 3: blob of '
                                               r'shape \(2,\) holds 3 values'):
        solver.restore(path)
    assert solver.iter == 1 and np.all(solver.net.params['a'][0].data == 7)
    for h, old in zip(solver.history, history):
        np.testing.assert_array_equal(h.data, old)


def test_a_state_whose_weights_fail_names_the_state_file(tmp_path):
    solver, state_file = _solver(tmp_path)
    state = caffe_pb2.SolverState.FromString(open(state_file, 'rb').read())
    state.learned_net = write(tmp_path / 'broken.caffemodel', b'\xff\xff\xff')
    path = write(tmp_path / 'points_to_broken.solverstate', state.SerializeToString())
    with pytest.raises(caffe.CaffeError, match=r'points_to_broken\.solverstate: its weights: '
                                               r'.*broken\.caffemodel is not a valid'):
        solver.restore(path)
    assert solver.iter == 1


# Fillers: Caffe's checks on their numbers ---------------------------------------------------------

FILLED = '''name: "filled"
input: "x" input_shape { dim: 1 dim: 3 }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
        inner_product_param { num_output: %d weight_filler { %s } } }
'''


@pytest.mark.parametrize('filler,match', [
    ('type: "uniform" min: -inf max: 0.1', r'uniform filler: min \(-inf\) and max \(0.1\)'),
    ('type: "uniform" min: 1 max: 0', r'min <= max'),
    ('type: "gaussian" std: -1', r'std must be a finite number >= 0, got -1'),
    ('type: "gaussian" std: nan', r'std must be a finite number >= 0, got nan'),
    ('type: "gaussian" sparse: 5', r'sparse 5 .* at most 1 \(2 outputs\)'),
])
def test_a_filler_caffe_refuses_is_an_error_naming_file_and_layer(tmp_path, filler, match):
    path = write(tmp_path / 'net.prototxt', FILLED % (2, filler))
    with pytest.raises(caffe.CaffeError, match=match) as error:
        caffe.Net(path, caffe.TEST)
    assert str(error.value).startswith("%s: InnerProduct layer 'ip': " % path)


def test_fillers_leave_an_empty_blob_alone(tmp_path):
    # an input of 0 features makes a (2, 0) weight: xavier and msra would divide by a fan of 0
    for kind in ('xavier', 'msra'):
        text = (FILLED % (2, 'type: "%s"' % kind)).replace('dim: 1 dim: 3', 'dim: 1 dim: 0')
        net = caffe.Net(write(tmp_path / 'net.prototxt', text), caffe.TEST)
        assert net.params['ip'][0].data.shape == (2, 0)
    sparse_ok = write(tmp_path / 'ok.prototxt', FILLED % (2, 'type: "gaussian" sparse: 2'))
    assert caffe.Net(sparse_ok, caffe.TEST).params['ip'][0].data.shape == (2, 3)


@pytest.mark.parametrize('layer', [
    'type: "Convolution" convolution_param { num_output: 2 kernel_size: 1 stride: 2147483648 }',
    'type: "Convolution" convolution_param { num_output: 2 kernel_h: 1 kernel_w: 4294967295 }',
    'type: "Pooling" pooling_param { kernel_size: 2147483648 }',
])
def test_geometry_past_int32_is_refused_by_name(layer):
    # Found by fuzzing: uint32 fields that Caffe holds as int (negative past 2^31 - 1).
    text = ('input: "data" input_shape { dim: 1 dim: 1 dim: 4 dim: 4 } '
            'layer { name: "big" bottom: "data" top: "out" %s }' % layer)
    with pytest.raises(caffe.CaffeError, match=r"'big'.*out of range \(at most 2147483647\)"):
        caffe.Net(text_format.Parse(text, caffe_pb2.NetParameter()), caffe.TEST)


def test_a_path_with_a_nul_byte_names_no_file(tmp_path):
    # Found by fuzzing solver files: a weights path with a NUL byte made os.path raise ValueError.
    with pytest.raises(caffe.CaffeError, match='not found'):
        caffe.io.read_prototxt(str(tmp_path / 'net\0.prototxt'), caffe_pb2.NetParameter())
    from caffe import hdf5
    assert not hdf5.is_hdf5(str(tmp_path / 'weights\0.caffemodel'))
