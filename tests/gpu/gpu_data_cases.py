"""The data layers' cases for the CPU/GPU comparisons (gpu_layer_cases adds them to CASES), on
small sources made at import in a folder removed at exit."""
import atexit
import os
import shutil
import tempfile

import numpy as np

import caffe


def _data_sources():
    """Small sources for the data layers' cases (an LMDB, an image list, an HDF5 list, a window
    file) in a folder removed at exit."""
    import cv2
    import h5py
    from caffe.testing import write_datum_db
    folder = tempfile.mkdtemp(prefix='gpu-layer-cases-')
    atexit.register(shutil.rmtree, folder, True)
    rs = np.random.RandomState(0)
    images = rs.randint(0, 256, size=(4, 7, 8, 3)).astype(np.uint8)
    write_datum_db(os.path.join(folder, 'lmdb'),
                   [caffe.io.array_to_datum(im.transpose(2, 0, 1), i)
                    for i, im in enumerate(images)])
    with open(os.path.join(folder, 'images.txt'), 'w') as f:
        for i, im in enumerate(images):
            cv2.imwrite(os.path.join(folder, '%d.png' % i), im)
            f.write('%d.png %d\n' % (i, i))
    with h5py.File(os.path.join(folder, 'rows.h5'), 'w') as f:
        f['x'] = rs.randn(5, 2, 3)
        f['y'] = np.arange(5)
    with open(os.path.join(folder, 'h5.txt'), 'w') as f:
        f.write(os.path.join(folder, 'rows.h5') + '\n')
    with open(os.path.join(folder, 'windows.txt'), 'w') as f:
        f.write('# 0\n0.png\n3 7 8\n2\n1 0.9 1 1 6 5\n0 0.1 0 2 7 6\n')
    return folder


def data_cases(case, randn):
    """The data layers' cases, made with gpu_layer_cases' case() and _randn(). The layers load
    batches on the host (a prefetch thread) in either mode; under the same seed the GPU path
    must give the CPU path's batches."""
    src = _data_sources()
    transform = 'transform_param { crop_size: 5 mirror: true scale: 0.5 mean_value: 100 }'
    return [
        case('data_lmdb', 'name: "d" type: "Data" top: "data" top: "label" data_param { '
             'source: "%s/lmdb" backend: LMDB batch_size: 3 } %s' % (src, transform),
             lambda rs: []),
        case('image_data', 'name: "i" type: "ImageData" top: "data" top: "label" '
             'image_data_param { source: "%s/images.txt" root_folder: "%s/" batch_size: 3 '
             'shuffle: true } %s' % (src, src, transform), lambda rs: []),
        case('hdf5_data', 'name: "h" type: "HDF5Data" top: "x" top: "y" hdf5_data_param { '
             'source: "%s/h5.txt" batch_size: 3 shuffle: true }' % src, lambda rs: []),
        case('window_data', 'name: "w" type: "WindowData" top: "data" top: "label" '
             'window_data_param { source: "%s/windows.txt" root_folder: "%s/" batch_size: 4 '
             'context_pad: 1 } transform_param { crop_size: 5 mirror: true }' % (src, src),
             lambda rs: []),
        case('hdf5_output', 'name: "o" type: "HDF5Output" bottom: "a" bottom: "b" '
             'hdf5_output_param { file_name: "%s/out.h5" }' % src,
             lambda rs: [randn(rs, 2, 3), randn(rs, 2)]),
    ]
