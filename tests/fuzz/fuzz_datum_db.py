#!/usr/bin/env python3
"""Fuzzes the Data layer's reading of Datum records. The input's first bytes choose the backend
(LMDB or LevelDB), transform_param (crop, mirror, phase, scale, mean values, force_color/gray),
batch size, prefetch, rand_skip and tops; the rest is up to 6 records (data_fuzzing.records:
length-prefixed bytes, each stored as one record, meant to be a serialized Datum). The database
is written to a scratch folder and read through the layer's setup and three forwards. See
data_fuzzing.py for the rule and how to run it."""
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data_fuzzing  # noqa: E402

NAME = 'datum_db'
HEADER = 12
_inputs = [0]


def TestOneInput(data):
    from caffe.testing import write_datum_db
    folder = data_fuzzing.fixture_folder(NAME)
    h = data_fuzzing.Header(data, HEADER)
    backend = h.pick('lmdb', 'leveldb')
    phase = h.pick(0, 1)
    transform = 'crop_size: %d mirror: %s scale: %s%s%s' % (
        h.pick(0, 1, 2, 3, 4, 5), h.pick('false', 'true'), h.pick('1', '0.5', '-2', '1e-3'),
        ''.join(' mean_value: %d' % (10 * i) for i in range(h.pick(0, 1, 2, 3))),
        h.pick('', '', ' force_color: true', ' force_gray: true'))
    param = 'batch_size: %d prefetch: %d rand_skip: %d' % (h.pick(1, 2, 3), h.pick(0, 1, 4),
                                                          h.pick(0, 0, 2, 5))
    tops = h.pick(2, 1)
    _inputs[0] += 1
    path = os.path.join(folder, 'db%d' % _inputs[0])
    write_datum_db(path, data_fuzzing.records(h.rest, 6), backend)
    text = ('name: "data" type: "Data" %s data_param { source: "%s" backend: %s %s } '
            'transform_param { %s }' % (' '.join('top: "t%d"' % i for i in range(tops)), path,
                                        backend.upper(), param, transform))

    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', RuntimeWarning)   # force_* on raw pixels
            return data_fuzzing.check(data_fuzzing.layer_run(text, phase), folder)
    finally:
        data_fuzzing.fresh(path)


if __name__ == '__main__':
    data_fuzzing.main(TestOneInput)
