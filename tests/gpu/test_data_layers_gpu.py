"""A net fed by a Data layer (LMDB, random crops and flips) trains in GPU mode as on the CPU: the
prefetched host batches reach the device through the next layer, the same seed gives the same
batches, and the losses of a few SGD steps agree to float32 tolerance (cuBLAS sums in its own
order)."""
import numpy as np

import caffe
from caffe.testing import mnist_like_digits, write_datum_db

NET = '''
layer { name: "digits" type: "Data" top: "data" top: "label"
        transform_param { scale: 0.00390625 crop_size: 24 mirror: true }
        data_param { source: "%s" backend: LMDB batch_size: 8 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
'''
SOLVER = 'net: "%s" base_lr: 0.01 lr_policy: "fixed" momentum: 0.9 max_iter: 100 ' \
         'display: 0 snapshot_after_train: false random_seed: 5 solver_mode: CPU'


def losses(tmp_path, gpu):
    if gpu:
        caffe.set_mode_gpu()
    else:
        caffe.set_mode_cpu()
    solver = caffe.SGDSolver(str(tmp_path / 'solver.prototxt'))
    out = []
    for _ in range(5):
        solver.step(1)
        out.append((float(solver.net.blobs['loss'].data), solver.net.blobs['data'].data.copy()))
    caffe.set_mode_cpu()
    return out


def test_data_layer_net_trains_alike_on_gpu_and_cpu(backend, tmp_path):
    images, labels = mnist_like_digits(40, seed=3)
    source = write_datum_db(str(tmp_path / 'lmdb'), [caffe.io.array_to_datum(im, int(l))
                                                     for im, l in zip(images, labels)])
    (tmp_path / 'net.prototxt').write_text(NET % source)
    (tmp_path / 'solver.prototxt').write_text(SOLVER % (tmp_path / 'net.prototxt'))
    cpu, gpu = losses(tmp_path, False), losses(tmp_path, True)
    for (cpu_loss, cpu_data), (gpu_loss, gpu_data) in zip(cpu, gpu):
        np.testing.assert_array_equal(gpu_data, cpu_data)
        np.testing.assert_allclose(gpu_loss, cpu_loss, rtol=1e-4)
