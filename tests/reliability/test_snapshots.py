"""A snapshot is one unit (.caffemodel, .solverstate, .trainstate sealing them): restore refuses a
set whose parts do not belong together, naming the newest complete one; a copied folder resumes
from its own weights; leftovers of a killed run are cleaned; one training per output folder;
--iters checked; an error during training leaves a snapshot to resume from, exactly."""
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOY = os.path.join(ROOT, 'models', 'toy', 'TOY', 'faster_rcnn_end2end')
SOLVER = os.path.join(TOY, 'solver.prototxt')
CFG_FILES = [os.path.join(ROOT, 'experiments', 'cfgs', 'faster_rcnn_end2end.yml'),
             os.path.join(ROOT, 'experiments', 'cfgs', 'toy.yml')]
SMALL = ['TRAIN.SCALES', '[120]', 'TRAIN.MAX_SIZE', '200', 'TRAIN.SNAPSHOT_ITERS', '2']
PREFIX = 'toy_faster_rcnn'


def train_cmd(data_dir, root, iters, *extra, sets=()):
    args = ['--gpu', 'cpu', '--solver', SOLVER, '--imdb', 'toy_train', '--iters', str(iters)]
    for path in CFG_FILES:
        args += ['--cfg', path]
    args += list(extra) + ['--set', 'DATA_DIR', str(data_dir), 'ROOT_DIR', str(root),
                           'EXP_DIR', 'r'] + SMALL + list(sets)
    return [sys.executable, os.path.join(ROOT, 'tools', 'train_net.py')] + args


