"""tools/convert_imageset.py and tools/compute_image_mean.py, run as commands, against the
images read with OpenCV and the databases read back with lmdb/plyvel directly."""
import os
import subprocess
import sys

import cv2
import lmdb
import numpy as np
import plyvel
import pytest

import caffe
from caffe.proto import caffe_pb2
from caffe.testing import build_layer, write_datum_db

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONVERT = os.path.join(ROOT, 'tools', 'convert_imageset.py')
MEAN = os.path.join(ROOT, 'tools', 'compute_image_mean.py')


def run(tool, *args):
    return subprocess.run([sys.executable, tool] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=300)


def read_db(path, backend):
    """[(key, Datum)] in key order, read with the bindings directly."""
    if backend == 'lmdb':
        with lmdb.open(str(path), readonly=True, lock=False) as env, env.begin() as txn:
            items = list(txn.cursor())
    else:
        db = plyvel.DB(str(path))
        items = list(db.iterator())
        db.close()
    return [(k.decode(), caffe_pb2.Datum.FromString(v)) for k, v in items]


def pixels(datum):
    return np.frombuffer(datum.data, np.uint8).reshape(datum.channels, datum.height, datum.width)


@pytest.fixture
def images(tmp_path):
    rs = np.random.RandomState(0)
    folder = tmp_path / 'imgs'
    folder.mkdir()
    names = ['a.png', 'b.jpg', 'c.png']
    for name in names:
        cv2.imwrite(str(folder / name), rs.randint(0, 256, size=(9, 12, 3)).astype(np.uint8))
    listing = tmp_path / 'list.txt'
    listing.write_text('a.png 3\nb.jpg 1\nc.png 4\n')
    return str(folder) + '/', str(listing), names


@pytest.mark.parametrize('backend', ['lmdb', 'leveldb'])
def test_convert_stores_the_images_pixels_in_list_order(tmp_path, images, backend):
    root, listing, names = images
    out = tmp_path / 'db'
    r = run(CONVERT, '--backend=%s' % backend, root, listing, out)
    assert r.returncode == 0, r.stderr
    assert 'Processed 3 files.' in r.stdout
    records = read_db(out, backend)
    assert [k for k, _ in records] == ['00000000_a.png', '00000001_b.jpg', '00000002_c.png']
    for (_, datum), name, label in zip(records, names, [3, 1, 4]):
        assert datum.label == label and not datum.encoded
        np.testing.assert_array_equal(pixels(datum),
                                      cv2.imread(root + name).transpose(2, 0, 1))
    assert [n for n in os.listdir(tmp_path) if n.startswith('.')] == []


def test_convert_resize_and_gray_with_gflags_spellings(tmp_path, images):
    root, listing, names = images
    out = tmp_path / 'db'
    r = run(CONVERT, '-gray', '-resize_height', 4, '--resize_width=5', root, listing, out)
    assert r.returncode == 0, r.stderr
    for (_, datum), name in zip(read_db(out, 'lmdb'), names):
        expected = cv2.resize(cv2.imread(root + name, cv2.IMREAD_GRAYSCALE), (5, 4))
        np.testing.assert_array_equal(pixels(datum), expected[None])
    r = run(CONVERT, '--gray=false', root, listing, tmp_path / 'db2')
    assert r.returncode == 0, r.stderr
    assert read_db(tmp_path / 'db2', 'lmdb')[0][1].channels == 3


