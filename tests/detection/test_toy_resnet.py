"""The toy ResNet (models/toy/TOY_ResNet) in CI: a short end-to-end training from random weights
on a few small toy images lowers the loss; the snapshot holds the BatchNorm running statistics
that training accumulated; and the test net normalizes with exactly those."""
import os

import cv2
import numpy as np
import pytest

from caffe import io as caffe_io
from caffe.proto import caffe_pb2
from fast_rcnn import test as frcnn_test
from fast_rcnn.experiment import Experiment, test_experiment, train_experiment

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NET_DIR = os.path.join(ROOT, 'models', 'toy', 'TOY_ResNet', 'faster_rcnn_end2end')
ITERS = 60

pytestmark = pytest.mark.slow


@pytest.fixture
def toy_experiment(tmp_path):
    """The toy's end-to-end experiment on a few small images (the anchors, 32 to 128 pixels,
    still fit), data and outputs under tmp_path."""
    from datasets.toy import generate_toy_dataset
    data = tmp_path / 'data'
    generate_toy_dataset(str(data / 'toy'), num_train=6, num_test=2)
    return Experiment.from_files(
        [os.path.join(ROOT, 'experiments', 'cfgs', name)
         for name in ('faster_rcnn_end2end.yml', 'toy.yml')],
        {'DATA_DIR': str(data), 'ROOT_DIR': str(tmp_path),
         'TRAIN': {'SCALES': [160], 'MAX_SIZE': 240},
         'TEST': {'SCALES': [160], 'MAX_SIZE': 240}})


def _loss(net):
    weights = net.blob_loss_weights
    return sum(float(np.sum(net.blobs[n].data)) for n in net.outputs if weights.get(n))


def test_toy_resnet_learns_and_tests_with_its_saved_statistics(toy_experiment, tmp_path):
    training = train_experiment(toy_experiment, os.path.join(NET_DIR, 'solver.prototxt'),
                                'toy_train')
    wrapper = training.solver_wrapper()
    net = wrapper.solver.net
    batch_norms = [name for name, layer in net.layer_dict.items() if layer.type == 'BatchNorm']
    assert batch_norms and not any(net.layer_dict[n].use_global_stats for n in batch_norms)
    losses = []
    for _ in range(ITERS):
        wrapper.solver.step(1)
        losses.append(_loss(net))
    assert np.mean(losses[-15:]) < 0.7 * np.mean(losses[:15]), losses

    # The snapshot holds the running sums: each of the ITERS forward passes decayed them by the
    # moving-average fraction and added one batch's statistics (weight 1).
    model = wrapper.snapshot()
    saved = {layer.name: [caffe_io.blobproto_to_array(b) for b in layer.blobs]
             for layer in caffe_io.read_binary(model, caffe_pb2.NetParameter()).layer}
    fraction = 0.999
    for name in batch_norms:
        mean_sum, var_sum, weight = saved[name]
        np.testing.assert_allclose(weight, [(1 - fraction ** ITERS) / (1 - fraction)], rtol=1e-5)
        assert np.all(var_sum > 0) and np.any(mean_sum != 0), name

    # The test net normalizes with them: the first BatchNorm's output is (x - mean) /
    # sqrt(var + eps) with the saved averages, not the image's own statistics.
    test_net = test_experiment(toy_experiment, os.path.join(NET_DIR, 'test.prototxt'), model,
                               output_dir=str(tmp_path / 'test')).net
    image = cv2.imread(toy_experiment.imdb('toy_test').image_path_at(0))
    scores, boxes = frcnn_test.im_detect(test_net, image)
    assert scores.shape[1] == 4 and np.all(np.isfinite(scores))
    bn = batch_norms[0]
    conv = test_net.bottom_names[bn][0]          # the conv's layer and (in-place) blob name
    assert test_net.layer_dict[conv].type == 'Convolution'
    test_net.forward(end=conv)
    x = test_net.blobs[conv].data.astype(np.float64)
    test_net.forward(start=bn, end=bn)
    mean_sum, var_sum, weight = saved[bn]
    shape = (1, -1, 1, 1)
    expected = (x - (mean_sum / weight).reshape(shape)) / np.sqrt(
        (var_sum / weight).reshape(shape) + 1e-5)
    got = test_net.blobs[conv].data
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    own = (x - x.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(
        x.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
    assert np.abs(got - own).max() > 1e-2
