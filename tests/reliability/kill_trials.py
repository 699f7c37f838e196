#!/usr/bin/env python3
"""kill -9 trials on the toy net: training is killed at random moments and inside the writes of
its snapshots, then resumed as a user would (--restore the newest .solverstate; when that is
refused, the snapshot the error names; from the start when there is none), and the final weights
are compared, byte for byte, with those of a run that was never stopped.

  python3 tests/reliability/kill_trials.py --trials 30 --result kill_trials.json

Kinds of trial (taken in turn):
  random         SIGKILL from outside at a random moment of the training
  before_rename  the process kills itself inside caffe.io.atomic_write, after writing the
                 temporary file of a snapshot file and before renaming it into place
  after_rename   the same, right after the rename: the set so far is on disk, the rest is not
The snapshot file hit is drawn at random among all of the run's (a snapshot every iteration).
"""
import argparse
import glob
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOY = os.path.join(ROOT, 'models', 'toy', 'TOY', 'faster_rcnn_end2end')
KINDS = ('random', 'before_rename', 'after_rename')
SNAPSHOT_FILE = re.compile(r'_iter_\d+\.(caffemodel|solverstate|trainstate)$')


def train_args(data_dir, root, iters, restore=None):
    args = ['--gpu', 'cpu', '--solver', os.path.join(TOY, 'solver.prototxt'),
            '--imdb', 'toy_train', '--iters', str(iters),
            '--cfg', os.path.join(ROOT, 'experiments', 'cfgs', 'faster_rcnn_end2end.yml'),
            '--cfg', os.path.join(ROOT, 'experiments', 'cfgs', 'toy.yml')]
    if restore:
        args += ['--restore', restore]
    return args + ['--set', 'DATA_DIR', data_dir, 'ROOT_DIR', root, 'EXP_DIR', 'k',
                   'TRAIN.SCALES', '[120]', 'TRAIN.MAX_SIZE', '200', 'TRAIN.SNAPSHOT_ITERS', '1']


def out_dir(root):
    return os.path.join(root, 'output', 'k', 'toy_train')


def final_model(root, iters):
    return os.path.join(out_dir(root), 'toy_faster_rcnn_iter_%d.caffemodel' % iters)


def digest(path):
    with open(path, 'rb') as f:
        return hashlib.sha1(f.read()).hexdigest()


def run(args, env_extra=None, kill_after=None):
    """Runs train_net.py (through this script's --child hook, which kills it inside a write
    when env_extra sets KILL_AT); with kill_after, SIGKILLs it that many seconds after
    'Solving...'. Returns (exit status, stdout, stderr, seconds from 'Solving...' to the end)."""
    env = dict(os.environ, PYTHONUNBUFFERED='1', **(env_extra or {}))
    env.pop('FRCN_DEBUG', None)
    cmd = [sys.executable, os.path.abspath(__file__), '--child'] + args
    with tempfile.TemporaryFile('w+') as err_file:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=err_file, text=True)
        lines, solving = [], None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith('Solving...'):
                solving = time.time()
                if kill_after is not None:
                    time.sleep(kill_after)
                    proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=900)
        err_file.seek(0)
        err = err_file.read()
    seconds = time.time() - solving if solving else 0.0
    return proc.returncode, ''.join(lines), err, seconds


def child(argv):
    """Runs tools/train_net.py with argv; KILL_AT=<kind>:<n> kills this process inside the n-th
    snapshot file write (before or after its rename)."""
    kill_at = os.environ.get('KILL_AT')
    if kill_at:
        kind, n = kill_at.split(':')
        n = int(n)
        real_replace = os.replace
        count = [0]

        def replace(src, dst, *a, **k):
            if SNAPSHOT_FILE.search(str(dst)):
                count[0] += 1
                if kind == 'before_rename' and count[0] == n:
                    os.kill(os.getpid(), signal.SIGKILL)
                real_replace(src, dst, *a, **k)
                if kind == 'after_rename' and count[0] == n:
                    os.kill(os.getpid(), signal.SIGKILL)
            else:
                real_replace(src, dst, *a, **k)
        os.replace = replace
    import runpy
    sys.path.insert(0, os.path.join(ROOT, 'tools'))
    sys.argv = [os.path.join(ROOT, 'tools', 'train_net.py')] + argv
    runpy.run_path(sys.argv[0], run_name='__main__')


def newest_solverstate(folder):
    found = glob.glob(os.path.join(folder, '*_iter_*.solverstate'))
    return max(found, key=lambda p: int(re.search(r'_iter_(\d+)\.', p).group(1)), default=None)


