"""The GPU machine's script stops at a failed build with the reason and its summary line, the
logs in $OUT (what a lent machine's short time depends on); run from a bare copy, so nothing is
built here."""
import os
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _bare_copy(tmp_path):
    (tmp_path / 'tests' / 'gpu').mkdir(parents=True)
    script = tmp_path / 'tests' / 'gpu' / 'run_on_gpu_machine.sh'
    shutil.copy(os.path.join(ROOT, 'tests', 'gpu', 'run_on_gpu_machine.sh'), script)
    return script


def _run(script, tmp_path, **env):
    out = tmp_path / 'logs'
    result = subprocess.run(['bash', str(script)], capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, OUT=str(out), BUILD_ONLY='1', **env))
    return result, out


def test_build_without_the_generated_proto_stops_with_the_reason(tmp_path):
    result, out = _run(_bare_copy(tmp_path), tmp_path)
    assert result.returncode == 1
    summary = (out / 'summary.txt').read_text().splitlines()
    assert len(summary) == 1 and summary[0].startswith('build rc=1 210s-budget')
    assert 'carry lib/caffe/proto/caffe_pb2.py' in (out / 'build.log').read_text()


def test_build_budget_and_deadline(tmp_path):
    script = _bare_copy(tmp_path)
    result, out = _run(script, tmp_path, BUILD_BUDGET='30')
    assert (out / 'summary.txt').read_text().startswith('build rc=1 30s-budget')
    # Less than 15 s left before the deadline: the phase does not start.
    result, out = _run(script, tmp_path, DEADLINE='10')
    assert result.returncode == 1
    assert 'build skipped: deadline' in (out / 'summary.txt').read_text()
