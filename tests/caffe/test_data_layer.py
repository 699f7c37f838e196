"""Data layer (LMDB and LevelDB of Datum records) against batches computed with numpy and
OpenCV from the same records: key order, wrap-around, transform_param with Caffe's draws,
rand_skip, encoded and float records, solver ranks, determinism with prefetching, and the
errors for missing and corrupt sources."""
import time

import cv2
import numpy as np
import pytest

import caffe
from caffe import io
from caffe.common import CaffeError
from caffe.proto import caffe_pb2
from caffe.rng import CaffeRNG
from caffe.testing import build_layer, write_datum_db

from test_data_transformer import reference

BACKENDS = ['lmdb', 'leveldb']


def images(n, shape=(3, 5, 6), seed=0):
    return np.random.RandomState(seed).randint(0, 256, size=(n,) + shape).astype(np.uint8)


def make_db(tmp_path, arrays, backend='lmdb', labels=None, name='db'):
    labels = range(len(arrays)) if labels is None else labels
    records = [io.array_to_datum(a, int(l)) for a, l in zip(arrays, labels)]
    return write_datum_db(str(tmp_path / name), records, backend)


def data_layer(source, backend='lmdb', batch=3, transform='', extra='', tops=2,
               phase=caffe.TEST):
    top = ' '.join('top: "%s"' % t for t in ('data', 'label')[:tops])
    text = ('name: "data" type: "Data" %s data_param { source: "%s" backend: %s batch_size: %d '
            '%s } transform_param { %s }' % (top, source, backend.upper(), batch, extra,
                                            transform))
    return build_layer(text, [], phase=phase)


def forward(layer, top):
    layer.forward([], top)
    return [t.data.copy() for t in top]


@pytest.mark.parametrize('backend', BACKENDS)
def test_batches_in_key_order_wrapping_to_the_first_record(tmp_path, backend):
    arrays = images(7)
    labels = [5, 3, 9, 0, 2, 8, 1]
    source = make_db(tmp_path, arrays, backend, labels)
    layer, _, top = data_layer(source, backend, batch=3, transform='scale: 0.5')
    assert top[0].shape == (3, 3, 5, 6) and top[1].shape == (3,)
    order = [0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4]
    for k in range(4):
        data, label = forward(layer, top)
        idx = order[3 * k:3 * k + 3]
        np.testing.assert_array_equal(data, arrays[idx].astype(np.float32) * np.float32(0.5))
        np.testing.assert_array_equal(label, [labels[i] for i in idx])


def test_train_crops_and_flips_follow_caffes_draws(tmp_path):
    arrays = images(5, (2, 7, 8), seed=1)
    source = make_db(tmp_path, arrays)
    caffe.set_random_seed(77)
    layer, _, top = data_layer(source, batch=5, phase=caffe.TRAIN,
                               transform='crop_size: 4 mirror: true scale: 2')
    # Setup's draws from the runtime stream: the transformer's seed, then (BasePrefetching's
    # InitRand) its seed again, which it keeps.
    stream = CaffeRNG(77)
    stream.raw()
    rng = CaffeRNG(stream.raw())
    for _ in range(3):
        data, _ = forward(layer, top)
        for i in range(5):
            mirror = rng.raw() % 2 == 1
            h_off, w_off = rng.raw() % 4, rng.raw() % 5
            np.testing.assert_array_equal(data[i], reference(arrays[i], 4, h_off, w_off, mirror,
                                                             2))


def test_same_batches_with_prefetch_off_one_or_four_and_any_timing(tmp_path):
    source = make_db(tmp_path, images(9, (1, 6, 6), seed=2))
    runs = []
    for prefetch, pause in ((0, 0), (1, 0.01), (4, 0), (4, 0.02)):
        caffe.set_random_seed(3)
        layer, _, top = data_layer(source, batch=4, phase=caffe.TRAIN, extra='prefetch: %d'
                                   % prefetch, transform='crop_size: 3 mirror: true')
        batches = []
        for _ in range(6):
            time.sleep(pause)
            batches.append(forward(layer, top)[0])
        runs.append(batches)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


