"""kill -9 during training, then resume as a user would: the final weights are those of a run
that was never stopped, byte for byte (tests/reliability/kill_trials.py does many such trials;
these run a few)."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, 'tests', 'reliability', 'kill_trials.py')


def trials(tmp_path, *args):
    result = tmp_path / 'result.json'
    proc = subprocess.run([sys.executable, SCRIPT, '--iters', '3', '--work', str(tmp_path / 'w'),
                           '--result', str(result)] + list(args), cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=1200)
    assert result.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.returncode, json.loads(result.read_text())


def test_a_kill_between_the_files_of_a_snapshot_is_refused_then_resumed_exactly(tmp_path):
    # Write 5 is iteration 2's .solverstate: killed right after it, the set has no .trainstate.
    code, summary = trials(tmp_path, '--trials', '1', '--kinds', 'after_rename', '--write', '5')
    (record,) = summary['records']
    assert record['killed']
    assert record['snapshot_files_after_kill'] == [
        'toy_faster_rcnn_iter_1.%s' % ext for ext in ('caffemodel', 'solverstate', 'trainstate')
    ] + ['toy_faster_rcnn_iter_2.caffemodel', 'toy_faster_rcnn_iter_2.solverstate']
    assert record['refused'] == ['toy_faster_rcnn_iter_2.solverstate']
    assert record['identical'] and code == 0


def test_kills_at_random_moments_and_inside_the_writes_resume_exactly(tmp_path):
    code, summary = trials(tmp_path, '--trials', '3', '--seed', '3')
    assert summary['trials'] == 3 and summary['identical'] == 3, summary
    assert summary['tmp_after_resume'] == 0 and not summary['errors']
    assert code == 0
