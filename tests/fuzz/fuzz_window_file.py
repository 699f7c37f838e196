#!/usr/bin/env python3
"""Fuzzes the WindowData layer's window file. The input's first bytes choose
window_data_param (thresholds, fg_fraction, context_pad, crop_mode, cache_images, scale, batch
size) and transform_param (crop_size, mirror, mean values); the rest is the window file, whose
images may be the fixture images in the scratch folder (data_fuzzing.write_images). Setup and
three forwards. See data_fuzzing.py for the rule."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data_fuzzing  # noqa: E402

NAME = 'window_file'
HEADER = 12


def TestOneInput(data):
    folder = data_fuzzing.fixture_folder(NAME, data_fuzzing.write_images)
    h = data_fuzzing.Header(data, HEADER)
    param = ('fg_threshold: %s bg_threshold: %s fg_fraction: %s context_pad: %d crop_mode: "%s" '
             'cache_images: %s scale: %s batch_size: %d'
             % (h.pick('0.5', '0.7', '0'), h.pick('0.5', '0.3', '1'), h.pick('0.25', '0', '1',
                                                                              '0.5'),
                h.pick(0, 0, 1, 3), h.pick('warp', 'square'), h.pick('false', 'true'),
                h.pick('1', '0.5'), h.pick(1, 2, 4)))
    transform = 'crop_size: %d mirror: %s%s' % (
        h.pick(8, 7, 16, 9), h.pick('false', 'true'),
        ''.join(' mean_value: %d' % (40 * i) for i in range(h.pick(0, 1, 3))))
    if b'..' in h.rest:
        return 'skipped'   # image names must stay inside the scratch folder
    source = os.path.join(folder, 'windows.txt')
    with open(source, 'wb') as f:
        f.write(h.rest)
    text = ('name: "windows" type: "WindowData" top: "data" top: "label" window_data_param { '
            'source: "%s" root_folder: "%s/" %s } transform_param { %s }'
            % (source, folder, param, transform))

    return data_fuzzing.check(data_fuzzing.layer_run(text), folder)


if __name__ == '__main__':
    data_fuzzing.main(TestOneInput)