def test_rand_skip_starts_at_a_random_record(tmp_path):
    arrays = images(10, (1, 2, 2), seed=3)
    source = make_db(tmp_path, arrays)
    caffe.set_random_seed(21)
    layer, _, top = data_layer(source, batch=2, extra='rand_skip: 7')
    # No transform draws: the skip is the stream's first draw (the fork's DataLayerSetUp).
    skip = CaffeRNG(21).raw() % 7
    _, label = forward(layer, top)
    np.testing.assert_array_equal(label, [skip, (skip + 1) % 10])


def test_encoded_records_decode_as_stored_or_as_forced(tmp_path):
    rs = np.random.RandomState(4)
    colour = rs.randint(0, 256, size=(6, 5, 3)).astype(np.uint8)
    gray = rs.randint(0, 256, size=(6, 5)).astype(np.uint8)
    files = [cv2.imencode('.png', im)[1] for im in (colour, gray)]
    records = [caffe_pb2.Datum(encoded=True, label=1, data=f.tobytes()) for f in files]
    source = write_datum_db(str(tmp_path / 'db'), records)
    layer, _, top = data_layer(source, batch=1, transform='force_gray: true')
    np.testing.assert_array_equal(forward(layer, top)[0][0, 0],
                                  cv2.imdecode(files[0], cv2.IMREAD_GRAYSCALE))
    np.testing.assert_array_equal(forward(layer, top)[0][0, 0], gray)
    layer, _, top = data_layer(source, batch=1, transform='force_color: true')
    np.testing.assert_array_equal(forward(layer, top)[0][0], colour.transpose(2, 0, 1))
    np.testing.assert_array_equal(forward(layer, top)[0][0],
                                  np.repeat(gray[None], 3, axis=0))
    # As stored: the first record is 3-channel, so the batch is; the gray one does not fit.
    layer, _, top = data_layer(source, batch=2)
    with pytest.raises(CaffeError, match=r'1 x 6 x 5 .* in a batch of 3 x 6 x 5.*record 1'):
        forward(layer, top)


def test_float_records(tmp_path):
    values = np.random.RandomState(5).randn(3, 2, 3, 4).astype(np.float32)
    source = make_db(tmp_path, values)
    layer, _, top = data_layer(source, batch=3, transform='mean_value: 0.5 scale: 3')
    expected = (values - np.float32(0.5)) * np.float32(3)
    np.testing.assert_array_equal(forward(layer, top)[0], expected)


def test_records_of_several_sizes_with_a_centre_crop(tmp_path):
    small, large = images(1, (1, 5, 5))[0], images(1, (1, 8, 9), seed=6)[0]
    source = make_db(tmp_path, [small, large])
    layer, _, top = data_layer(source, batch=2, transform='crop_size: 4')
    data, _ = forward(layer, top)
    np.testing.assert_array_equal(data[0], small[:, 0:4, 0:4])
    np.testing.assert_array_equal(data[1], large[:, 2:6, 2:6])


def test_solver_ranks_take_every_nth_record_in_train_only(tmp_path):
    source = make_db(tmp_path, images(6, (1, 1, 1)))
    try:
        caffe.set_solver_count(2)
        caffe.set_solver_rank(1)
        layer, _, top = data_layer(source, batch=3, phase=caffe.TRAIN)
        np.testing.assert_array_equal(forward(layer, top)[1], [1, 3, 5])
        np.testing.assert_array_equal(forward(layer, top)[1], [1, 3, 5])
        layer, _, top = data_layer(source, batch=3, phase=caffe.TEST)
        np.testing.assert_array_equal(forward(layer, top)[1], [0, 1, 2])
    finally:
        caffe.set_solver_count(1)
        caffe.set_solver_rank(0)


