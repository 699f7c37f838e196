"""What the reliability tests share: the toy net's files, running a tool as a user does, and the
check that bad input ends it with one 'error:' line naming what is wrong."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOY = os.path.join(ROOT, 'models', 'toy', 'TOY', 'faster_rcnn_end2end')
SOLVER = os.path.join(TOY, 'solver.prototxt')
TEST_DEF = os.path.join(TOY, 'test.prototxt')
CFGS = ['--cfg', os.path.join(ROOT, 'experiments', 'cfgs', 'faster_rcnn_end2end.yml'),
        '--cfg', os.path.join(ROOT, 'experiments', 'cfgs', 'toy.yml')]


def run_tool(tool, args, timeout=300):
    """(exit status, stdout, stderr) of tools/<tool> run with args from the repository root,
    without --debug."""
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    env.pop('FRCN_DEBUG', None)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'tools', tool)] + list(args),
                          cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def assert_one_error(result, *names):
    """Exit status 1, no traceback, exactly one 'error:' line, and it names every one of
    `names` (the bad file, the field...). Returns the line."""
    code, out, err = result
    assert code == 1, (code, out[-2000:], err)
    assert 'Traceback' not in err and 'Traceback' not in out, err
    lines = [line for line in err.splitlines() if line.startswith('error:')]
    assert len(lines) == 1, err
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


def save_toy_test_weights(path, seed=0):
    """Random weights of the toy test net (what the tools need to run; not a detector)."""
    import caffe
    caffe.set_random_seed(seed)
    caffe.Net(TEST_DEF, caffe.TEST).save(str(path))
    return path
