"""Files a user may receive run no code when read. Each of the seven entry points that read a
data file is given a crafted pickle that, when unpickled, writes a marker file (the proof that
it ran); the tests assert that the marker was never written and that the tool says which file
it refused in one error line. Valid files of the wrong kind get one clear error naming them."""
import glob
import os
import pickle
import shutil

import numpy as np
import pytest

from tool_runs import CFGS, TEST_DEF, TOY, assert_one_error as one_error, run_tool
from tool_runs import save_toy_test_weights

SMALL = ['TRAIN.SCALES', '[120]', 'TRAIN.MAX_SIZE', '200', 'TEST.SCALES', '[120]',
         'TEST.MAX_SIZE', '200']


class Payload:
    """Unpickling this runs open(marker, 'w').write('ran')."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, ("open(%r, 'w').write('ran')" % self.marker,))


def write_crafted(path, marker, inside=False):
    """A pickle that runs code when loaded; with inside, the payload hides in a list of arrays
    (what a proposals file holds) after a valid entry."""
    obj = [np.zeros((1, 4), np.float32), Payload(marker)] if inside else Payload(marker)
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(str(path), 'wb') as f:
        pickle.dump(obj, f, protocol=2)
    return path


def test_the_crafted_pickle_runs_code_when_unpickled(tmp_path):
    # The marker is a real proof: plain pickle.load of the crafted file writes it.
    marker = tmp_path / 'marker'
    path = write_crafted(tmp_path / 'x.pkl', marker)
    with open(str(path), 'rb') as f:
        pickle.load(f)
    assert marker.read_text() == 'ran'


@pytest.fixture(scope='module')
def toy_source(tmp_path_factory):
    from datasets.toy import generate_toy_dataset
    data = tmp_path_factory.mktemp('untrusted_toy')
    generate_toy_dataset(str(data / 'toy'), num_train=2, num_test=2)
    return data / 'toy'


@pytest.fixture
def data_dir(tmp_path, toy_source):
    shutil.copytree(str(toy_source), str(tmp_path / 'data' / 'toy'))
    return tmp_path / 'data'


@pytest.fixture(scope='module')
def toy_model(tmp_path_factory):
    return save_toy_test_weights(tmp_path_factory.mktemp('untrusted_model') / 'toy.caffemodel')


# The seven entry points -------------------------------------------------------------------------

def _train_args(data_dir, root, iters, *extra):
    return ['--gpu', 'cpu', '--solver', os.path.join(TOY, 'solver.prototxt'), '--imdb',
            'toy_train', '--iters', str(iters)] + list(extra) + CFGS + [
        '--set', 'DATA_DIR', str(data_dir), 'ROOT_DIR', str(root)] + SMALL


def test_trainstate_beside_restore(data_dir, tmp_path):
    marker = tmp_path / 'marker'
    root = tmp_path / 'root'
    code, _, err = run_tool('train_net.py', _train_args(data_dir, root, 1))
    assert code == 0, err
    (solverstate,) = glob.glob(str(root / 'output' / '*' / 'toy_train' / '*_iter_1.solverstate'))
    state = write_crafted(solverstate.replace('.solverstate', '.trainstate'), marker)
    result = run_tool('train_net.py', _train_args(data_dir, root, 2, '--restore', solverstate))
    assert not marker.exists()
    one_error(result, state)


def _crafted_beside(cache, marker, extensions):
    """Crafted pickles under the cache's name with each of the extensions."""
    stem = os.path.splitext(str(cache))[0]
    for ext in extensions:
        write_crafted(stem + ext, marker)


