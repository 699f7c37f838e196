"""Harnesses for the readers of Caffe's own files: net and solver prototxts (read, upgraded and
built into nets), .caffemodel weights (Net.copy_from), .solverstate (Solver.restore) and
.binaryproto blobs (caffe.io.read_blobproto)."""
from google.protobuf import text_format

from fuzz_harness import check_paths_stay_inside, check_python_layers, harness
from proto_mutator import BinaryProto, TextProto

import caffe
from caffe.proto import caffe_pb2

# A small net with a parameter blob of each layout copy_from meets: 4-D and 1-D, three blobs
# (BatchNorm), a bias on another layer (Scale), a parameter shared by name.
FIXTURE_NET = '''name: "fixture"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 3 dim: 6 dim: 6 } shape { dim: 2 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
layer { name: "scale" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
        param { name: "shared_w" } inner_product_param { num_output: 3 } }
layer { name: "ip2" type: "InnerProduct" bottom: "conv" top: "ip2"
        param { name: "shared_w" } inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "silence" type: "Silence" bottom: "ip2" }
'''
FIXTURE_SOLVER = ('net: "fixture.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmomentum: 0.9\n'
                  'type: "%s"\n')


def _write(path, text):
    with open(path, 'w') as f:
        f.write(text)


def _fixture_files(scratch):
    _write('fixture.prototxt', FIXTURE_NET)
    net = caffe.Net('fixture.prototxt', caffe.TRAIN)
    net.save('fixture.caffemodel')
    return net


def _parsed_text(path, message_class):
    """The input as a message, for the harness's own checks (the reader parses it again); an
    input that does not parse goes to the reader as it is."""
    try:
        with open(path, encoding='utf-8') as f:
            return text_format.Parse(f.read(), message_class())
    except Exception:  # the reader under test reports what is wrong with it
        return None


def _parsed_binary(path, message_class):
    message = message_class()
    try:
        with open(path, 'rb') as f:
            message.ParseFromString(f.read())
    except Exception:  # the reader under test reports what is wrong with it
        return None
    return message


def _check_net_text(message):
    if message is not None:
        check_paths_stay_inside(message)
        check_python_layers(message)


# A net or solver file that asks for more memory than the fuzzing process may have
# (fuzz_harness.MEMORY_LIMIT) gets MemoryError, as Caffe would fail to allocate it.
@harness('net_prototxt', suffix='.prototxt', allowed=(MemoryError,),
         mutator=TextProto(caffe_pb2.NetParameter, vocabulary=caffe.layer_type_list()))
def net_prototxt(path, h):
    _check_net_text(_parsed_text(path, caffe_pb2.NetParameter))
    for phase in (caffe.TRAIN, caffe.TEST):
        caffe.Net(path, phase)


@harness('solver_prototxt', suffix='.prototxt', allowed=(MemoryError,),
         setup=_fixture_files,
         mutator=TextProto(caffe_pb2.SolverParameter, vocabulary=['fixture.prototxt']))
def solver_prototxt(path, h):
    _check_net_text(_parsed_text(path, caffe_pb2.SolverParameter))
    caffe.get_solver(path)


@harness('caffemodel', suffix='.caffemodel', setup=_fixture_files,
         mutator=BinaryProto(caffe_pb2.NetParameter))
def caffemodel(path, h):
    h.context.copy_from(path)


def _fixture_solvers(scratch):
    _fixture_files(scratch)
    solvers = []
    for kind in ('SGD', 'Adam'):
        _write('solver_%s.prototxt' % kind, FIXTURE_SOLVER % kind)
        solvers.append(caffe.get_solver('solver_%s.prototxt' % kind))
    return solvers


@harness('solverstate', suffix='.solverstate', setup=_fixture_solvers,
         mutator=BinaryProto(caffe_pb2.SolverState, vocabulary=['fixture.caffemodel']))
def solverstate(path, h):
    state = _parsed_binary(path, caffe_pb2.SolverState)
    if state is not None:
        check_paths_stay_inside(state)
    # SGD keeps one history blob per parameter, Adam two: the same file tried on both.
    for solver in h.context:
        try:
            solver.restore(path)
            return
        except caffe.CaffeError:
            if solver is h.context[-1]:
                raise


@harness('binaryproto', suffix='.binaryproto', mutator=BinaryProto(caffe_pb2.BlobProto))
def binaryproto(path, h):
    caffe.io.read_blobproto(path)
    # pycaffe's own recipe for a mean file, on what the reader accepted: its ValueError for a
    # shape that does not hold the values is pycaffe's documented behaviour.
    with open(path, 'rb') as f:
        blob = caffe_pb2.BlobProto.FromString(f.read())
    try:
        caffe.io.blobproto_to_array(blob)
    except ValueError as e:
        if 'BlobProto of shape' not in str(e):
            raise