def resume(data_dir, root, iters, record):
    """Resumes as a user would; returns the exit status of the last run."""
    restore = newest_solverstate(out_dir(root))
    for _ in range(3):
        code, out, err, _ = run(train_args(data_dir, root, iters, restore))
        if code == 0:
            return 0
        m = re.search(r'resume with --restore (\S+)', err)
        if restore and 'cannot resume from' in err:
            record['refused'].append(os.path.basename(restore))
            restore = m.group(1) if m else None  # None: train again from the start
            continue
        record['errors'].append(err.strip().splitlines()[-1] if err.strip() else 'exit %d' % code)
        return code
    return code


def trial(kind, data_dir, work, iters, rng, train_seconds, writes, reference, write=None):
    """One kill and resume in a fresh output folder; returns (folder, record)."""
    root = tempfile.mkdtemp(prefix='trial_', dir=work)
    record = {'kind': kind, 'refused': [], 'errors': []}
    if kind == 'random':
        # Anywhere from 'Solving...' to the end of an uninterrupted run.
        record['kill_after_s'] = round(rng.uniform(0, train_seconds), 3)
        run(train_args(data_dir, root, iters), kill_after=record['kill_after_s'])
    else:
        record['write'] = write or rng.randint(1, writes)
        code, _, _, _ = run(train_args(data_dir, root, iters),
                            env_extra={'KILL_AT': '%s:%d' % (kind, record['write'])})
        record['killed'] = code == -signal.SIGKILL
    folder = out_dir(root)
    left = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    record['snapshot_files_after_kill'] = [n for n in left if SNAPSHOT_FILE.search(n)]
    record['tmp_after_kill'] = [n for n in left if n.endswith('.tmp')]
    code = resume(data_dir, root, iters, record)
    record['tmp_after_resume'] = [n for n in os.listdir(folder) if n.endswith('.tmp')]
    final = final_model(root, iters)
    record['identical'] = code == 0 and os.path.isfile(final) and \
        digest(final) == reference and not record['tmp_after_resume']
    return root, record


def _incomplete(record):
    """Whether the kill left a snapshot set without all three files."""
    stems = {}
    for name in record['snapshot_files_after_kill']:
        stem, ext = os.path.splitext(name)
        stems.setdefault(stem, set()).add(ext)
    return any(len(exts) < 3 for exts in stems.values())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--trials', type=int, default=30)
    parser.add_argument('--iters', type=int, default=4)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--kinds', default=','.join(KINDS))
    parser.add_argument('--write', type=int, default=None,
                        help='kill in this snapshot file write (1 = the first caffemodel) '
                             'instead of a random one')
    parser.add_argument('--work', default=None, help='folder for the runs (default: a temp one)')
    parser.add_argument('--result', default=None, help='write the figures as JSON here')
    parser.add_argument('--keep', action='store_true', help='keep the trial folders')
    args = parser.parse_args(argv)
    kinds = args.kinds.split(',')
    work = args.work or tempfile.mkdtemp(prefix='kill_trials_')
    os.makedirs(work, exist_ok=True)
    sys.path.insert(0, os.path.join(ROOT, 'lib'))
    from datasets.toy import generate_toy_dataset
    data_dir = os.path.join(work, 'data')
    generate_toy_dataset(os.path.join(data_dir, 'toy'), num_train=3, num_test=1)

    straight = os.path.join(work, 'straight')
    code, out, err, train_seconds = run(train_args(data_dir, straight, args.iters))
    if code != 0:
        raise SystemExit('the uninterrupted run failed:\n' + err)
    reference = digest(final_model(straight, args.iters))
    writes = 3 * args.iters  # three files per snapshot, a snapshot every iteration
    rng = random.Random(args.seed)
    records = []
    for k in range(args.trials):
        kind = kinds[k % len(kinds)]
        root, record = trial(kind, data_dir, work, args.iters, rng, train_seconds, writes,
                             reference, args.write)
        records.append(record)
        print('trial %d (%s): %s%s' % (k + 1, kind,
                                       'identical' if record['identical'] else 'DIFFERENT',
                                       ', refused %s' % record['refused']
                                       if record['refused'] else ''), flush=True)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    summary = {
        'trials': len(records),
        'identical': sum(r['identical'] for r in records),
        'by_kind': {kind: {'trials': sum(r['kind'] == kind for r in records),
                           'identical': sum(r['identical'] for r in records
                                            if r['kind'] == kind)} for kind in kinds},
        'restores_refused': sum(len(r['refused']) for r in records),
        'incomplete_sets_after_kill': sum(_incomplete(r) for r in records),
        'left_tmp_after_kill': sum(bool(r['tmp_after_kill']) for r in records),
        'tmp_after_resume': sum(bool(r['tmp_after_resume']) for r in records),
        'errors': [e for r in records for e in r['errors']],
        'iters': args.iters,
        'records': records,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != 'records'}, indent=1))
    if args.result:
        with open(args.result, 'w') as f:
            json.dump(summary, f, indent=1)
    if not args.keep and not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if summary['identical'] == summary['trials'] else 1


if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == '--child':
        child(sys.argv[2:])
    else:
        sys.exit(main())
