"""HDF5Data against the rows of the files it lists (read back with h5py), with Caffe's order
across files, shuffling repeatable under a seed, and errors; HDF5Output against the file read
back with h5py."""
import os

import h5py
import numpy as np
import pytest

import caffe
from caffe.common import CaffeError
from caffe.testing import build_layer


def write_h5(path, **datasets):
    with h5py.File(str(path), 'w') as f:
        for name, values in datasets.items():
            f.create_dataset(name, data=values)
    return str(path)


def write_list(path, files):
    path.write_text('\n'.join(files) + '\n')
    return str(path)


def hdf5_layer(source, batch, tops=('data', 'label'), extra='', phase=caffe.TEST):
    text = ('name: "h5" type: "HDF5Data" %s hdf5_data_param { source: "%s" batch_size: %d %s }'
            % (' '.join('top: "%s"' % t for t in tops), source, batch, extra))
    return build_layer(text, [], phase=phase)


def forward(layer, top):
    layer.forward([], top)
    return [t.data.copy() for t in top]


def two_files(tmp_path):
    rs = np.random.RandomState(0)
    a = dict(data=rs.randn(3, 2, 4), label=np.arange(3, dtype=np.int64))
    b = dict(data=rs.randn(2, 2, 4).astype(np.float32), label=np.arange(10, 12, dtype=np.int32))
    files = [write_h5(tmp_path / 'a.h5', **a), write_h5(tmp_path / 'b.h5', **b)]
    # two names on one line, separated by white space, as Caffe's `>>` reads them
    (tmp_path / 'list.txt').write_text('%s   %s\n' % tuple(files))
    return str(tmp_path / 'list.txt'), a, b


def test_rows_in_order_across_files_as_float32(tmp_path):
    source, a, b = two_files(tmp_path)
    layer, _, top = hdf5_layer(source, batch=4)
    assert top[0].shape == (4, 2, 4) and top[1].shape == (4,)
    rows = np.concatenate([a['data'], b['data']]).astype(np.float32)
    labels = np.concatenate([a['label'], b['label']]).astype(np.float32)
    order = [0, 1, 2, 3, 4, 0, 1, 2]
    for k in range(2):
        data, label = forward(layer, top)
        np.testing.assert_array_equal(data, rows[order[4 * k:4 * k + 4]])
        np.testing.assert_array_equal(label, labels[order[4 * k:4 * k + 4]])


def test_shuffle_visits_every_row_and_repeats_under_a_seed(tmp_path):
    source, a, b = two_files(tmp_path)
    labels = []
    for _ in range(2):
        caffe.set_random_seed(4)
        layer, _, top = hdf5_layer(source, batch=5, extra='shuffle: true')
        labels.append([forward(layer, top)[1] for _ in range(4)])
    np.testing.assert_array_equal(labels[0], labels[1])
    # Each pass over the files shows every row once: 5 rows per pass, one pass per batch.
    for batch in labels[0]:
        assert sorted(batch) == [0, 1, 2, 10, 11]
    assert any(list(batch) != [0, 1, 2, 10, 11] for batch in labels[0])


def test_solver_ranks_take_every_nth_row(tmp_path):
    source, a, b = two_files(tmp_path)
    try:
        caffe.set_solver_count(2)
        caffe.set_solver_rank(0)
        layer, _, top = hdf5_layer(source, batch=3, tops=('label',), phase=caffe.TRAIN)
        # offsets 0, 2, 4 of the rows 0 1 2 | 10 11
        np.testing.assert_array_equal(forward(layer, top)[0], [0, 2, 11])
    finally:
        caffe.set_solver_count(1)


