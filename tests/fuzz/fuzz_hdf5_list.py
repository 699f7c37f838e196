#!/usr/bin/env python3
"""Fuzzes the HDF5Data layer's source list and the datasets it reads. The input's first bytes
choose batch size, shuffle, the tops, and the mode: in list mode the rest is the list file,
whose names may be the fixture HDF5 files in the scratch folder (good, rows that disagree,
strings, a scalar, other row shapes, an empty dataset, a file that is not HDF5, a missing one);
in file mode the rest describes one HDF5 file that h5py writes (for each of the datasets "data"
and "label": absent, a group, or a dataset of a fuzzed type and shape filled from the bytes),
listed alone. Setup and three forwards. See data_fuzzing.py for the rule."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data_fuzzing  # noqa: E402

NAME = 'hdf5_list'
HEADER = 4
DTYPES = ('<f4', '<f8', '|i1', '<u2', '<i8', '|b1', '|S3', '<c8')


def _fixtures(folder):
    import h5py
    import numpy as np
    rs = np.random.RandomState(0)
    files = {
        'good.h5': dict(data=rs.randn(5, 2, 3), label=np.arange(5)),
        'more.h5': dict(data=rs.randn(2, 2, 3).astype(np.float32), label=np.arange(2)),
        'rows.h5': dict(data=rs.randn(3, 2, 3), label=np.arange(4)),
        'strings.h5': dict(data=np.array([b'ab', b'cd']), label=np.arange(2)),
        'scalar.h5': dict(data=np.float64(3), label=np.arange(1)),
        'shape.h5': dict(data=rs.randn(4, 3, 3), label=np.arange(4)),
        'empty.h5': dict(data=np.zeros((0, 2, 3)), label=np.zeros(0)),
    }
    for name, datasets in files.items():
        with h5py.File(os.path.join(folder, name), 'w') as f:
            for key, values in datasets.items():
                f[key] = values
    with open(os.path.join(folder, 'junk.h5'), 'wb') as f:
        f.write(b'\x89HDF\r\n\x1a\n' + b'\0' * 40)


def _write_fuzzed_file(path, data):
    """An HDF5 file whose "data" and "label" entries the bytes describe."""
    import h5py
    import numpy as np
    h = data_fuzzing.Header(data, 10)
    values = h.rest
    with h5py.File(path, 'w') as f:
        for name in ('data', 'label'):
            kind = h.pick('dataset', 'dataset', 'dataset', 'group', 'absent')
            dtype = np.dtype(h.pick(*DTYPES))
            shape = tuple(h.pick(0, 1, 2, 3, 4) for _ in range(h.pick(1, 2, 3, 0)))
            if kind == 'group':
                f.create_group(name)
            elif kind == 'dataset':
                count = int(np.prod(shape, dtype=np.int64))
                raw = (values * (count * dtype.itemsize // max(len(values), 1) + 1))[
                    :count * dtype.itemsize]
                if len(raw) < count * dtype.itemsize:
                    raw = bytes(count * dtype.itemsize)
                f.create_dataset(name, data=np.frombuffer(raw, dtype).reshape(shape))


def TestOneInput(data):
    folder = data_fuzzing.fixture_folder(NAME, _fixtures)
    h = data_fuzzing.Header(data, HEADER)
    batch, shuffle = h.pick(1, 2, 5), h.pick('false', 'true')
    tops = h.pick(('data', 'label'), ('data',), ('label', 'data'))
    source = os.path.join(folder, 'list.txt')
    if h.pick('list', 'file') == 'file':
        generated = os.path.join(folder, 'generated.h5')
        _write_fuzzed_file(generated, h.rest)
        listing = generated.encode()
    else:
        listing = h.rest
        if b'..' in listing or b'/' in listing:
            return 'skipped'   # names must stay inside the scratch folder
    with open(source, 'wb') as f:
        f.write(listing)
    text = ('name: "h5" type: "HDF5Data" %s hdf5_data_param { source: "%s" batch_size: %d '
            'shuffle: %s }' % (' '.join('top: "%s"' % t for t in tops), source, batch, shuffle))

    # the list's names are taken from the current folder
    return data_fuzzing.check(data_fuzzing.layer_run(text, cwd=folder), folder)


if __name__ == '__main__':
    data_fuzzing.main(TestOneInput)
