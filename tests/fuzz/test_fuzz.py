"""The fuzz harnesses in CI: every committed corpus file (seeds and the reproducers of what
fuzzing found, crash-*) goes through its harness under the harness's rule, and each harness
runs under atheris for a few seconds (about a minute in all)."""
import json
import os
import random
import subprocess
import sys
import types

import pytest
from google.protobuf import text_format

import fuzz_harness
from proto_mutator import BinaryProto, TextProto

from caffe.proto import caffe_pb2

HARNESSES = fuzz_harness.load_targets()
SMOKE_SECONDS_TOTAL = 35  # plus each run's start-up (a few seconds): about a minute in all
FUZZ_PY = os.path.join(fuzz_harness.FUZZ_DIR, 'fuzz.py')


def corpus_files():
    return [(name, path) for name, h in sorted(HARNESSES.items()) for path in h.seeds()]


def test_every_harness_has_seeds():
    assert {'net_prototxt', 'solver_prototxt', 'caffemodel', 'solverstate',
            'binaryproto'} <= set(HARNESSES)
    for name, h in HARNESSES.items():
        assert h.seeds(), 'no seed corpus for %s in %s' % (name, h.corpus)


@pytest.mark.parametrize('name,path', corpus_files(),
                         ids=['%s/%s' % (n, os.path.basename(p)) for n, p in corpus_files()])
def test_corpus_file_meets_the_rule(name, path):
    with open(path, 'rb') as f:
        data = f.read()
    outcome = HARNESSES[name].run(data)   # UnexpectedError fails the test
    if not os.path.basename(path).startswith('crash-'):
        assert outcome == 'ok', 'seed %s no longer reads: %s' % (path,
                                                                 HARNESSES[name].last_error)


def test_the_rule_catches_a_reader_that_breaks_it(tmp_path):
    from caffe.common import CaffeError

    def reader(path, h):
        data = open(path, 'rb').read()
        if data == b'index':
            [][0]
        if data == b'vague':
            raise CaffeError('something is wrong')
        raise CaffeError('%s is wrong' % path)
    h = fuzz_harness.Harness('rule_check', reader, '.bin', None, (), None, True)
    assert h.run(b'named') == 'error'
    with pytest.raises(fuzz_harness.UnexpectedError, match='IndexError'):
        h.run(b'index')
    with pytest.raises(fuzz_harness.UnexpectedError, match='does not name the file'):
        h.run(b'vague')


@pytest.mark.parametrize('mutator,message,data', [
    (TextProto(caffe_pb2.NetParameter, vocabulary=['ReLU']), caffe_pb2.NetParameter,
     b'name: "n" layer { name: "a" type: "ReLU" bottom: "x" top: "x" }'),
    (BinaryProto(caffe_pb2.BlobProto), caffe_pb2.BlobProto,
     caffe_pb2.BlobProto(num=1, channels=2, data=[1, 2]).SerializeToString()),
])
def test_structure_mutators_change_valid_messages_deterministically(mutator, message, data,
                                                                     monkeypatch):
    # atheris.Mutate works only inside a fuzzing run (it exits the process otherwise): a
    # stand-in for the byte-level share.
    monkeypatch.setitem(sys.modules, 'atheris',
                        types.SimpleNamespace(Mutate=lambda data, max_size: data[::-1]))
    outputs = [mutator(data, 1 << 16, seed) for seed in range(200)]
    assert outputs == [mutator(data, 1 << 16, seed) for seed in range(200)]
    parsed = 0
    for out in outputs:
        try:
            if isinstance(mutator, TextProto):
                text_format.Parse(out.decode('utf-8'), message())
            else:
                message.FromString(out)
            parsed += 1
        except Exception:
            pass
    # about one in ten is a byte-level mutation, which may not parse; the rest are messages,
    # nearly all changed (an edge value may happen to be the value already there)
    assert parsed >= 150 and len(set(outputs)) > 100
    assert sum(out == data for out in outputs) <= 20


@pytest.mark.parametrize('name', sorted(HARNESSES))
def test_fuzz_smoke(name, tmp_path):
    pytest.importorskip('atheris')
    seconds = max(3, SMOKE_SECONDS_TOTAL // len(HARNESSES))
    proc = subprocess.run(
        [sys.executable, FUZZ_PY, name, '--work', str(tmp_path),
         '-max_total_time=%d' % seconds, '-seed=%d' % random.Random(name).randrange(1 << 30)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=seconds + 120)
    with open(tmp_path / 'stats.json') as f:
        stats = json.load(f)
    assert proc.returncode == 0 and not stats['crashes'], proc.stdout[-4000:]
    assert stats['outcome'] == 'finished' and stats['executions'] > 0
