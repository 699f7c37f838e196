#!/usr/bin/env python3
"""Fuzzes the ImageData layer's list file. The input's first bytes choose image_data_param
(resize, colour, shuffle, rand_skip, batch size) and transform_param (crop, mirror, mean values,
scale); the rest is the list file, whose lines may name the fixture images in the scratch folder
(data_fuzzing.write_images: colour, gray and JPEG images of two sizes, a damaged and an empty
file, a missing one). Setup and three forwards. See data_fuzzing.py for the rule."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data_fuzzing  # noqa: E402

NAME = 'image_list'
HEADER = 10


def TestOneInput(data):
    folder = data_fuzzing.fixture_folder(NAME, data_fuzzing.write_images)
    h = data_fuzzing.Header(data, HEADER)
    size = h.pick((0, 0), (0, 0), (8, 9), (16, 3))
    param = ('new_height: %d new_width: %d is_color: %s shuffle: %s rand_skip: %d '
             'batch_size: %d' % (size + (h.pick('true', 'false'), h.pick('false', 'true'),
                                         h.pick(0, 0, 3), h.pick(1, 2, 3))))
    transform = 'crop_size: %d mirror: %s scale: %s%s' % (
        h.pick(0, 0, 3, 11), h.pick('false', 'true'), h.pick('1', '0.25'),
        ''.join(' mean_value: %d' % (50 * i) for i in range(h.pick(0, 1, 3))))
    phase = h.pick(0, 1)
    if b'..' in h.rest:
        return 'skipped'   # names must stay inside the scratch folder
    source = os.path.join(folder, 'list.txt')
    with open(source, 'wb') as f:
        f.write(h.rest)
    text = ('name: "images" type: "ImageData" top: "data" top: "label" image_data_param { '
            'source: "%s" root_folder: "%s/" %s } transform_param { %s }'
            % (source, folder, param, transform))

    return data_fuzzing.check(data_fuzzing.layer_run(text, phase), folder)


if __name__ == '__main__':
    data_fuzzing.main(TestOneInput)
