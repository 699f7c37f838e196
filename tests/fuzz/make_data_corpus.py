#!/usr/bin/env python3
"""Writes the seed corpora of the data-layer fuzz harnesses (tests/fuzz/corpus/<harness>/):
a few parameter bytes (data_fuzzing.Header) and a small valid file each, from which the fuzzer
mutates. Run it again after changing a harness's header; reproducers of what fuzzing found are
added by hand as crash-* files."""
import os
import shutil
import sys

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data_fuzzing  # noqa: E402

from caffe import io  # noqa: E402
from caffe.proto import caffe_pb2  # noqa: E402


def datum_db():
    rs = np.random.RandomState(0)
    colour = rs.randint(0, 256, (3, 4, 5)).astype(np.uint8)
    png = cv2.imencode('.png', colour.transpose(1, 2, 0))[1].tobytes()
    gray_png = cv2.imencode('.png', colour[0])[1].tobytes()
    records = [io.array_to_datum(colour, 1).SerializeToString(),
               io.array_to_datum(rs.randn(1, 3, 3).astype(np.float32), 2).SerializeToString(),
               caffe_pb2.Datum(encoded=True, label=3, data=png).SerializeToString(),
               caffe_pb2.Datum(encoded=True, label=4, data=gray_png).SerializeToString(),
               io.array_to_datum(rs.randint(0, 256, (3, 6, 6)).astype(np.uint8),
                                 5).SerializeToString()]
    return {
        'raw_lmdb': bytes(12) + data_fuzzing.pack_records(records[:2]),
        # leveldb, TRAIN, crop 3, mirror, scale 0.5, 1 mean value, batch 2, prefetch 4
        'train_crop_leveldb': bytes([1, 1, 3, 1, 1, 1, 0, 1, 2, 0, 0, 0])
                              + data_fuzzing.pack_records([records[0], records[4]]),
        'encoded': bytes([0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0])
                   + data_fuzzing.pack_records(records[2:4]),
        'mixed_rand_skip': bytes([0, 1, 0, 0, 0, 0, 0, 0, 2, 3, 0, 0])
                           + data_fuzzing.pack_records(records),
    }


def image_list():
    text = b'a.png 1\ng.png 2\nb.jpg 3\n'
    return {
        'plain': bytes(10) + text,
        'resized_gray_shuffled': bytes([2, 1, 1, 2, 2, 2, 1, 1, 1, 1]) + text,
        'crop_mirror_test': bytes([0, 0, 0, 0, 1, 2, 1, 0, 2, 1]) + b'b.jpg 0\nb.jpg 1\n',
    }


def window_file():
    text = (b'# 0\na.png\n3 12 10\n3\n1 0.9 1 1 8 9\n0 0.1 0 0 9 11\n2 0.4 2 2 5 5\n'
            b'# 1\nb.jpg\n3 16 14\n2\n3 0.8 2 3 12 14\n0 0.2 5 5 13 15\n')
    return {
        'warp': bytes(12) + text,
        'context_square_cached_mirror': bytes([1, 1, 3, 2, 1, 1, 1, 2, 3, 1, 1, 0]) + text,
    }


def hdf5_list():
    # file mode: "data" a float32 (2, 3) dataset, "label" an int8 (2,) one, values from the tail
    described = bytes([0, 0, 1, 2, 3, 0, 2, 0, 2, 0]) + bytes(range(40))
    return {
        'two_files': bytes(4) + b'good.h5\nmore.h5\n',
        'shuffled_batch5': bytes([2, 1, 0, 0]) + b'good.h5 more.h5 good.h5\n',
        'generated_file': bytes([1, 0, 0, 1]) + described,
    }


def mean_file():
    mean = np.arange(3 * 6 * 7, dtype=np.float32).reshape(1, 3, 6, 7) / 2
    legacy = caffe_pb2.BlobProto(num=1, channels=3, height=6, width=7, data=mean.ravel())
    shaped = caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=[1, 3, 6, 7]),
                                 double_data=mean.ravel())
    return {
        'legacy': bytes(5) + legacy.SerializeToString(),
        'shaped_crop': bytes([1, 0, 1, 1, 0]) + shaped.SerializeToString(),
    }


def main():
    for name, make in (('datum_db', datum_db), ('image_list', image_list),
                       ('window_file', window_file), ('hdf5_list', hdf5_list),
                       ('mean_file', mean_file)):
        folder = os.path.join(data_fuzzing.CORPUS_DIR, name)
        kept = [f for f in os.listdir(folder) if f.startswith('crash-')] \
            if os.path.isdir(folder) else []
        saved = {f: open(os.path.join(folder, f), 'rb').read() for f in kept}
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        for seed, data in list(make().items()) + list(saved.items()):
            with open(os.path.join(folder, seed if seed.startswith('crash-') else
                                   'seed-' + seed), 'wb') as f:
                f.write(data)
        print('%s: %d files' % (name, len(os.listdir(folder))))


if __name__ == '__main__':
    main()