def test_errors(tmp_path):
    source, a, b = two_files(tmp_path)
    with pytest.raises(CaffeError, match='does not transform data'):
        build_layer('name: "h" type: "HDF5Data" top: "data" transform_param { scale: 2 } '
                    'hdf5_data_param { source: "%s" batch_size: 1 }' % source, [])
    with pytest.raises(CaffeError, match='Could not open file .*nolist.txt'):
        hdf5_layer(str(tmp_path / 'nolist.txt'), 1)
    (tmp_path / 'blank.txt').write_text('  \n')
    with pytest.raises(CaffeError, match='at least 1 HDF5 filename listed in .*blank.txt'):
        hdf5_layer(str(tmp_path / 'blank.txt'), 1)
    gone = write_list(tmp_path / 'gone.txt', [str(tmp_path / 'gone.h5')])
    with pytest.raises(CaffeError, match=r'HDF5 file .*gone.h5 \(line 1 of .*gone.txt\) not '
                                         r'found'):
        hdf5_layer(gone, 1)
    with pytest.raises(CaffeError, match="has no dataset 'other'"):
        hdf5_layer(source, 1, tops=('data', 'other'))
    (tmp_path / 'junk.h5').write_bytes(b'not hdf5 at all')
    with pytest.raises(CaffeError, match='failed opening HDF5 file .*junk.h5'):
        hdf5_layer(write_list(tmp_path / 'junk.txt', [str(tmp_path / 'junk.h5')]), 1)
    rows = write_h5(tmp_path / 'rows.h5', data=np.zeros((3, 2)), label=np.zeros(4))
    with pytest.raises(CaffeError, match="dataset 'label' has 4 rows, 'data' has 3"):
        hdf5_layer(write_list(tmp_path / 'rows.txt', [rows]), 1)
    strings = write_h5(tmp_path / 'str.h5', data=np.array([b'a', b'b']))
    with pytest.raises(CaffeError, match='integer and floating-point datasets only'):
        hdf5_layer(write_list(tmp_path / 'str.txt', [strings]), 1, tops=('data',))
    shapes = write_h5(tmp_path / 'shape.h5', data=np.zeros((2, 3, 4)), label=np.zeros(2))
    layer, _, top = hdf5_layer(write_list(tmp_path / 'shapes.txt', [source_file(tmp_path),
                                                                     shapes]), 4)
    with pytest.raises(CaffeError, match='every file must have the same row shapes'):
        forward(layer, top)


def source_file(tmp_path):
    return str(tmp_path / 'a.h5')


def output_layer(path):
    return build_layer('name: "out" type: "HDF5Output" bottom: "data" bottom: "label" '
                       'hdf5_output_param { file_name: "%s" }' % path,
                       [np.zeros((2, 3)), np.zeros(2)])


def test_hdf5_output_writes_data_and_label_in_caffes_4d_shape(tmp_path):
    path = str(tmp_path / 'out' / 'batch.h5')
    layer, bottom, top = output_layer(path)
    # Setup creates the file, empty, as Caffe's H5Fcreate does.
    with h5py.File(path, 'r') as f:
        assert list(f) == []
    rs = np.random.RandomState(1)
    bottom[0].data[...] = rs.randn(2, 3)
    bottom[1].data[...] = [4, 7]
    layer.forward(bottom, top)
    with h5py.File(path, 'r') as f:
        assert sorted(f) == ['data', 'label']
        assert f['data'].dtype == np.float32 and f['data'].shape == (2, 3, 1, 1)
        np.testing.assert_array_equal(f['data'][()].reshape(2, 3), bottom[0].data)
        np.testing.assert_array_equal(f['label'][()].ravel(), [4, 7])
        assert f['label'].shape == (2, 1, 1, 1)
    # Caffe's second forward fails adding the datasets again; so does this one, clearly,
    # and the file keeps the first batch.
    with pytest.raises(CaffeError, match='one batch per file'):
        layer.forward(bottom, top)
    assert [n for n in os.listdir(tmp_path / 'out') if n != 'batch.h5'] == []


def test_hdf5_output_round_trips_through_hdf5_data(tmp_path):
    path = str(tmp_path / 'batch.h5')
    layer, bottom, top = output_layer(path)
    bottom[0].data[...] = np.arange(6).reshape(2, 3)
    bottom[1].data[...] = [1, 0]
    layer.forward(bottom, top)
    reader, _, rtop = hdf5_layer(write_list(tmp_path / 'l.txt', [path]), 2)
    data, label = forward(reader, rtop)
    np.testing.assert_array_equal(data.reshape(2, 3), np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(label.ravel(), [1, 0])


def test_hdf5_output_errors(tmp_path):
    with pytest.raises(CaffeError, match='file_name is required'):
        build_layer('name: "o" type: "HDF5Output" bottom: "a" bottom: "b"',
                    [np.zeros(2), np.zeros(2)])
    layer, bottom, top = build_layer(
        'name: "o" type: "HDF5Output" bottom: "a" bottom: "b" hdf5_output_param { file_name: '
        '"%s" }' % (tmp_path / 'x.h5'), [np.zeros((2, 1)), np.zeros(3)])
    with pytest.raises(CaffeError, match='same batch size'):
        layer.forward(bottom, top)
