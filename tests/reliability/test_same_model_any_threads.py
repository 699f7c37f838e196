"""One seed, one model: 40 iterations of the toy net's training give the same .caffemodel bytes
with one thread, with two, and with two jobs running at once (docs/cpu_performance.md, "One model
for one seed"). Each run is a process of its own, its threads set by OMP_NUM_THREADS."""
import hashlib
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ITERS = 40


def train_cmd(data_dir, root):
    cfgs = [os.path.join(ROOT, 'experiments', 'cfgs', name)
            for name in ('faster_rcnn_end2end.yml', 'toy.yml')]
    return [sys.executable, os.path.join(ROOT, 'tools', 'train_net.py'), '--gpu', 'cpu',
            '--solver', os.path.join(ROOT, 'models', 'toy', 'TOY', 'faster_rcnn_end2end',
                                     'solver.prototxt'),
            '--imdb', 'toy_train', '--iters', str(ITERS), '--cfg', cfgs[0], '--cfg', cfgs[1],
            '--set', 'DATA_DIR', str(data_dir), 'ROOT_DIR', str(root), 'EXP_DIR', 'threads']


def start(data_dir, root, threads):
    env = {k: v for k, v in os.environ.items() if k not in ('OMP_NUM_THREADS',
                                                            'OPENBLAS_NUM_THREADS')}
    if threads:
        env['OMP_NUM_THREADS'] = str(threads)
    return subprocess.Popen(train_cmd(data_dir, root), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def model_md5(proc, root):
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    path = os.path.join(str(root), 'output', 'threads', 'toy_train',
                        'toy_faster_rcnn_iter_%d.caffemodel' % ITERS)
    with open(path, 'rb') as f:
        return hashlib.md5(f.read()).hexdigest()


@pytest.mark.slow
def test_the_same_model_at_one_and_two_threads_and_beside_another_job(tmp_path):
    from datasets.toy import generate_toy_dataset
    # The toy's own image sizes (experiments/cfgs/toy.yml): its larger products are cut into
    # parts that the threads share.
    generate_toy_dataset(str(tmp_path / 'data' / 'toy'), num_train=10, num_test=1)
    md5 = {}
    for threads in (1, 2):
        root = tmp_path / ('threads%d' % threads)
        md5[threads] = model_md5(start(tmp_path / 'data', root, threads), root)
    together = [start(tmp_path / 'data', tmp_path / ('together%d' % i), None) for i in (0, 1)]
    md5['together'] = [model_md5(p, tmp_path / ('together%d' % i))
                       for i, p in enumerate(together)]
    assert md5[1] == md5[2] == md5['together'][0] == md5['together'][1], md5
