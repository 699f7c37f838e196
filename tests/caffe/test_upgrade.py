"""The schema and Caffe's upgrades of old files (caffe/upgrade.py, tools/upgrade_net_proto.py).

Expected results are written out by hand from Caffe's upgrade rules (upgrade_proto.cpp's
behaviour: where each V0 field goes, which fields move to transform_param, the V1 type names),
and the field numbers are checked on the wire against bytes encoded here by hand, so that a
field renumbered or a rule mis-routed in the code under test fails."""
import os
import subprocess
import sys

import numpy as np
import pytest
from google.protobuf import text_format

import caffe
from caffe import io
from caffe.proto import caffe_pb2
from caffe.upgrade import net_needs_upgrade, upgrade_net

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, 'tools', 'upgrade_net_proto.py')


def parse(text, message=None):
    return text_format.Parse(text, message or caffe_pb2.NetParameter())


def same(a, b):
    assert text_format.MessageToString(a) == text_format.MessageToString(b)


# The schema on the wire ---------------------------------------------------------------------

def varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field_bytes(number, payload):
    """A length-delimited field (wire type 2), encoded by hand."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


# (LayerParameter field, its number in BVLC's caffe.proto, the fork's or MNC's)
LAYER_FIELDS = [
    ('transform_param', 100), ('loss_param', 101), ('argmax_param', 103),
    ('contrastive_loss_param', 105), ('data_param', 107), ('hdf5_data_param', 112),
    ('hdf5_output_param', 113), ('image_data_param', 115), ('infogain_loss_param', 116),
    ('mvn_param', 120), ('power_param', 122), ('sigmoid_param', 124), ('slice_param', 126),
    ('tanh_param', 127), ('threshold_param', 128), ('window_data_param', 129),
    ('prelu_param', 131), ('spp_param', 132), ('log_param', 134), ('flatten_param', 135),
    ('reduction_param', 136), ('embed_param', 137), ('tile_param', 138), ('elu_param', 140),
    ('crop_param', 144), ('parameter_param', 145), ('recurrent_param', 146),
    ('swish_param', 147), ('clip_param', 148),
    ('roi_pooling_param', 8266711), ('smooth_l1_loss_param', 8266712),
    ('roi_warping_param', 11870),
]


@pytest.mark.parametrize('name,number', LAYER_FIELDS)
def test_layer_parameter_fields_have_caffes_numbers(name, number):
    # an empty sub-message set on the field serializes as exactly (tag, length 0)
    layer = caffe_pb2.LayerParameter()
    getattr(layer, name).SetInParent()
    # (ClipParameter's min and max are `required`: serialize without the check)
    assert layer.SerializePartialToString() == field_bytes(number, b'')


def test_data_layer_parameters_on_the_wire():
    # DataParameter: source 1 (string), batch_size 4 (varint), backend 8 (enum, LMDB = 1)
    data = caffe_pb2.DataParameter(source='db', batch_size=3,
                                   backend=caffe_pb2.DataParameter.LMDB)
    assert data.SerializeToString() == (field_bytes(1, b'db') + varint(4 << 3) + varint(3)
                                        + varint(8 << 3) + varint(1))
    # TransformationParameter: mirror 2, crop_size 3, mean_file 4
    t = caffe_pb2.TransformationParameter(mirror=True, crop_size=227, mean_file='m')
    assert t.SerializeToString() == (varint(2 << 3) + varint(1) + varint(3 << 3) + varint(227)
                                     + field_bytes(4, b'm'))


def test_defaults_are_caffes():
    assert caffe_pb2.DataParameter().backend == caffe_pb2.DataParameter.LEVELDB
    assert caffe_pb2.DataParameter().prefetch == 4
    assert caffe_pb2.WindowDataParameter().crop_mode == 'warp'
    assert caffe_pb2.WindowDataParameter().fg_fraction == pytest.approx(0.25)
    assert caffe_pb2.ImageDataParameter().batch_size == 1
    assert caffe_pb2.ImageDataParameter().is_color
    assert caffe_pb2.HDF5DataParameter().shuffle is False
    assert caffe_pb2.MVNParameter().eps == pytest.approx(1e-9)
    assert caffe_pb2.ContrastiveLossParameter().margin == 1
    assert caffe_pb2.ExpParameter().base == -1
    assert caffe_pb2.CropParameter().axis == 2
    assert caffe_pb2.PoolingParameter().round_mode == caffe_pb2.PoolingParameter.CEIL
    assert caffe_pb2.ReductionParameter().operation == caffe_pb2.ReductionParameter.SUM
    assert caffe_pb2.SliceParameter().axis == 1
    assert caffe_pb2.SPPParameter().pool == caffe_pb2.SPPParameter.MAX
    assert caffe_pb2.ThresholdParameter().threshold == 0
    assert caffe_pb2.DropoutParameter().scale_train  # the fork's field
    assert caffe_pb2.ROIWarpingParameter().samples_per_bin == 1


def test_a_bvlc_style_train_val_parses():
    # the layer kinds the old subset could not read: Data, ImageData, HDF5Data, WindowData
    net = parse('''
name: "CaffeNetLike"
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TRAIN }
  transform_param { mirror: true crop_size: 227 mean_file: "mean.binaryproto" }
  data_param { source: "train_lmdb" batch_size: 256 backend: LMDB } }
layer { name: "img" type: "ImageData" top: "img" top: "l2"
  image_data_param { source: "list.txt" batch_size: 2 new_height: 32 new_width: 32 shuffle: true
                     root_folder: "/x/" } }
layer { name: "h5" type: "HDF5Data" top: "a" hdf5_data_param { source: "h5.txt" batch_size: 4 } }
layer { name: "win" type: "WindowData" top: "w" top: "wl"
  window_data_param { source: "windows.txt" batch_size: 128 fg_threshold: 0.5 bg_threshold: 0.5
                      fg_fraction: 0.25 context_pad: 16 crop_mode: "warp" } }
layer { name: "out" type: "HDF5Output" bottom: "a" hdf5_output_param { file_name: "o.h5" } }
layer { name: "lstm" type: "LSTM" bottom: "a" top: "b"
  recurrent_param { num_output: 8 expose_hidden: true } }
''')
    assert net.layer[0].data_param.backend == caffe_pb2.DataParameter.LMDB
    assert net.layer[0].transform_param.crop_size == 227
    assert net.layer[1].image_data_param.root_folder == '/x/'
    assert net.layer[3].window_data_param.context_pad == 16
    assert net.layer[4].hdf5_output_param.file_name == 'o.h5'
    assert net.layer[5].recurrent_param.expose_hidden


# V0 nets ------------------------------------------------------------------------------------

V0_NET = '''
name: "v0net"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 9 input_dim: 9
layers { layer { name: "pad1" type: "padding" pad: 2 } bottom: "data" top: "pad1" }
layers { layer { name: "conv1" type: "conv" num_output: 4 kernelsize: 3 stride: 2 group: 1
                 biasterm: false weight_filler { type: "gaussian" std: 0.01 }
                 blobs_lr: 1 weight_decay: 1 } bottom: "pad1" top: "conv1" }
layers { layer { name: "relu1" type: "relu" } bottom: "conv1" top: "conv1" }
layers { layer { name: "pool1" type: "pool" pool: AVE kernelsize: 2 stride: 1 pad: 1 }
         bottom: "conv1" top: "pool1" }
layers { layer { name: "norm1" type: "lrn" local_size: 3 alpha: 0.5 beta: 0.25 k: 2 }
         bottom: "pool1" top: "norm1" }
layers { layer { name: "drop" type: "dropout" dropout_ratio: 0.3 } bottom: "norm1" top: "norm1" }
layers { layer { name: "fc" type: "innerproduct" num_output: 5 bias_filler { type: "constant" } }
         bottom: "norm1" top: "fc" }
layers { layer { name: "prob" type: "softmax" } bottom: "fc" top: "prob" }
'''

# The same net written by hand in today's format, as Caffe's rules make it.
V0_NET_UPGRADED = '''
name: "v0net"
layer { name: "input" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 3 dim: 9 dim: 9 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        param { lr_mult: 1 decay_mult: 1 }
        convolution_param { num_output: 4 bias_term: false pad: 2 kernel_size: 3 stride: 2
                            group: 1 weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: AVE pad: 1 kernel_size: 2 stride: 1 } }
layer { name: "norm1" type: "LRN" bottom: "pool1" top: "norm1"
        lrn_param { local_size: 3 alpha: 0.5 beta: 0.25 k: 2 } }
layer { name: "drop" type: "Dropout" bottom: "norm1" top: "norm1"
        dropout_param { dropout_ratio: 0.3 } }
layer { name: "fc" type: "InnerProduct" bottom: "norm1" top: "fc"
        inner_product_param { num_output: 5 bias_filler { type: "constant" } } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
'''


def test_v0_net_upgrades_as_caffe_rules_say():
    old = parse(V0_NET)
    assert net_needs_upgrade(old)
    same(upgrade_net(old), parse(V0_NET_UPGRADED))


def test_v0_net_builds_and_runs_like_its_upgrade(tmp_path):
    old_path, new_path = tmp_path / 'old.prototxt', tmp_path / 'new.prototxt'
    old_path.write_text(V0_NET)
    new_path.write_text(V0_NET_UPGRADED)
    caffe.set_random_seed(3)
    a = caffe.Net(str(old_path), caffe.TEST)
    caffe.set_random_seed(3)
    b = caffe.Net(str(new_path), caffe.TEST)
    assert a.blobs['conv1'].data.shape == (1, 4, 6, 6)   # pad 2 folded in: (9 + 4 - 3) / 2 + 1
    x = np.random.RandomState(0).randn(1, 3, 9, 9).astype(np.float32)
    assert np.array_equal(a.forward(data=x)['prob'], b.forward(data=x)['prob'])


def test_v0_data_layer_fields_go_to_transform_and_data_params():
    old = parse('''
layers { layer { name: "d" type: "data" source: "train_db" batchsize: 64 rand_skip: 10
                 scale: 0.5 meanfile: "m.binaryproto" cropsize: 20 mirror: true }
         top: "data" top: "label" }
layers { layer { name: "i" type: "images" source: "list.txt" batchsize: 2 shuffle_images: true
                 new_height: 8 new_width: 6 } top: "im" top: "lab" }
layers { layer { name: "w" type: "window_data" source: "win.txt" batchsize: 8
                 det_fg_threshold: 0.6 det_bg_threshold: 0.4 det_fg_fraction: 0.5
                 det_context_pad: 4 det_crop_mode: "square" } top: "w" top: "wl" }
layers { layer { name: "h" type: "hdf5_output" hdf5_output_param { file_name: "out.h5" } }
         bottom: "im" bottom: "lab" }
''')
    expected = parse('''
layer { name: "d" type: "Data" top: "data" top: "label"
        transform_param { scale: 0.5 mirror: true crop_size: 20 mean_file: "m.binaryproto" }
        data_param { source: "train_db" batch_size: 64 rand_skip: 10 } }
layer { name: "i" type: "ImageData" top: "im" top: "lab"
        image_data_param { source: "list.txt" batch_size: 2 shuffle: true new_height: 8
                           new_width: 6 } }
layer { name: "w" type: "WindowData" top: "w" top: "wl"
        window_data_param { source: "win.txt" batch_size: 8 fg_threshold: 0.6 bg_threshold: 0.4
                            fg_fraction: 0.5 context_pad: 4 crop_mode: "square" } }
layer { name: "h" type: "HDF5Output" bottom: "im" bottom: "lab"
        hdf5_output_param { file_name: "out.h5" } }
''')
    same(upgrade_net(old), expected)


def test_v0_field_of_another_type_is_dropped_with_a_warning():
    old = parse('input: "x" input_dim: 1 input_dim: 1 input_dim: 1 input_dim: 1 '
                'layers { layer { name: "r" type: "relu" num_output: 3 } bottom: "x" top: "y" }')
    with pytest.warns(RuntimeWarning, match='num_output.*relu'):
        new = upgrade_net(old)
    assert new.layer[1].type == 'ReLU' and not new.layer[1].HasField('convolution_param')


def test_v0_errors_name_the_layer():
    with pytest.raises(caffe.CaffeError, match="'odd'.*unknown type 'warp9'"):
        upgrade_net(parse('layers { layer { name: "odd" type: "warp9" } }'))
    with pytest.raises(caffe.CaffeError, match="padding layer 'p'.*'r'.*relu"):
        upgrade_net(parse('input: "x" layers { layer { name: "p" type: "padding" pad: 1 } '
                          'bottom: "x" top: "px" } layers { layer { name: "r" type: "relu" } '
                          'bottom: "px" top: "y" }'))
    with pytest.raises(caffe.CaffeError, match="'c' reads blob 'nowhere'"):
        upgrade_net(parse('layers { layer { name: "c" type: "conv" } bottom: "nowhere" }'))


# V1 nets ------------------------------------------------------------------------------------

def test_v1_data_transformation_fields_move_to_transform_param():
    old = parse('''
layers { name: "d" type: DATA top: "data"
         data_param { source: "db" batch_size: 4 scale: 0.25 mean_file: "m" crop_size: 7
                      mirror: true backend: LMDB } }
layers { name: "w" type: WINDOW_DATA top: "w" window_data_param { source: "f" crop_size: 5 } }
layers { name: "s" type: SIGMOID bottom: "data" top: "s" sigmoid_param { engine: CAFFE } }
layers { name: "t" type: THRESHOLD bottom: "s" top: "t" threshold_param { threshold: 0.5 } }
''')
    expected = parse('''
layer { name: "d" type: "Data" top: "data"
        transform_param { scale: 0.25 crop_size: 7 mean_file: "m" mirror: true }
        data_param { source: "db" batch_size: 4 backend: LMDB } }
layer { name: "w" type: "WindowData" top: "w" transform_param { crop_size: 5 }
        window_data_param { source: "f" } }
layer { name: "s" type: "Sigmoid" bottom: "data" top: "s" sigmoid_param { engine: CAFFE } }
layer { name: "t" type: "Threshold" bottom: "s" top: "t" threshold_param { threshold: 0.5 } }
''')
    new = upgrade_net(old)
    same(new, expected)
    assert not new.layer[0].data_param.HasField('scale')


def test_every_v1_type_maps_to_a_type_name():
    names = {caffe_pb2.V1LayerParameter.LayerType.Name(v)
             for v in caffe_pb2.V1LayerParameter.LayerType.values()}
    from caffe.upgrade import _V1_TYPES
    assert names == set(_V1_TYPES)
    net = caffe_pb2.NetParameter()
    net.layers.add(name='dc', type=caffe_pb2.V1LayerParameter.DECONVOLUTION)
    net.layers.add(name='ml', type=caffe_pb2.V1LayerParameter.MULTINOMIAL_LOGISTIC_LOSS)
    assert [l.type for l in upgrade_net(net).layer] == ['Deconvolution', 'MultinomialLogisticLoss']


def test_old_batch_norm_param_specs_are_frozen():
    new = upgrade_net(parse('''
layer { name: "bn" type: "BatchNorm" bottom: "x" top: "y"
        param { lr_mult: 1 } param { lr_mult: 1 decay_mult: 2 } param { name: "keep" } }
layer { name: "bn2" type: "BatchNorm" bottom: "y" top: "z" param { lr_mult: 1 } }
'''))
    assert [(p.lr_mult, p.decay_mult) for p in new.layer[0].param] == [(0, 0)] * 3
    assert new.layer[0].param[2].name == 'keep'
    assert new.layer[1].param[0].lr_mult == 1   # only the three-spec form is the old one


def test_current_net_is_returned_unchanged():
    net = parse('layer { name: "r" type: "ReLU" bottom: "x" top: "x" }')
    assert not net_needs_upgrade(net) and upgrade_net(net) is net


# Solvers ------------------------------------------------------------------------------------

def test_snapshot_prefix_folder_gets_the_solver_files_name(tmp_path):
    folder = tmp_path / 'snaps'
    folder.mkdir()
    net = tmp_path / 'net.prototxt'
    net.write_text('layer { name: "x" type: "DummyData" top: "x" '
                   'dummy_data_param { shape { dim: 1 dim: 2 } } }')
    solver = tmp_path / 'my_solver.prototxt'
    solver.write_text('net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nmax_iter: 1\n'
                      'snapshot_prefix: "%s"\n' % folder)
    s = caffe.SGDSolver(str(solver))
    assert s.snapshot_filename('.caffemodel') == str(folder / 'my_solver_iter_0.caffemodel')
    solver.write_text('net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nmax_iter: 1\n')
    s = caffe.SGDSolver(str(solver))
    assert s.snapshot_filename('.x') == str(tmp_path / 'my_solver_iter_0.x')


# The tool -----------------------------------------------------------------------------------

def run_tool(*args):
    return subprocess.run([sys.executable, TOOL] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=120)


def test_tool_upgrades_text_and_binary_files(tmp_path):
    src = tmp_path / 'old.prototxt'
    src.write_text(V0_NET)
    out = tmp_path / 'new.prototxt'
    r = run_tool(src, out)
    assert r.returncode == 0, r.stderr
    assert 'Upgraded' in r.stdout
    same(io.read_prototxt(str(out), caffe_pb2.NetParameter()), parse(V0_NET_UPGRADED))
    # a V1 weights file, with the bare input names Net::ToProto writes
    weights = caffe_pb2.NetParameter(input=['data'])
    layer = weights.layers.add(name='fc', type=caffe_pb2.V1LayerParameter.INNER_PRODUCT)
    layer.blobs.add(num=1, channels=1, height=2, width=3).data.extend(range(6))
    io.write_binary(str(tmp_path / 'old.caffemodel'), weights)
    r = run_tool(tmp_path / 'old.caffemodel', tmp_path / 'new.caffemodel')
    assert r.returncode == 0, r.stderr
    new = io.read_binary(str(tmp_path / 'new.caffemodel'), caffe_pb2.NetParameter())
    assert not new.input and not new.layers
    assert new.layer[0].type == 'InnerProduct' and list(new.layer[0].blobs[0].data) == list(range(6))


def test_tool_upgrades_solvers_and_names_bad_files(tmp_path):
    src = tmp_path / 'solver.prototxt'
    src.write_text('net: "n.prototxt"\nsolver_type: NESTEROV\nbase_lr: 0.01\n')
    r = run_tool('--solver', src, tmp_path / 'new.prototxt')
    assert r.returncode == 0, r.stderr
    new = io.read_prototxt(str(tmp_path / 'new.prototxt'), caffe_pb2.SolverParameter())
    assert new.type == 'Nesterov' and not new.HasField('solver_type')
    bad = tmp_path / 'bad.prototxt'
    bad.write_text('layer { name: "x" typo: 1 }')
    r = run_tool(bad, tmp_path / 'never.prototxt')
    assert r.returncode != 0 and 'bad.prototxt' in r.stderr and 'typo' in r.stderr
    assert not (tmp_path / 'never.prototxt').exists()
