"""The data-layer fuzz harnesses in CI: every committed input (seeds, and crash-* reproducers
of what fuzzing found) goes through its harness under the rule (data_fuzzing.check), the seeds
must read cleanly, and each harness runs under atheris for a few seconds."""
import importlib
import os
import subprocess
import sys

import pytest

import data_fuzzing

HARNESSES = ['datum_db', 'image_list', 'hdf5_list', 'window_file', 'mean_file']
SMOKE_SECONDS = 4


def inputs():
    return [(name, path) for name in HARNESSES for path in data_fuzzing.seeds(name)]


def test_every_harness_has_seeds():
    for name in HARNESSES:
        assert data_fuzzing.seeds(name), name


@pytest.mark.parametrize('name,path', inputs(),
                         ids=['%s/%s' % (n, os.path.basename(p)) for n, p in inputs()])
def test_committed_input_meets_the_rule(name, path):
    harness = importlib.import_module('fuzz_' + name)
    with open(path, 'rb') as f:
        outcome = harness.TestOneInput(f.read())   # a Finding or any other error fails
    if not os.path.basename(path).startswith('crash-'):
        assert outcome == 'ok', path


@pytest.mark.parametrize('name', HARNESSES)
def test_harness_runs_under_atheris(name, tmp_path):
    pytest.importorskip('atheris')
    script = os.path.join(data_fuzzing.FUZZ_DIR, 'fuzz_%s.py' % name)
    corpus = tmp_path / 'corpus'
    corpus.mkdir()
    r = subprocess.run([sys.executable, script, '-max_total_time=%d' % SMOKE_SECONDS,
                        '-timeout=60', '-rss_limit_mb=4096', str(corpus),
                        os.path.join(data_fuzzing.CORPUS_DIR, name)],
                       capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'Done' in r.stderr