def train(data_dir, root, iters, *extra, sets=()):
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    env.pop('FRCN_DEBUG', None)
    proc = subprocess.run(train_cmd(data_dir, root, iters, *extra, sets=sets), cwd=ROOT,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def out_dir(root):
    return os.path.join(str(root), 'output', 'r', 'toy_train')


def snap(root, it, ext='.caffemodel'):
    return os.path.join(out_dir(root), '%s_iter_%d%s' % (PREFIX, it, ext))


def error_line(result):
    code, out, err = result
    assert code == 1, (code, out[-2000:], err)
    assert 'Traceback' not in err, err
    lines = [line for line in err.splitlines() if line.startswith('error:')]
    assert len(lines) == 1, err
    return lines[0]


def weights(path):
    from caffe import io
    from caffe.proto import caffe_pb2
    net = io.read_binary(path, caffe_pb2.NetParameter())
    return [(layer.name, k, io.blobproto_to_array(blob)) for layer in net.layer
            for k, blob in enumerate(layer.blobs)]


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert len(wa) == len(wb) >= 10
    for (na, ka, xa), (nb, kb, xb) in zip(wa, wb):
        assert (na, ka) == (nb, kb)
        np.testing.assert_array_equal(xa, xb, err_msg=na)


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    from datasets.toy import generate_toy_dataset
    data = tmp_path_factory.mktemp('snapshots_data')
    generate_toy_dataset(str(data / 'toy'), num_train=3, num_test=1)
    return data


@pytest.fixture(scope='module')
def straight(data_dir, tmp_path_factory):
    """A run to iteration 6 that was never stopped (snapshots at 2, 4, 6)."""
    root = tmp_path_factory.mktemp('straight')
    code, out, err = train(data_dir, root, 6)
    assert code == 0, err
    return root


def copy_run(straight, tmp_path, upto):
    """A copy of the straight run's output folder as it was at iteration `upto`."""
    root = tmp_path / 'root'
    shutil.copytree(out_dir(straight), out_dir(root), ignore=lambda folder, names: [
        n for n in names if re.search(r'_iter_(\d+)\.', n)
        and int(re.search(r'_iter_(\d+)\.', n).group(1)) > upto])
    return root


# Sets whose parts do not belong together ---------------------------------------------------------

def test_a_set_without_its_trainstate_is_refused_naming_the_newest_complete(
        data_dir, straight, tmp_path):
    root = copy_run(straight, tmp_path, 4)
    os.remove(snap(root, 4, '.trainstate'))  # what a kill between the files leaves
    line = error_line(train(data_dir, root, 6, '--restore', snap(root, 4, '.solverstate')))
    assert snap(root, 4, '.solverstate') in line and 'no %s_iter_4.trainstate' % PREFIX in line
    assert 'resume with --restore %s' % snap(root, 2, '.solverstate') in line
    # Resuming from the snapshot it names ends where the straight run did.
    code, out, err = train(data_dir, root, 6, '--restore', snap(root, 2, '.solverstate'))
    assert code == 0, err
    assert_same_weights(snap(root, 6), snap(straight, 6))


def test_a_stale_trainstate_of_another_run_is_refused(data_dir, straight, tmp_path):
    # Another run (unseeded) trained into the same folder and was killed after writing its
    # weights and solver state: the .trainstate beside them is the first run's.
    root = copy_run(straight, tmp_path, 4)
    other = tmp_path / 'other'
    code, _, err = train(data_dir, other, 2, '--rand')
    assert code == 0, err
    for ext in ('.caffemodel', '.solverstate'):
        shutil.copyfile(snap(other, 2, ext), snap(root, 2, ext))
    line = error_line(train(data_dir, root, 6, '--restore', snap(root, 2, '.solverstate')))
    assert 'does not belong to' in line
    assert 'resume with --restore %s' % snap(root, 4, '.solverstate') in line


def test_a_run_without_bbox_normalization_is_refused_a_snapshot_with_it(
        data_dir, straight, tmp_path):
    root = copy_run(straight, tmp_path, 4)
    line = error_line(train(data_dir, root, 6, '--restore', snap(root, 4, '.solverstate'),
                            sets=('TRAIN.BBOX_REG', 'False')))
    assert 'folded bbox_pred' in line and 'this run does not' in line


def test_a_copied_folder_resumes_from_its_own_weights(data_dir, straight, tmp_path):
    original = tmp_path / 'a'
    code, _, err = train(data_dir, original, 4)
    assert code == 0, err
    copy = tmp_path / 'b'
    shutil.copytree(str(original), str(copy))
    # Anything read from the original folder would now be wrong.
    with open(snap(original, 4), 'r+b') as f:
        f.seek(1000)
        f.write(b'\x00' * 1000)
    code, out, err = train(data_dir, copy, 6, '--restore', snap(copy, 4, '.solverstate'))
    assert code == 0, err
    assert 'names its weights %s; reading %s instead' % (snap(original, 4), snap(copy, 4)) in out
    assert_same_weights(snap(copy, 6), snap(straight, 6))


# Leftovers, the folder lock, --iters ------------------------------------------------------------

def test_leftover_temporary_files_are_removed_at_the_next_start(data_dir, tmp_path):
    root = tmp_path / 'root'
    folder = out_dir(root)
    os.makedirs(folder)
    ours = ['.%s_iter_2.caffemodel.k3j_x9ab.tmp' % PREFIX,
            '.%s_iter_4.trainstate.0a1b2c3d.tmp' % PREFIX,
            '.%s_training.jsonl.qwertyui.tmp' % PREFIX]
    others = ['.notes.txt.abcdefgh.tmp', 'data.tmp', '.%s_iter_2.caffemodel' % PREFIX]
    for name in ours + others:
        open(os.path.join(folder, name), 'w').close()
    code, out, err = train(data_dir, root, 1)
    assert code == 0, err
    left = set(os.listdir(folder))
    assert not left & set(ours) and set(others) <= left
    for name in ours:
        assert 'Removed %s' % os.path.join(folder, name) in out


def test_a_second_training_into_a_folder_in_use_stops_at_once(data_dir, tmp_path):
    from fast_rcnn.folder_lock import training_lock
    root = tmp_path / 'root'
    with training_lock(out_dir(root)):
        line = error_line(train(data_dir, root, 2))
    assert '%s is in use by another training (pid %d' % (out_dir(root), os.getpid()) in line
    assert not [n for n in os.listdir(out_dir(root)) if n.endswith('.caffemodel')]


def test_two_concurrent_trainings_one_stops_the_other_finishes(data_dir, tmp_path):
    root = tmp_path / 'root'
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    procs = [subprocess.Popen(train_cmd(data_dir, root, 30), cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=600) + (p.returncode,) for p in procs]
    codes = sorted(r[2] for r in results)
    assert codes == [0, 1], [r[1][-1500:] for r in results]
    loser = [r for r in results if r[2] == 1][0]
    assert 'is in use by another training' in loser[1]
    # The winner's snapshots are whole sets.
    from fast_rcnn.train_state import check_snapshot
    for it in (2, 30):
        assert check_snapshot(snap(root, it, '.solverstate')).iteration == it


def test_negative_iters_is_an_error_before_the_data_is_read(tmp_path):
    line = error_line(train(tmp_path / 'no_data', tmp_path / 'root', -3))
    assert '--iters is -3' in line


def test_restore_past_iters_is_an_error_and_rewrites_nothing(data_dir, straight, tmp_path):
    root = copy_run(straight, tmp_path, 4)
    def written():
        return {n: os.stat(os.path.join(out_dir(root), n)).st_mtime_ns
                for n in os.listdir(out_dir(root)) if n.startswith(PREFIX)}

    before = written()
    assert len(before) == 7  # two snapshots and the progress log
    line = error_line(train(data_dir, root, 3, '--restore', snap(root, 4, '.solverstate')))
    assert 'at iteration 4, past --iters 3' in line
    # At --iters itself there is nothing to do either, and nothing is written.
    code, out, err = train(data_dir, root, 4, '--restore', snap(root, 4, '.solverstate'))
    assert code == 0, err
    assert 'nothing to train' in out
    assert written() == before


# An error during training -----------------------------------------------------------------------

def _in_process_training(data_dir, root, iters, restore=None):
    """tools/train_net.py's run, in this process (train_experiment, as the tool runs it)."""
    from fast_rcnn.experiment import Experiment, train_experiment
    experiment = Experiment.from_files(CFG_FILES, {
        'DATA_DIR': str(data_dir), 'ROOT_DIR': str(root), 'EXP_DIR': 'r',
        'TRAIN': {'SCALES': [120], 'MAX_SIZE': 200, 'SNAPSHOT_ITERS': 2}})
    return train_experiment(experiment, SOLVER, 'toy_train').run(iters, restore)


def test_an_error_during_training_leaves_a_snapshot_that_resumes_exactly(
        data_dir, tmp_path, monkeypatch, capsys):
    from roi_data_layer import minibatch
    monkeypatch.chdir(ROOT)
    expected = _in_process_training(data_dir, tmp_path / 'straight', 5).final_model

    real, calls = minibatch.load_image, []

    def failing(entry):
        calls.append(entry['image'])
        if len(calls) == 4:  # in iteration 4 (one image per minibatch)
            raise OSError('cannot read image %s (simulated)' % entry['image'])
        return real(entry)

    root = tmp_path / 'root'
    monkeypatch.setattr(minibatch, 'load_image', failing)
    with pytest.raises(OSError, match='simulated'):
        _in_process_training(data_dir, root, 5)
    err = capsys.readouterr().err
    # Iteration 3 was not a periodic snapshot (every 2): the error wrote it.
    assert 'Training stopped by an error at iteration 4' in err
    assert 'resume with --restore %s' % snap(root, 3, '.solverstate') in err
    monkeypatch.setattr(minibatch, 'load_image', real)
    result = _in_process_training(data_dir, root, 5, restore=snap(root, 3, '.solverstate'))
    assert_same_weights(result.final_model, expected)


def test_a_full_disk_names_the_file_it_could_not_write(data_dir, tmp_path):
    import resource
    root = tmp_path / 'root'
    limit = 1 << 20  # the toy net's .caffemodel is about 3 MB; nothing before it is 1 MB

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(train_cmd(data_dir, root, 2), cwd=ROOT, preexec_fn=small_files,
                          env=dict(os.environ, PYTHONUNBUFFERED='1'), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=300)
    line = error_line((proc.returncode, proc.stdout, proc.stderr))
    assert line == 'error: %s: File too large' % snap(root, 2)
    assert not [n for n in os.listdir(out_dir(root)) if n.endswith('.tmp')]