def test_convert_encoded_keeps_the_file_or_reencodes(tmp_path, images):
    root, listing, names = images
    r = run(CONVERT, '--encoded', root, listing, tmp_path / 'db')
    assert r.returncode == 0, r.stderr
    for (_, datum), name in zip(read_db(tmp_path / 'db', 'lmdb'), names):
        # colour, no resize, the encoding is the file's own: the file's bytes
        assert datum.encoded and datum.data == open(root + name, 'rb').read()
    r = run(CONVERT, '--encode_type=png', root, listing, tmp_path / 'png')
    assert r.returncode == 0, r.stderr
    assert 'assuming encoded=true' in r.stdout
    datum = read_db(tmp_path / 'png', 'lmdb')[1][1]
    assert datum.data[:8] == b'\x89PNG\r\n\x1a\n'
    decoded = cv2.imdecode(np.frombuffer(datum.data, np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(decoded, cv2.imread(root + 'b.jpg'))


def test_convert_shuffle_skip_and_refusals(tmp_path, images):
    root, listing, names = images
    with open(listing, 'a') as f:
        f.write('gone.png 9\n')
    r = run(CONVERT, '--shuffle', root, listing, tmp_path / 'db')
    assert r.returncode == 0, r.stderr
    assert 'gone.png' in r.stderr and 'Skipped 1 of 4' in r.stdout
    records = read_db(tmp_path / 'db', 'lmdb')
    assert sorted(k.split('_', 1)[1] for k, _ in records) == names
    # keys number the shuffled list: the order is the shuffle's
    assert [int(k[:8]) for k, _ in records] == sorted(int(k[:8]) for k, _ in records)
    r = run(CONVERT, root, listing, tmp_path / 'db')
    assert r.returncode == 1 and 'db already exists' in r.stderr
    cv2.imwrite(root + 'c.png', np.zeros((3, 3, 3), np.uint8))
    r = run(CONVERT, '--check_size', root, listing, tmp_path / 'checked')
    assert r.returncode == 1 and 'c.png (line 3 of' in r.stderr
    # nothing half-written
    assert not os.path.exists(tmp_path / 'checked')
    assert [n for n in os.listdir(tmp_path) if n.startswith('.')] == []
    r = run(CONVERT, '--backend=bdb', root, listing, tmp_path / 'x')
    assert r.returncode == 1 and 'unknown database backend' in r.stderr


def test_compute_image_mean_is_caffes_float32_sum_over_count(tmp_path):
    rs = np.random.RandomState(1)
    arrays = rs.randint(0, 256, size=(5, 3, 4, 6)).astype(np.uint8)
    encoded = caffe_pb2.Datum(encoded=True, data=cv2.imencode('.png', arrays[4].transpose(
        1, 2, 0))[1].tobytes())
    records = [caffe.io.array_to_datum(a, 0) for a in arrays[:4]] + [encoded]
    source = write_datum_db(str(tmp_path / 'db'), records, 'leveldb')
    r = run(MEAN, '-backend', 'leveldb', source, tmp_path / 'mean.binaryproto')
    assert r.returncode == 0, r.stderr
    blob = caffe_pb2.BlobProto.FromString((tmp_path / 'mean.binaryproto').read_bytes())
    assert (blob.num, blob.channels, blob.height, blob.width) == (1, 3, 4, 6)
    mean = np.array(blob.data, np.float32).reshape(3, 4, 6)
    np.testing.assert_allclose(mean, arrays.astype(np.float64).mean(axis=0), rtol=1e-6)
    total = np.zeros((3, 4, 6), np.float32)
    for a in arrays:            # Caffe: one float32 addition per record, in order
        total = np.float32(total + a)
    np.testing.assert_array_equal(mean, total / np.float32(5))
    for c in range(3):
        assert 'mean_value channel [%d]: %s' % (c, str(mean[c].mean())[:6]) in r.stdout


def test_compute_image_mean_errors(tmp_path):
    mixed = write_datum_db(str(tmp_path / 'mixed'), [
        caffe.io.array_to_datum(np.zeros((1, 2, 2), np.uint8)),
        caffe.io.array_to_datum(np.zeros((1, 3, 2), np.uint8))])
    r = run(MEAN, mixed)
    assert r.returncode == 1 and "record 1 (key '00000001')" in r.stderr
    r = run(MEAN, write_datum_db(str(tmp_path / 'empty'), []))
    assert r.returncode == 1 and 'is empty' in r.stderr
    r = run(MEAN, tmp_path / 'nowhere')
    assert r.returncode == 1 and 'nowhere' in r.stderr


def test_convert_mean_and_data_layer_together(tmp_path, images):
    root, listing, names = images
    db = tmp_path / 'db'
    assert run(CONVERT, root, listing, db).returncode == 0
    assert run(MEAN, db, tmp_path / 'mean.binaryproto').returncode == 0
    layer, _, top = build_layer(
        'name: "d" type: "Data" top: "data" top: "label" data_param { source: "%s" backend: '
        'LMDB batch_size: 3 } transform_param { mean_file: "%s" }'
        % (db, tmp_path / 'mean.binaryproto'), [], phase=caffe.TEST)
    layer.forward([], top)
    stack = np.stack([cv2.imread(root + n).transpose(2, 0, 1) for n in names]).astype(np.float32)
    mean = np.zeros(stack.shape[1:], np.float32)
    for image in stack:
        mean = np.float32(mean + image)
    mean /= np.float32(3)
    np.testing.assert_array_equal(top[0].data, stack - mean)
    np.testing.assert_array_equal(top[1].data, [3, 1, 4])
