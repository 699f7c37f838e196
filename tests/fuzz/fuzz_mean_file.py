#!/usr/bin/env python3
"""Fuzzes the reading of a mean file (a .binaryproto BlobProto) by a data layer's
transform_param: the input's first bytes choose the crop, phase and scale, the rest is the mean
file, used to transform a fixed 3 x 6 x 7 image (DataTransformer) and checked by WindowData's
setup (its centre-square rule). See data_fuzzing.py for the rule."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data_fuzzing  # noqa: E402

NAME = 'mean_file'
HEADER = 5


def _window_file(folder):
    with open(os.path.join(folder, 'w.txt'), 'w') as f:
        f.write('# 0\na.png\n3 12 10\n1\n1 0.9 1 1 8 9\n')


def TestOneInput(data):
    import numpy as np
    from google.protobuf import text_format

    from caffe.data_transformer import DataTransformer
    from caffe.proto import caffe_pb2
    folder = data_fuzzing.fixture_folder(NAME, data_fuzzing.write_images, _window_file)
    h = data_fuzzing.Header(data, HEADER)
    crop, phase = h.pick(0, 3, 6, 5), h.pick(0, 1)
    scale, mirror = h.pick('1', '0.5'), h.pick('false', 'true')
    window_crop = h.pick(4, 8, 2, 7)
    path = os.path.join(folder, 'mean.binaryproto')
    with open(path, 'wb') as f:
        f.write(h.rest)
    param = text_format.Parse('crop_size: %d scale: %s mirror: %s mean_file: "%s"'
                              % (crop, scale, mirror, path),
                              caffe_pb2.TransformationParameter())
    image = np.arange(3 * 6 * 7, dtype=np.uint8).reshape(3, 6, 7)

    def transform():
        t = DataTransformer(param, phase, 'Data layer "fuzz"')
        t.init_rand()
        out = np.empty(t.infer_shape(image), np.float32)
        t.transform(image, out)

    window_setup = data_fuzzing.layer_run(
        'name: "w" type: "WindowData" top: "d" top: "l" window_data_param { source: "%s" '
        'root_folder: "%s/" batch_size: 1 fg_fraction: 1 } transform_param { crop_size: %d '
        'mean_file: "%s" }' % (os.path.join(folder, 'w.txt'), folder, window_crop, path),
        forwards=0)
    outcomes = [data_fuzzing.check(transform, folder), data_fuzzing.check(window_setup, folder)]
    return 'ok' if outcomes == ['ok', 'ok'] else 'error'


if __name__ == '__main__':
    data_fuzzing.main(TestOneInput)
