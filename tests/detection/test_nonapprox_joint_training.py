"""Non-approximate joint training (paper Sec. 3.2) on the toy net as its prototxt is written
(models/toy/TOY/faster_rcnn_end2end_nonapprox/train.prototxt): the total loss's derivative with
respect to rpn_bbox_pred's parameters, by finite differences with every selection step replayed
(anchor sampling by reseeding, the proposal selection and the RoI sampling frozen), against the
net's backward pass; and the approximate backward (coordinate gradient off), which must miss it.

The relative gaps are printed (pytest -s) for the record."""
import os

import numpy as np
import pytest

import caffe
from fast_rcnn import net_surgery
from fast_rcnn.experiment import Experiment
from replay import frozen_sampling, frozen_selection

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN = os.path.join(ROOT, 'models', 'toy', 'TOY', 'faster_rcnn_end2end_nonapprox',
                     'train.prototxt')
H, W = 240, 320
GT = np.array([[40, 50, 139, 129, 1], [180, 100, 259, 219, 2], [200, 20, 290, 70, 3]],
              np.float32)
SEED = 7


# The settings of the toy's end-to-end experiment, which the training tools write into the
# layers' param_str (the layers read nothing else).
TOY = Experiment.from_files([os.path.join(ROOT, 'experiments', 'cfgs', name)
                             for name in ('faster_rcnn_end2end.yml', 'toy.yml')])


def toy_image():
    """Three flat coloured boxes (the ground truth) on noise, BGR minus the pixel means."""
    rng = np.random.RandomState(0)
    im = rng.uniform(60, 120, size=(H, W, 3))
    for (x1, y1, x2, y2, _), colour in zip(GT.astype(int), [(40, 50, 215), (50, 185, 45),
                                                             (205, 95, 35)]):
        im[y1:y2 + 1, x1:x2 + 1] = colour
    im -= np.asarray(TOY.minibatch.pixel_means).reshape(1, 1, 3)
    return im.transpose(2, 0, 1)[None].astype(np.float32)


def with_inputs(param):
    """The train net with data, im_info and gt_boxes as inputs instead of the data layer."""
    assert param.layer[0].python_param.layer == 'RoIDataLayer'
    del param.layer[0]
    for name, dims in (('data', [1, 3, H, W]), ('im_info', [1, 3]), ('gt_boxes', [len(GT), 5])):
        param.input.append(name)
        param.input_shape.add().dim.extend(dims)
    return param


def with_target_gradient(param):
    for layer in param.layer:
        if layer.name == 'roi-data':
            layer.python_param.param_str = layer.python_param.param_str.replace(
                "'backprop_coords': 'all'", "'backprop_coords': 'all', 'backprop_targets': true")
    return param


class Toy:
    """The toy train net on one synthetic image, with random weights: the heads and the RPN's
    regression larger than their fillers make them, so that every path carries gradient."""

    def __init__(self, edit=None):
        param = net_surgery.with_layer_settings(net_surgery.read_net(TRAIN),
                                                TOY.layer_settings(caffe.TRAIN))
        param = with_inputs(param)
        if edit is not None:
            param = edit(param)
        caffe.set_random_seed(5)
        self.net = net = caffe.Net(param, caffe.TRAIN)
        rng = np.random.RandomState(1)
        for name in ('cls_score', 'bbox_pred', 'rpn_bbox_pred'):
            blob = net.params[name][0]
            blob.data[...] = rng.normal(0, 0.05, blob.data.shape)
        self.inputs = {'data': toy_image(), 'im_info': np.array([[H, W, 1.0]], np.float32),
                       'gt_boxes': GT}
        self.losses = [n for n in net.outputs if net.blob_loss_weights.get(n)]
        assert sorted(self.losses) == ['bbox_loss', 'cls_loss', 'rpn_cls_loss', 'rpn_loss_bbox']

    def layer(self, name):
        return self.net.layers[list(self.net._layer_names).index(name)]

    def loss(self, names=None):
        """The weighted sum of the losses (all, or the named ones) after a forward pass that
        draws the anchors' minibatch with the same seed."""
        np.random.seed(SEED)
        out = self.net.forward(**self.inputs)
        return sum(float(out[n]) * self.net.blob_loss_weights[n] for n in names or self.losses)

    def gradient(self):
        """d(total loss)/d(rpn_bbox_pred weights, biases) from the net's backward pass."""
        self.loss()
        for blobs in self.net.params.values():
            for b in blobs:
                b.diff[...] = 0
        self.net.backward()
        return [b.diff.copy() for b in self.net.params['rpn_bbox_pred']]

    def freeze(self, monkeypatch, targets_follow_rois):
        """Holds this forward pass's proposal selection and RoI sample fixed from now on."""
        import rpn.proposal_layer
        import rpn.proposal_target_layer
        self.loss()
        kept = self.layer('proposal')._selections[0].anchor_rows.copy()
        sample = self.layer('roi-data')._samples[0].sample
        monkeypatch.setattr(rpn.proposal_layer, 'propose', frozen_selection(kept))
        monkeypatch.setattr(rpn.proposal_target_layer, 'sample_rois_with_targets',
                            frozen_sampling(sample, targets_follow_rois))
        return kept, sample

    def finite_difference(self, k, index, step=1e-3, names=None):
        blob = self.net.params['rpn_bbox_pred'][k].data
        x = float(blob[index])
        values = []
        for sign in (1, -1):
            blob[index] = x + sign * step
            values.append(self.loss(names))
        blob[index] = x
        return (values[0] - values[1]) / (2 * step)