def test_roidb_cache(data_dir, tmp_path):
    from datasets.factory import get_imdb
    marker = tmp_path / 'marker'
    expected = get_imdb('toy_train', str(data_dir)).gt_roidb()
    (cache,) = glob.glob(str(data_dir / 'cache' / 'toy_train_gt_roidb.*'))
    # A crafted file under the cache's name, and under the release's .pkl name beside it.
    _crafted_beside(cache, marker, ('.npz', '.pkl'))
    roidb = get_imdb('toy_train', str(data_dir)).gt_roidb()
    assert not marker.exists()
    for a, b in zip(roidb, expected):  # rebuilt from the annotations
        np.testing.assert_array_equal(a['boxes'], b['boxes'])
    assert cache.endswith('.npz')


def test_voc_annotations_cache(data_dir, tmp_path):
    from datasets.voc_eval import voc_eval
    marker = tmp_path / 'marker'
    toy = data_dir / 'toy'
    detpath = tmp_path / 'det_{}.txt'
    (tmp_path / 'det_square.txt').write_text('')
    cachedir = tmp_path / 'annotations_cache'
    args = (str(detpath), str(toy / 'Annotations' / '{}.xml'),
            str(toy / 'ImageSets' / 'Main' / 'test.txt'), 'square', str(cachedir))
    voc_eval(*args)
    (cache,) = os.listdir(str(cachedir))
    _crafted_beside(cachedir / cache, marker, ('.json', '.pkl'))
    voc_eval(*args)
    assert not marker.exists()
    assert cache.endswith('_annots.json')


@pytest.mark.parametrize('name,inside', [('proposals.pkl', False), ('proposals.pkl', True),
                                         ('proposals.npz', False)])
def test_test_net_proposals(data_dir, tmp_path, toy_model, name, inside):
    marker = tmp_path / 'marker'
    path = write_crafted(tmp_path / name, marker, inside)
    result = run_tool('test_net.py', [
        '--gpu', 'cpu', '--def', TEST_DEF, '--net', str(toy_model),
        '--imdb', 'toy_test', '--proposals', str(path)] + CFGS + [
        '--set', 'DATA_DIR', str(data_dir), 'ROOT_DIR', str(tmp_path / 'root')] + SMALL)
    assert not marker.exists()
    line = one_error(result, path)
    if name.endswith('.pkl'):
        assert 'refused' in line and 'builtin__.exec' in line  # protocol 2's name


def test_reval_detections(data_dir, tmp_path):
    marker = tmp_path / 'marker'
    out = tmp_path / 'out'
    path = write_crafted(out / 'detections.pkl', marker)
    result = run_tool('reval.py', [str(out), '--imdb', 'toy_test', '--set', 'DATA_DIR',
                                   str(data_dir)])
    assert not marker.exists()
    one_error(result, path, 'refused')


def test_eval_recall_rpn_file(data_dir, tmp_path):
    marker = tmp_path / 'marker'
    path = write_crafted(tmp_path / 'proposals.pkl', marker, inside=True)
    result = run_tool('eval_recall.py', ['--imdb', 'toy_test', '--rpn-file', str(path),
                                         '--set', 'DATA_DIR', str(data_dir)])
    assert not marker.exists()
    one_error(result, path, 'refused')


def test_cached_detections_with_a_matching_key(data_dir, tmp_path, toy_model):
    import caffe
    from datasets.factory import get_imdb
    from fast_rcnn import detection_cache
    from fast_rcnn.test import run_test
    from fast_rcnn.test_settings import TestSettings
    marker = tmp_path / 'marker'
    prototxt = TEST_DEF
    net = caffe.Net(prototxt, str(toy_model), caffe.TEST)
    out = tmp_path / 'out'
    settings = TestSettings(has_rpn=True, scales=(120,), max_size=200)

    def test():
        return run_test(net, get_imdb('toy_test', str(data_dir)), str(out), settings,
                        model_files=(prototxt, str(toy_model)))

    first = test()
    assert first.seconds_per_image is not None
    det_file = first.detections_file
    assert test().seconds_per_image is None  # the key matches: reused
    # The same key beside a crafted file, under our name and under the release's name.
    key = detection_cache.read_key(det_file)
    with open(detection_cache.key_file(det_file)) as f:
        key_text = f.read()
    for path in (det_file, str(out / 'detections.pkl')):
        write_crafted(path, marker)
        with open(detection_cache.key_file(path), 'w') as f:
            f.write(key_text)
    assert detection_cache.read_key(det_file) == key
    again = test()
    assert not marker.exists()
    assert again.seconds_per_image is not None  # unreadable: detected again
    for a, b in zip(again.all_boxes[1:], first.all_boxes[1:]):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    assert det_file.endswith('detections.npz')


