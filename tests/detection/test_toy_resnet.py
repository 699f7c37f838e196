"""The toy ResNet (models/toy/TOY_ResNet) in CI: a short end-to-end training from random weights
on a few small toy images lowers the loss; the snapshot holds the BatchNorm running statistics
that training accumulated; and the test net normalizes with exactly those."""
import os

import cv2
import numpy as np
import pytest

import caffe
from caffe import io as caffe_io
from caffe.proto import caffe_pb2
from fast_rcnn import test as frcnn_test
from fast_rcnn import train as frcnn_train
from fast_rcnn.config import cfg, cfg_from_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NET_DIR = os.path.join(ROOT, 'models', 'toy', 'TOY_ResNet', 'faster_rcnn_end2end')
ITERS = 60

pytestmark = pytest.mark.slow


@pytest.fixture
def toy_cfg(tmp_path):
    from datasets.toy import generate_toy_dataset
    for name in ('faster_rcnn_end2end.yml', 'toy.yml'):
        cfg_from_file(os.path.join(ROOT, 'experiments', 'cfgs', name))
    cfg.DATA_DIR = str(tmp_path / 'data')
    generate_toy_dataset(os.path.join(cfg.DATA_DIR, 'toy'), num_train=6, num_test=2)
    # Small images keep the run short; the anchors (32 to 128 pixels) still fit.
    cfg.TRAIN.SCALES, cfg.TRAIN.MAX_SIZE = (160,), 240
    cfg.TEST.SCALES, cfg.TEST.MAX_SIZE = (160,), 240
    return tmp_path


def _loss(net):
    weights = net.blob_loss_weights
    return sum(float(np.sum(net.blobs[n].data)) for n in net.outputs if weights.get(n))


def test_toy_resnet_learns_and_tests_with_its_saved_statistics(toy_cfg):
    from datasets.factory import get_imdb
    imdb = get_imdb('toy_train')
    roidb = frcnn_train.filter_roidb(frcnn_train.get_training_roidb(imdb))
    frcnn_train.seed_rngs(cfg.RNG_SEED)
    wrapper = frcnn_train.SolverWrapper(os.path.join(NET_DIR, 'solver.prototxt'), roidb,
                                        str(toy_cfg / 'out'))
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
    test_net = caffe.Net(os.path.join(NET_DIR, 'test.prototxt'), model, caffe.TEST)
    image = cv2.imread(get_imdb('toy_test').image_path_at(0))
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