def relative_gap(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


@pytest.mark.parametrize('targets', ['constant', 'through_rois'])
def test_total_loss_derivative_matches_the_non_approximate_backward(monkeypatch, targets):
    toy = Toy(with_target_gradient if targets == 'through_rois' else None)
    non_approx = toy.gradient()
    toy.layer('proposal').backprop_coords = False
    approx = toy.gradient()
    toy.layer('proposal').backprop_coords = True
    kept, sample = toy.freeze(monkeypatch, targets_follow_rois=targets == 'through_rois')
    assert len(kept) == TOY.train_proposals.post_nms_top_n and (sample.labels > 0).sum() >= 3
    np.testing.assert_array_equal(toy.gradient()[1], non_approx[1])  # the replay is exact

    numeric, analytic, approximate = [], [], []
    for k in (0, 1):  # weights, biases: where the proposals' path matters most
        gap = np.abs(non_approx[k] - approx[k]).ravel()
        for flat in np.argsort(-gap, kind='stable')[:6]:
            index = np.unravel_index(flat, non_approx[k].shape)
            numeric.append(toy.finite_difference(k, index))
            analytic.append(non_approx[k][index])
            approximate.append(approx[k][index])
    error, approx_gap = relative_gap(analytic, numeric), relative_gap(approximate, numeric)
    print('\ntargets %s: non-approximate backward vs finite differences: relative gap %.4f; '
          'approximate backward: %.4f' % (targets, error, approx_gap))
    # ROIWarping's bilinear and 2 x 2 max kinks and the ReLUs make the loss piecewise smooth;
    # a few of the thousands of samples cross a kink within a step.
    assert error < 0.03
    assert approx_gap > 0.5
    for a, n in zip(analytic, numeric):
        assert abs(a - n) <= 0.05 * max(abs(n), 0.05), (a, n)


def test_approximate_gradient_is_the_rpn_box_loss_alone():
    """With the coordinate gradient off (the surgery the experiments use, cfg.TRAIN.
    COORD_GRADIENT False), rpn_bbox_pred learns from the RPN's own box loss only: its bias
    gradient is the finite difference of rpn_loss_bbox, whatever the detector does."""
    toy = Toy(net_surgery.without_coordinate_gradient)
    warp = [l for l in toy.net.layers if l.type == 'ROIWarping']
    assert len(warp) == 1
    _, biases = toy.gradient()
    assert biases.any()
    for j in np.argsort(-np.abs(biases))[:4]:
        numeric = toy.finite_difference(1, (j,), names=['rpn_loss_bbox'])
        assert abs(biases[j] - numeric) <= 0.02 * max(abs(numeric), 1e-3), (j, biases[j], numeric)
    # The same net as written passes more than that.
    full = Toy().gradient()[1]
    assert relative_gap(full, biases) > 0.5


def test_coordinate_gradient_surgery_turns_every_switch_off():
    param = net_surgery.read_net(TRAIN)
    assert len(net_surgery.coordinate_gradient_layers(param)) == 3
    approx = net_surgery.without_coordinate_gradient(param)
    layers = {l.name: l for l in approx.layer}
    assert list(layers['roi_warp_conv4'].propagate_down) == [True, False]
    assert 'backprop' not in layers['proposal'].python_param.param_str
    assert 'backprop' not in layers['roi-data'].python_param.param_str
    assert "'num_classes': 4" in layers['roi-data'].python_param.param_str
    assert net_surgery.coordinate_gradient_layers(approx) == []
    # The tools' switch: only nets with a coordinate gradient are adapted.
    assert [t for t, _ in net_surgery.net_changes(param, coord_gradient=False)] == ['nocoordgrad']
    assert net_surgery.net_changes(param) == []
    release = net_surgery.read_net(TRAIN.replace('_nonapprox', ''))
    assert net_surgery.net_changes(release, coord_gradient=False) == []
    assert net_surgery.net_changes(release, coord_gradient_scale=0.1) == []
    with pytest.raises(net_surgery.NetSurgeryError, match='no coordinate gradient'):
        net_surgery.without_coordinate_gradient(release)


def test_coordinate_gradient_scale_and_rois_surgery():
    from utils.param_str import load_param_str
    param = net_surgery.read_net(TRAIN)
    changes = net_surgery.net_changes(param, coord_gradient_scale=0.1, coord_gradient_rois='fg')
    assert [t for t, _ in changes] == ['coordgrad_fg_x0.1']
    layers = {l.name: l for l in changes[0][1](param).layer}
    proposal = load_param_str(layers['proposal'].python_param.param_str)
    assert proposal['coord_grad_scale'] == 0.1 and proposal['backprop_coords'] is True
    assert proposal['scales'] == [2, 4, 8] and proposal['feat_stride'] == 16
    assert load_param_str(layers['roi-data'].python_param.param_str) == \
        {'num_classes': 4, 'backprop_coords': 'fg'}
    only_scale = net_surgery.net_changes(param, coord_gradient_scale=0.5)
    layers = {l.name: l for l in only_scale[0][1](param).layer}
    assert only_scale[0][0] == 'coordgrad_x0.5'
    assert load_param_str(layers['roi-data'].python_param.param_str)['backprop_coords'] == 'all'
    # Turning the gradient off wins over changing it.
    assert [t for t, _ in net_surgery.net_changes(param, coord_gradient=False,
                                                  coord_gradient_scale=0.5)] == ['nocoordgrad']


def test_gradient_parts_reach_only_the_layers_below_the_proposals():
    """fast_rcnn.joint_gradients: the coordinate part is the difference of the two backward
    passes; it is exactly 0 for the detector's layers and the RPN's classifier (above or beside
    the proposal layer's box path) and not for rpn_bbox_pred and the convolutions under it."""
    from fast_rcnn import joint_gradients
    toy = Toy()
    toy.loss()  # sets the inputs the data-layer-less net keeps
    np.random.seed(SEED)
    parts = joint_gradients.gradient_parts(toy.net)
    assert toy.layer('proposal').backprop_coords  # left as it was
    for name in ('fc6', 'fc7', 'cls_score', 'bbox_pred', 'rpn_cls_score'):
        assert parts[name][1] == 0, name
        assert parts[name][0] > 0, name
    for name in ('rpn_bbox_pred', 'rpn_conv/3x3', 'conv4', 'conv1'):
        assert parts[name][1] > 0, name
    # rpn_bbox_pred's part: the gradient the whole-net check compares, minus the approximate.
    non_approx = toy.gradient()
    toy.layer('proposal').backprop_coords = False
    approx = toy.gradient()
    expected = np.sqrt(sum(np.sum((n.astype(np.float64) - a) ** 2)
                           for n, a in zip(non_approx, approx)))
    assert parts['rpn_bbox_pred'][1] == pytest.approx(expected, rel=1e-6)
    assert parts['rpn_bbox_pred'][0] == pytest.approx(
        np.sqrt(sum(np.sum(a.astype(np.float64) ** 2) for a in approx)), rel=1e-6)
    assert parts[None][1] >= parts['rpn_bbox_pred'][1]


def test_gradient_parts_need_a_proposal_layer():
    from fast_rcnn import joint_gradients

    class DetectorOnly:
        layers = [object()]
    with pytest.raises(ValueError, match='no proposal layer'):
        joint_gradients.proposal_layer(DetectorOnly())