# The release's pickles are still read --------------------------------------------------------

def python2_pickle(obj):
    """obj pickled as the release's Python 2 code wrote it: protocol 2, raw bytes as BINSTRING
    (Python 2's str), and numpy's functions under numpy.core.multiarray."""
    import io
    import struct

    class Pickler(pickle._Pickler):
        dispatch = dict(pickle._Pickler.dispatch)

        def save_bytes(self, data):
            if len(data) < 256:
                self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
            else:
                self.write(pickle.BINSTRING + struct.pack('<i', len(data)) + data)
            self.memoize(data)
        dispatch[bytes] = save_bytes

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b'numpy._core.multiarray\n', b'numpy.core.multiarray\n')


def test_release_pickles_are_read(tmp_path):
    from datasets.proposals_file import load_proposals
    from fast_rcnn.detection_cache import load_detections
    proposals = [np.array([[1, 2, 30, 40], [5, 5, 9, 9]], np.float32),
                 np.zeros((0, 4), np.float32)]
    detections = [[[], []], [np.array([[1, 2, 3, 4, 0.5]], np.float32),
                             np.zeros((0, 5), np.float32)]]
    for i, data in enumerate([python2_pickle(proposals), pickle.dumps(proposals, 2),
                              pickle.dumps(proposals, pickle.HIGHEST_PROTOCOL)]):
        assert b'numpy.core.multiarray' in data or i > 0
        path = tmp_path / ('p%d.pkl' % i)
        path.write_bytes(data)
        loaded = load_proposals(str(path), 2)
        for a, b in zip(loaded, proposals):
            np.testing.assert_array_equal(a, b)
            assert a.dtype == np.float32
    for i, data in enumerate([python2_pickle(detections), pickle.dumps(detections, 2)]):
        path = tmp_path / ('d%d.pkl' % i)
        path.write_bytes(data)
        loaded = load_detections(str(path), 2, 2)
        assert loaded[0] == [[], []]
        np.testing.assert_array_equal(loaded[1][0], detections[1][0])
        assert loaded[1][1].shape == (0, 5)


def test_our_files_round_trip_exactly(tmp_path):
    from datasets.proposals_file import load_proposals, save_proposals
    from fast_rcnn.detection_cache import load_detections, save
    rng = np.random.RandomState(0)
    proposals = [rng.rand(n, 4).astype(np.float32) * 100 for n in (3, 0, 7)]
    save_proposals(str(tmp_path / 'p.npz'), proposals)
    for a, b in zip(load_proposals(str(tmp_path / 'p.npz'), 3), proposals):
        np.testing.assert_array_equal(a, b)
    detections = [[[], [], []]] + [[rng.rand(n, 5).astype(np.float32) for n in (2, 0, 1)]
                                   for _ in range(2)]
    save(str(tmp_path / 'detections.npz'), detections, None)
    loaded = load_detections(str(tmp_path / 'detections.npz'), 3, 3)
    assert loaded[0] == [[], [], []]
    for a, b in zip(loaded[1] + loaded[2], detections[1] + detections[2]):
        np.testing.assert_array_equal(a, b)


# Valid files of the wrong kind -----------------------------------------------------------------

