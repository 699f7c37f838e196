"""Training that survives: exact resume from a snapshot, a NaN loss stopping the run, SIGINT/SIGTERM
writing a snapshot; and the limits: very large images, images with hundreds of boxes or none.
All on the toy net at a small scale, on the CPU."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOY = os.path.join(ROOT, 'models', 'toy', 'TOY', 'faster_rcnn_end2end')
SOLVER = os.path.join(TOY, 'solver.prototxt')
CFGS = ['--cfg', os.path.join(ROOT, 'experiments', 'cfgs', 'faster_rcnn_end2end.yml'),
        '--cfg', os.path.join(ROOT, 'experiments', 'cfgs', 'toy.yml')]
SMALL = ['TRAIN.SCALES', '[120]', 'TRAIN.MAX_SIZE', '200', 'TEST.SCALES', '[120]',
         'TEST.MAX_SIZE', '200']


def tool_cmd(tool, args):
    return [sys.executable, os.path.join(ROOT, 'tools', tool)] + list(args)


def run_tool(tool, args, timeout=300):
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    proc = subprocess.run(tool_cmd(tool, args), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    from datasets.toy import generate_toy_dataset
    data = tmp_path_factory.mktemp('reliability_data')
    generate_toy_dataset(str(data / 'toy'), num_train=3, num_test=2)
    return data


def train_args(data_dir, root, iters, *extra, solver=SOLVER, sets=()):
    return (['--gpu', 'cpu', '--solver', solver, '--imdb', 'toy_train', '--iters', str(iters)]
            + CFGS + list(extra)
            + ['--set', 'DATA_DIR', str(data_dir), 'ROOT_DIR', str(root), 'EXP_DIR', 'r']
            + SMALL + list(sets))


def out_dir(root):
    return os.path.join(str(root), 'output', 'r', 'toy_train')


def snapshot(root, it, ext='.caffemodel'):
    return os.path.join(out_dir(root), 'toy_faster_rcnn_iter_%d%s' % (it, ext))


# Resume -----------------------------------------------------------------------------------------

def test_interrupted_and_resumed_run_ends_with_the_same_weights(data_dir, tmp_path):
    straight, resumed = tmp_path / 'straight', tmp_path / 'resumed'
    code, out, err = run_tool('train_net.py', train_args(data_dir, straight, 6))
    assert code == 0, err
    code, out, err = run_tool('train_net.py', train_args(data_dir, resumed, 3))
    assert code == 0, err
    assert os.path.isfile(snapshot(resumed, 3, '.trainstate'))
    code, out, err = run_tool('train_net.py', train_args(
        data_dir, resumed, 6, '--restore', snapshot(resumed, 3, '.solverstate')))
    assert code == 0, err
    assert 'Iteration 4/6' in out and 'Iteration 1/6' not in out

    import caffe
    from caffe import io
    from caffe.proto import caffe_pb2
    a = io.read_binary(snapshot(straight, 6), caffe_pb2.NetParameter())
    b = io.read_binary(snapshot(resumed, 6), caffe_pb2.NetParameter())
    compared = 0
    for la, lb in zip(a.layer, b.layer):
        assert la.name == lb.name
        for ba, bb in zip(la.blobs, lb.blobs):
            np.testing.assert_array_equal(io.blobproto_to_array(ba), io.blobproto_to_array(bb),
                                          err_msg=la.name)
            compared += 1
    assert compared >= 10
    # The weights moved during the last three iterations (so the comparison means something).
    c = io.read_binary(snapshot(resumed, 3), caffe_pb2.NetParameter())
    moved = [not np.array_equal(io.blobproto_to_array(x.blobs[0]), io.blobproto_to_array(
        y.blobs[0])) for x, y in zip(c.layer, b.layer) if x.blobs]
    assert all(moved)
    del caffe


# A loss that becomes NaN ------------------------------------------------------------------------

def test_nan_loss_stops_training_and_keeps_the_last_snapshot(data_dir, tmp_path):
    # A learning rate this large overflows the weights within a few iterations.
    text = open(SOLVER).read()
    text = re.sub(r'base_lr: \S+', 'base_lr: 1e30', text)
    text = re.sub(r'clip_gradients: \S+', '', text)
    text = text.replace('models/toy/', os.path.join(ROOT, 'models', 'toy') + '/')
    solver = tmp_path / 'solver.prototxt'
    solver.write_text(text)
    root = tmp_path / 'root'
    result = tmp_path / 'result.json'
    code, out, err = run_tool('train_net.py', train_args(
        data_dir, root, 20, '--result', str(result), solver=str(solver),
        sets=('TRAIN.SNAPSHOT_ITERS', '1')))
    assert code == 1, (out[-3000:], err)
    assert 'Traceback' not in err
    line = [l for l in err.splitlines() if l.startswith('error:')]
    assert len(line) == 1, err
    m = re.search(r'loss (\w+).* is (nan|inf|-inf) at iteration (\d+)', line[0])
    assert m, line[0]
    bad_iter = int(m.group(3))
    assert m.group(1) in ('rpn_cls_loss', 'rpn_loss_bbox', 'cls_loss', 'bbox_loss')
    # Every snapshot before the bad iteration is whole and loadable; none was written after.
    from caffe import io
    from caffe.proto import caffe_pb2
    assert bad_iter >= 2
    assert not os.path.exists(snapshot(root, bad_iter))
    last = snapshot(root, bad_iter - 1)
    assert 'last good snapshot: %s' % last in line[0]
    io.read_binary(last, caffe_pb2.NetParameter())
    # The result file says the run diverged, where, and what is left (the experiments count
    # diverged runs from it).
    import json
    summary = json.loads(result.read_text())
    assert summary['status'] == 'diverged' and summary['diverged_at'] == bad_iter
    assert summary['last_snapshot'] == last and 'final_model' not in summary
    assert summary['losses'][m.group(1)] is None  # NaN/Inf is null in JSON


# SIGINT / SIGTERM -------------------------------------------------------------------------------

@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_signal_writes_a_snapshot_and_exits(data_dir, tmp_path, sig):
    root = tmp_path / 'root'
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    proc = subprocess.Popen(tool_cmd('train_net.py', train_args(data_dir, root, 1000)), cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.startswith('Iteration 1/1000'):
                break
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, err
    assert 'Traceback' not in err
    m = re.search(r'interrupted by %s at iteration (\d+); snapshot written to (\S+); resume '
                  r'with --restore (\S+)' % signal.Signals(sig).name, err)
    assert m, err
    it = int(m.group(1))
    assert 1 <= it < 1000
    assert m.group(2) == snapshot(root, it)
    for ext in ('.caffemodel', '.solverstate', '.trainstate'):
        assert os.path.isfile(snapshot(root, it, ext))
    # Nothing half-written is left in the folder.
    assert not [f for f in os.listdir(out_dir(root)) if f.endswith('.tmp')]


# Limits -----------------------------------------------------------------------------------------

def _write_annotation(path, filename, width, height, boxes, classes):
    objects = ''.join(
        '<object><name>%s</name><difficult>0</difficult><bndbox><xmin>%d</xmin>'
        '<ymin>%d</ymin><xmax>%d</xmax><ymax>%d</ymax></bndbox></object>'
        % ((classes[k % len(classes)],) + tuple(b)) for k, b in enumerate(boxes))
    path.write_text('<annotation><filename>%s</filename><size><width>%d</width>'
                    '<height>%d</height><depth>3</depth></size>%s</annotation>'
                    % (filename, width, height, objects))


def test_images_with_hundreds_of_boxes_and_with_none_train_and_test(data_dir, tmp_path):
    import cv2
    data = tmp_path / 'data'
    shutil.copytree(str(data_dir / 'toy'), str(data / 'toy'))
    toy = data / 'toy'
    classes = [c for c in (toy / 'classes.txt').read_text().split() if c]
    for split in ('train', 'test'):
        ids = (toy / 'ImageSets' / 'Main' / ('%s.txt' % split)).read_text().split()
        crowded, empty = ids[0], ids[1]
        im = cv2.imread(str(toy / 'JPEGImages' / (crowded + '.jpg')))
        h, w = im.shape[:2]
        rng = np.random.RandomState(0)
        x1 = rng.randint(1, w - 20, size=300)
        y1 = rng.randint(1, h - 20, size=300)
        boxes = np.stack([x1, y1, x1 + rng.randint(4, 19, 300), y1 + rng.randint(4, 19, 300)], 1)
        _write_annotation(toy / 'Annotations' / (crowded + '.xml'), crowded + '.jpg', w, h,
                          boxes, classes)
        im = cv2.imread(str(toy / 'JPEGImages' / (empty + '.jpg')))
        _write_annotation(toy / 'Annotations' / (empty + '.xml'), empty + '.jpg',
                          im.shape[1], im.shape[0], [], classes)
    root = tmp_path / 'root'
    code, out, err = run_tool('train_net.py', train_args(data, root, 4, sets=(
        'TRAIN.USE_FLIPPED', 'False')))
    assert code == 0, err
    # The image without objects has no foreground or background RoI for an RPN net: dropped.
    assert 'Filtered 1 roidb entries: 3 -> 2' in out
    model = snapshot(root, 4)
    code, out, err = run_tool('test_net.py', [
        '--gpu', 'cpu', '--def', os.path.join(TOY, 'test.prototxt'), '--net', model,
        '--imdb', 'toy_test'] + CFGS + ['--set', 'DATA_DIR', str(data), 'ROOT_DIR', str(root),
                                       'EXP_DIR', 'r'] + SMALL)
    assert code == 0, err
    assert 'im_detect: 2/2' in out and re.search(r'Mean AP = ', out)


def test_a_very_large_image_is_rescaled_before_it_costs_memory():
    import tracemalloc
    import caffe
    from fast_rcnn.test import im_detect
    from fast_rcnn.test_settings import TestSettings
    caffe.set_random_seed(0)
    net = caffe.Net(os.path.join(TOY, 'test.prototxt'), caffe.TEST)
    h, w = 1600, 6400  # short side to 120 would make the long side 480 > max_size
    im = np.full((h, w, 3), 90, dtype=np.uint8)
    float32_bytes = h * w * 3 * 4
    settings = TestSettings(scales=(120,), max_size=200, has_rpn=True)
    tracemalloc.start()
    try:
        scores, boxes = im_detect(net, im, settings=settings)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The long side is brought down to max_size; short side in proportion.
    assert net.blobs['data'].data.shape[2:] == (50, 200)
    # One float32 copy of the image is the most the preparation holds (a float64 temporary
    # of the whole image would double it).
    assert peak < 1.3 * float32_bytes, (peak, float32_bytes)
    assert boxes.shape[0] == scores.shape[0] > 0
    assert boxes[:, 0::2].max() <= w - 1 and boxes[:, 1::2].max() <= h - 1


def test_alt_opt_resumed_at_step_3_ends_with_the_same_final_model(data_dir, tmp_path):
    def alt_opt(exp_dir, iters, *extra):
        code, out, err = run_tool('train_faster_rcnn_alt_opt.py', [
            '--gpu', 'cpu', '--net_name', 'TOY', '--imdb', 'toy_train', '--iters', iters,
            '--cfg', os.path.join(ROOT, 'experiments', 'cfgs', 'faster_rcnn_alt_opt.yml'),
            '--cfg', os.path.join(ROOT, 'experiments', 'cfgs', 'toy.yml')] + list(extra) + [
            '--set', 'DATA_DIR', str(data_dir), 'ROOT_DIR', str(tmp_path), 'EXP_DIR', exp_dir]
            + SMALL)
        assert code == 0, err[-3000:]
        folder = os.path.join(str(tmp_path), 'output', exp_dir, 'toy_train')
        return out, folder

    _, straight = alt_opt('straight', '2,2,2,2')
    # A run whose step 3 stopped after one iteration, then resumed there to two.
    _, resumed = alt_opt('resumed', '2,2,1,2')
    out, _ = alt_opt('resumed', '2,2,2,2', '--restore',
                     '3:' + os.path.join(resumed, 'toy_rpn_stage2_iter_1.solverstate'))
    assert 'Step 1 (Stage 1 RPN' in out and 'Step 2 (Stage 1 Fast R-CNN' in out
    assert 'Stage 1 RPN, generate proposals' not in out
    final = 'TOY_faster_rcnn_final.caffemodel'
    with open(os.path.join(straight, final), 'rb') as a, \
            open(os.path.join(resumed, final), 'rb') as b:
        assert a.read() == b.read()


def test_alt_opt_restore_needs_the_earlier_steps(data_dir, tmp_path):
    state = tmp_path / 'x.solverstate'
    state.write_bytes(b'')
    code, out, err = run_tool('train_faster_rcnn_alt_opt.py', [
        '--gpu', 'cpu', '--net_name', 'TOY', '--imdb', 'toy_train', '--restore',
        '3:%s' % state, '--set', 'DATA_DIR', str(data_dir), 'ROOT_DIR', str(tmp_path)])
    assert code == 1 and 'Traceback' not in err
    assert 'cannot resume at step 3: no progress file' in err


def test_ctrl_c_during_alt_opt_snapshots_the_step_and_says_how_to_resume(data_dir, tmp_path):
    args = ['--gpu', 'cpu', '--net_name', 'TOY', '--imdb', 'toy_train',
            '--cfg', os.path.join(ROOT, 'experiments', 'cfgs', 'faster_rcnn_alt_opt.yml'),
            '--cfg', os.path.join(ROOT, 'experiments', 'cfgs', 'toy.yml')]
    sets = ['--set', 'DATA_DIR', str(data_dir), 'ROOT_DIR', str(tmp_path), 'EXP_DIR', 'c'] + SMALL
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    # Ctrl-C in a terminal signals the whole process group: the tool and its step's process.
    proc = subprocess.Popen(tool_cmd('train_faster_rcnn_alt_opt.py', args + [
        '--iters', '1000,1,1,1'] + sets), cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        for line in proc.stdout:
            if line.startswith('Iteration 1/1000'):
                break
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    m = re.search(r'resume with --restore (1:\S+\.solverstate)', err)
    assert m and 'Traceback' not in err, err
    # Step 1 resumed to a shorter end, then the three others.
    code, out, err = run_tool('train_faster_rcnn_alt_opt.py', args + [
        '--iters', '3,1,1,1', '--restore', m.group(1)] + sets)
    assert code == 0, err[-3000:]
    assert 'Restoring solver state from %s' % m.group(1)[2:] in out
    assert re.search(r'Final model: \S+TOY_faster_rcnn_final.caffemodel', out)
