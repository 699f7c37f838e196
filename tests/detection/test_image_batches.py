"""Several images per end-to-end minibatch (the data layer's ims_per_batch > 1): one batch of
two images gives the losses and gradients of the two images one at a time with iter_size 2.

The sampling of anchors and RoIs is made deterministic here (the first candidates instead of a
random draw), since the two schedules draw from the RNG in different orders; the batch holds
batch_size RoIs split over its images, so it gets twice the single image's batch_size. Both
images have the same size, so the padded blob is the images themselves. The settings reach the
layers through the param_str of a copy of the toy training net, as the training tools write it.
"""
import os

import cv2
import numpy as np
import pytest
import scipy.sparse

import caffe
from core import sampling
from core.anchor_targets import AnchorLabelling
from core.proposals import ProposalSettings
from core.sampling import RoISampling
from fast_rcnn import net_surgery
from roi_data_layer import roidb as rdl_roidb
from roi_data_layer.minibatch import MinibatchSettings
from utils.param_str import settings_params

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN_NET = os.path.join(ROOT, 'models', 'toy', 'TOY', 'faster_rcnn_end2end', 'train.prototxt')
H, W = 192, 256
GT = [np.array([[30, 40, 110, 150], [140, 20, 230, 100]]), np.array([[60, 60, 180, 170]])]
CLASSES = [np.array([1, 2]), np.array([3])]


class _Imdb:
    def __init__(self, roidb, paths):
        self.roidb, self._paths, self.name = roidb, paths, 'two_images'

    def image_path_at(self, i):
        return self._paths[i]

    def image_size_at(self, i):
        return W, H


def two_image_roidb(tmp_path):
    rng = np.random.RandomState(0)
    roidb, paths = [], []
    for i, (gt, classes) in enumerate(zip(GT, CLASSES)):
        im = rng.randint(0, 256, size=(H, W, 3)).astype(np.uint8)
        for (x1, y1, x2, y2), c in zip(gt, classes):
            im[y1:y2 + 1, x1:x2 + 1] = 60 * c
        path = str(tmp_path / ('im%d.png' % i))
        cv2.imwrite(path, im)
        paths.append(path)
        overlaps = np.zeros((len(gt), 4), np.float32)
        overlaps[np.arange(len(gt)), classes] = 1
        roidb.append({'boxes': gt.astype(np.uint16), 'gt_classes': classes.astype(np.int32),
                      'gt_overlaps': scipy.sparse.csr_matrix(overlaps), 'flipped': False,
                      'width': W, 'height': H, 'seg_areas': np.zeros(len(gt), np.float32)})
    rdl_roidb.prepare_roidb(_Imdb(roidb, paths))
    return roidb


@pytest.fixture
def deterministic(monkeypatch):
    monkeypatch.setattr(sampling, '_choose', lambda inds, n: inds[:n].copy())


def net_for(ims_per_batch, batch_size, roidb, tmp_path):
    sampling_rule = RoISampling(batch_size=batch_size, bg_thresh_lo=0.0)
    minibatch = MinibatchSettings(scales=(H,), max_size=1000, has_rpn=True,
                                  sampling=sampling_rule, ims_per_batch=ims_per_batch)
    everything = lambda values: (values, frozenset(values))  # noqa: E731
    settings = {
        'roi_data_layer.layer': everything(dict(settings_params(minibatch),
                                                aspect_grouping=False)),
        'rpn.anchor_target_layer': everything(settings_params(AnchorLabelling(batch_size=64))),
        'rpn.proposal_layer': everything(settings_params(ProposalSettings(300, 60, 0.7, 4))),
        'rpn.proposal_target_layer': everything(dict(settings_params(sampling_rule),
                                                     precomputed=True)),
    }
    path = str(tmp_path / ('train_%d.prototxt' % ims_per_batch))
    net_surgery.write_text(path, net_surgery.with_layer_settings(
        net_surgery.read_net(TRAIN_NET), settings))
    caffe.set_random_seed(5)
    net = caffe.Net(path, caffe.TRAIN)
    data_layer = net.layers[0]
    data_layer.set_roidb(roidb)
    data_layer.set_state({'perm': np.arange(len(roidb)), 'cur': 0})
    return net


def losses_and_gradients(net, passes):
    """The loss outputs averaged over `passes` forward/backward passes, and the parameter
    gradients accumulated over them divided by `passes` (the solver's iter_size)."""
    names = [n for n in net.outputs if net.blob_loss_weights.get(n, 0)]
    for blobs in net.params.values():
        for b in blobs:
            b.diff[...] = 0
    losses = dict.fromkeys(names, 0.0)
    for _ in range(passes):
        out = net.forward()
        net.backward()
        for n in names:
            losses[n] += float(out[n]) / passes
    grads = {name: [b.diff.copy() / passes for b in blobs] for name, blobs in net.params.items()}
    return losses, grads


def test_two_images_in_one_batch_equal_two_single_images_with_iter_size_2(deterministic,
                                                                          tmp_path):
    roidb = two_image_roidb(tmp_path)
    batch = net_for(2, 64, roidb, tmp_path)
    single = net_for(1, 32, roidb, tmp_path)
    for name, blobs in batch.params.items():   # the same weights in both
        for a, b in zip(blobs, single.params[name]):
            b.data[...] = a.data
    batch_losses, batch_grads = losses_and_gradients(batch, 1)
    assert batch.blobs['data'].shape[0] == 2 and batch.blobs['im_info'].shape == (2, 3)
    assert batch.blobs['rois'].data[:, 0].tolist().count(1) == 32  # 64 RoIs, 32 per image
    single_losses, single_grads = losses_and_gradients(single, 2)
    for name in batch_losses:
        assert batch_losses[name] == pytest.approx(single_losses[name], rel=1e-4, abs=1e-6), name
    checked = 0
    for name, grads in batch_grads.items():
        for got, expected in zip(grads, single_grads[name]):
            scale = max(np.abs(expected).max(), 1e-6)
            np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4 * scale,
                                       err_msg=name)
            checked += int(np.abs(expected).max() > 0)
    assert checked >= 10  # the losses reach the parameters of every part of the net