def test_one_top_gives_no_labels_and_two_layers_share_a_leveldb(tmp_path):
    arrays = images(4, (1, 2, 2))
    source = make_db(tmp_path, arrays, 'leveldb')
    # LevelDB allows one handle per folder: the two layers share it.
    first, _, top1 = data_layer(source, 'leveldb', batch=2, tops=1)
    second, _, top2 = data_layer(source, 'leveldb', batch=4)
    assert len(top1) == 1
    np.testing.assert_array_equal(forward(first, top1)[0], arrays[:2])
    np.testing.assert_array_equal(forward(second, top2)[0], arrays)
    np.testing.assert_array_equal(forward(first, top1)[0], arrays[2:])


def test_a_net_reads_the_database(tmp_path):
    arrays = images(4, (1, 3, 3))
    source = make_db(tmp_path, arrays)
    net_file = tmp_path / 'net.prototxt'
    net_file.write_text('''
layer { name: "mnist" type: "Data" top: "data" top: "label"
        data_param { source: "%s" backend: LMDB batch_size: 2 }
        transform_param { scale: 0.00390625 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
''' % source)
    net = caffe.Net(str(net_file), caffe.TRAIN)
    net.forward()
    np.testing.assert_array_equal(net.blobs['data'].data,
                                  arrays[:2].astype(np.float32) * np.float32(0.00390625))
    net.backward()
    assert 'Data' in caffe.layer_type_list()


def test_errors(tmp_path):
    with pytest.raises(CaffeError, match='Data layer .*Could not open file .*nowhere'):
        data_layer(str(tmp_path / 'nowhere'))
    source = make_db(tmp_path, images(2), 'leveldb')
    with pytest.raises(CaffeError, match='is a leveldb database, not lmdb: set the backend '
                                         'to LEVELDB'):
        data_layer(source, 'lmdb')
    (tmp_path / 'plain').mkdir()
    with pytest.raises(CaffeError, match='not an lmdb database'):
        data_layer(str(tmp_path / 'plain'))
    empty = write_datum_db(str(tmp_path / 'empty'), [])
    with pytest.raises(CaffeError, match='database .*empty is empty'):
        data_layer(empty)
    with pytest.raises(CaffeError, match='batch_size must be positive'):
        data_layer(make_db(tmp_path, images(1), name='one'), batch=0)


def test_corrupt_records_name_the_record(tmp_path):
    good = io.array_to_datum(images(1, (1, 2, 2))[0], 0)
    short = caffe_pb2.Datum(channels=1, height=2, width=2, data=b'abc')
    source = write_datum_db(str(tmp_path / 'db'), [good, b'\xff\xff\xff\xff', short])
    layer, _, top = data_layer(source, batch=1)
    forward(layer, top)
    with pytest.raises(CaffeError, match=r"record 1 \(key '00000001'\) of .*db is not a Datum"):
        forward(layer, top)
    # The error stays: the layer does not go on past a bad record.
    with pytest.raises(CaffeError, match='record 1'):
        forward(layer, top)
    source = write_datum_db(str(tmp_path / 'db2'), [good, short])
    layer, _, top = data_layer(source, batch=2)
    with pytest.raises(CaffeError, match=r"record 1 .*3 bytes of pixels for a 1 x 2 x 2 image"):
        forward(layer, top)
    source = write_datum_db(str(tmp_path / 'db3'), [caffe_pb2.Datum(encoded=True, data=b'no')])
    with pytest.raises(CaffeError, match='record 0 .*not an image OpenCV decodes'):
        data_layer(source)


def test_layer_type_list_has_the_data_layers():
    types = caffe.layer_type_list()
    for name in ('Data', 'ImageData', 'HDF5Data', 'HDF5Output', 'WindowData'):
        assert name in types
    assert types == sorted(types)