def _wrong_kind_cases(tmp_path):
    """(path, what it holds) of valid files that are not proposals."""
    from fast_rcnn.detection_cache import save
    cases = []
    path = tmp_path / 'dict.pkl'
    path.write_bytes(pickle.dumps({'boxes': np.zeros((2, 4))}))
    cases.append((path, 'dict'))
    path = tmp_path / 'three_columns.pkl'
    path.write_bytes(pickle.dumps([np.zeros((2, 3), np.float32), np.zeros((1, 3), np.float32)]))
    cases.append((path, 'shape (2, 3)'))
    path = tmp_path / 'strings.pkl'
    path.write_bytes(pickle.dumps(['a', 'b']))
    cases.append((path, 'entry 0 is a str'))
    path = tmp_path / 'one_image.pkl'
    path.write_bytes(pickle.dumps([np.zeros((2, 4), np.float32)]))
    cases.append((path, 'for 1 images'))
    path = tmp_path / 'detections.npz'
    save(str(path), [[[], []], [np.zeros((0, 5), np.float32)] * 2], None)
    cases.append((path, 'is a detections file, not a proposals file'))
    path = tmp_path / 'plain.npz'
    np.savez(str(path), boxes=np.zeros((2, 4)))
    cases.append((path, 'of another program'))
    path = tmp_path / 'text.npz'
    path.write_text('hello')
    cases.append((path, 'not a readable .npz'))
    return cases


def test_proposal_readers_name_a_file_of_the_wrong_kind(tmp_path):
    from datasets.proposals_file import load_proposals
    from utils.data_files import DataFileError
    for path, expected in _wrong_kind_cases(tmp_path):
        with pytest.raises(DataFileError) as info:
            load_proposals(str(path), 2)
        assert str(path) in str(info.value) and expected in str(info.value), info.value


def test_eval_recall_names_a_file_of_the_wrong_kind(tmp_path, data_dir):
    path = tmp_path / 'dict.pkl'
    path.write_bytes(pickle.dumps({'boxes': np.zeros((2, 4))}))
    one_error(run_tool('eval_recall.py', ['--imdb', 'toy_test', '--rpn-file', str(path),
                                          '--set', 'DATA_DIR', str(data_dir)]), path, 'dict')


@pytest.mark.parametrize('content,expected', [
    (lambda: [np.zeros((2, 4), np.float32)] * 2, 'list of per-image arrays'),
    (lambda: [[[], []]] * 3, 'for 3 classes x 2 images'),
    (lambda: [[[], []], [np.zeros((1, 4), np.float32), []]] * 2, 'shape (1, 4)'),
    (lambda: {'all_boxes': []}, 'dict'),
])
def test_reval_names_detections_of_the_wrong_kind(tmp_path, data_dir, content, expected):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'detections.pkl').write_bytes(pickle.dumps(content()))
    one_error(run_tool('reval.py', [str(out), '--imdb', 'toy_test', '--set', 'DATA_DIR',
                                    str(data_dir)]), out / 'detections.pkl', expected)


def test_reval_names_proposals_in_place_of_detections(tmp_path, data_dir):
    from datasets.proposals_file import save_proposals
    out = tmp_path / 'out'
    save_proposals(str(out / 'detections.npz'), [np.zeros((1, 4), np.float32)] * 2)
    one_error(run_tool('reval.py', [str(out), '--imdb', 'toy_test', '--set', 'DATA_DIR',
                                    str(data_dir)]), out / 'detections.npz',
              'is a proposals file, not a detections file')


def test_a_file_of_another_kind_as_trainstate_is_refused_naming_it(tmp_path):
    from fast_rcnn.detection_cache import save
    from fast_rcnn.train_state import SnapshotError, check_snapshot
    stem = str(tmp_path / 'x_iter_2')
    for ext in ('.caffemodel', '.solverstate'):
        with open(stem + ext, 'wb') as f:
            f.write(b'\x08\x02')
    save(stem + '.trainstate', [[[]]], None)  # a valid detections archive
    with pytest.raises(SnapshotError) as info:
        check_snapshot(stem + '.solverstate')
    assert '%s.trainstate is a detections file, not a trainstate file' % stem in str(info.value)
    assert 'no complete snapshot of this run in %s' % tmp_path in str(info.value)
