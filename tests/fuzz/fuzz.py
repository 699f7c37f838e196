#!/usr/bin/env python3
"""Runs one fuzz harness under atheris (libFuzzer, coverage-guided).

    python3 tests/fuzz/fuzz.py net_prototxt -max_total_time=600
    python3 tests/fuzz/fuzz.py --list
    python3 tests/fuzz/fuzz.py caffemodel --replay FILE...    (no fuzzing: run files once)

The harness's committed seeds (tests/fuzz/corpus/<name>/) are copied into a working corpus
(--work, default /tmp/caffe-fuzz/<name>/corpus) that the run grows; crashing inputs are written
to the work folder as crash-*; libFuzzer's flags follow the name. The figures (harness,
executions, seconds, corpus size, outcome: running, finished, or finding when an input broke the
rule) are kept in the work folder's stats.json, rewritten every few seconds, and printed as a
line of JSON at the end of a -max_total_time run. fuzz_harness.py says what each harness
enforces and how to add one."""
import argparse
import json
import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuzz_harness  # noqa: E402

fuzz_harness.single_threaded_environment()

import atheris  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('name', nargs='?', help='the harness (see --list)')
    parser.add_argument('--list', action='store_true', help='list the harnesses')
    parser.add_argument('--work', help='working folder (corpus, crashes, stats.json)')
    parser.add_argument('--replay', nargs='+', metavar='FILE',
                        help='run these inputs once each and report; no fuzzing')
    return parser.parse_known_args(argv)


def replay(h, files):
    failed = 0
    for path in files:
        with open(path, 'rb') as f:
            data = f.read()
        try:
            outcome = h.run(data)
        except fuzz_harness.UnexpectedError as e:
            failed += 1
            outcome = 'FAILED: %s' % e
        if outcome == 'error':
            outcome = 'error: %s: %s' % (type(h.last_error).__name__, h.last_error)
        print('%s: %s' % (path, outcome))
    return 1 if failed else 0


def main(argv):
    args, libfuzzer_flags = parse_args(argv[1:])
    with atheris.instrument_imports(include=['caffe']):
        harnesses = fuzz_harness.load_targets()
    if args.list or not args.name:
        print('\n'.join(sorted(harnesses)))
        return 0
    if args.name not in harnesses:
        print('unknown harness %r; known: %s' % (args.name, ', '.join(sorted(harnesses))),
              file=sys.stderr)
        return 2
    h = harnesses[args.name]
    fuzz_harness.limit_resources()
    if args.replay:
        return replay(h, args.replay)
    work = os.path.abspath(args.work or os.path.join('/tmp/caffe-fuzz', h.name))
    corpus = os.path.join(work, 'corpus')
    os.makedirs(corpus, exist_ok=True)
    for seed in h.seeds():
        shutil.copy(seed, corpus)
    h.scratch()  # set up before the clock starts
    counts = {'ok': 0, 'error': 0, 'skipped': 0}
    # The run's length is kept here rather than by libFuzzer, whose exit skips Python's: at the
    # end the figures are written and printed, then the process ends.
    seconds = None
    for flag in list(libfuzzer_flags):
        if flag.startswith('-max_total_time='):
            seconds = float(flag.split('=', 1)[1])
            libfuzzer_flags.remove(flag)
    stats = {'harness': h.name, 'outcome': 'running'}
    started = time.time()
    last_report = [started]

    def write_stats(quiet=True):
        stats.update(seconds=round(time.time() - started, 1), executions=sum(counts.values()),
                     corpus_files=len(os.listdir(corpus)), crashes=sorted(
                         f for f in os.listdir(work) if re.match(r'(crash|timeout|oom)-', f)),
                     **counts)
        with open(os.path.join(work, 'stats.json'), 'w') as f:
            json.dump(stats, f)
        if not quiet:
            print(json.dumps(stats), flush=True)

    def one_input(data):
        try:
            counts[h.run(data)] += 1
        except fuzz_harness.UnexpectedError:
            # libFuzzer writes the input as crash-* and ends the process; say so first.
            stats['outcome'] = 'finding'
            write_stats()
            raise
        now = time.time()
        if seconds is not None and now - started >= seconds:
            stats['outcome'] = 'finished'
            write_stats(quiet=False)
            os._exit(0)
        if now - last_report[0] > 5:
            last_report[0] = now
            write_stats()

    flags = [argv[0], '-artifact_prefix=%s/' % work, '-timeout=30', '-rss_limit_mb=0',
             '-max_len=%d' % (1 << 16)] + libfuzzer_flags + [corpus]
    atheris.Setup(flags, one_input, custom_mutator=h.mutator)
    atheris.Fuzz()
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
