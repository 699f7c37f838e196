"""ProposalLayer: its settings come from its param_str, with the paper's limits for its phase
as defaults (the proposal rule itself is tested in tests/core/test_proposals.py); a batch is
proposed image by image; the coordinate backward of non-approximate joint training."""
import numpy as np
import pytest

import caffe
from caffe.testing import layer_param
from rpn.generate_anchors import generate_anchors
from rpn.proposal_layer import ProposalLayer, proposal_layer_settings
from brute_force import proposals_written_out, rpn_outputs as random_inputs
from replay import frozen_selection

STRIDE = 16
A = 9


def make_layer(phase, param_str="'feat_stride': 16"):
    param = layer_param('name: "proposal" type: "Python"')
    param.python_param.param_str = param_str
    return ProposalLayer(param, phase)


def build(scores, deltas, im_info, phase=caffe.TRAIN, num_tops=2,
          param_str="'feat_stride': 16"):
    """The layer set up on blobs holding the arrays, after one forward pass."""
    layer = make_layer(phase, param_str)
    bottom = []
    for a in (scores, deltas, im_info):
        a = np.asarray(a, dtype=np.float32)
        blob = caffe.Blob(a.shape)
        blob.data[...] = a
        bottom.append(blob)
    top = [caffe.Blob() for _ in range(num_tops)]
    layer.setup(bottom, top)
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    return layer, bottom, top


def run(scores, deltas, im_info, phase=caffe.TRAIN, num_tops=2, param_str="'feat_stride': 16"):
    _, _, top = build(scores, deltas, im_info, phase, num_tops, param_str)
    return [t.data.copy() for t in top]


def limits(pre_n, post_n, thresh, min_size, extra=''):
    """A param_str with these proposal limits."""
    return ("{'feat_stride': 16, 'pre_nms_top_n': %d, 'post_nms_top_n': %d, 'nms_thresh': %s, "
            "'min_size': %s%s}" % (pre_n, post_n, thresh, min_size, extra))


@pytest.mark.parametrize('phase', [caffe.TRAIN, caffe.TEST])
def test_param_str_limits_reach_the_proposals(phase):
    scores, deltas = random_inputs(1)
    im_info = np.array([[8 * STRIDE - 5, 10 * STRIDE - 3, 1.6]], dtype=np.float32)
    rois, out_scores = run(scores, deltas, im_info, phase, param_str=limits(300, 50, 0.5, 16))
    boxes, expected = proposals_written_out(scores, deltas, im_info, 300, 50, 0.5, 16,
                                            generate_anchors())
    assert rois.shape == (boxes.shape[0], 5) and out_scores.shape == (boxes.shape[0], 1)
    assert (rois[:, 0] == 0).all()
    np.testing.assert_allclose(rois[:, 1:], boxes, rtol=1e-6, atol=1e-4)
    np.testing.assert_array_equal(out_scores.ravel(), expected)


def test_phase_gives_the_papers_train_or_test_limits():
    # Without limits in the param_str: 2000 after NMS in training, 300 at test time.
    scores, deltas = random_inputs(5, 40, 50)
    im_info = [[640, 800, 1.0]]
    assert len(run(scores, deltas, im_info, caffe.TRAIN)[0]) > 300
    assert len(run(scores, deltas, im_info, caffe.TEST)[0]) == 300
    settings = proposal_layer_settings("'feat_stride': 16", caffe.TRAIN).proposals
    assert (settings.pre_nms_top_n, settings.post_nms_top_n) == (12000, 2000)
    settings = proposal_layer_settings("'feat_stride': 16", caffe.TEST).proposals
    assert (settings.pre_nms_top_n, settings.post_nms_top_n) == (6000, 300)


def test_ablations_and_anchors_from_the_param_str():
    scores = np.zeros((1, 2, 3, 3), np.float32)
    scores[0, 1] = np.arange(9).reshape(3, 3)
    deltas = np.ones((1, 4, 3, 3), np.float32)
    param = limits(0, 0, 1.0, 0, ", 'scales': [2], 'ratios': [1], 'mode': 'no_reg'")
    rois = run(scores, deltas, [[1000, 1000, 1.0]], caffe.TEST, 1, param)[0]
    np.testing.assert_array_equal(rois[0], [0, 24, 24, 55, 55])  # the anchors themselves
    scores, deltas = random_inputs(6)
    im_info = np.array([[128, 160, 1.0]], dtype=np.float32)
    rois, out_scores = run(scores, deltas, im_info, caffe.TEST,
                           param_str=limits(6000, 50, 0.3, 0, ", 'no_nms': true"))
    _, expected = proposals_written_out(scores, deltas, im_info, 6000, 50, 0.3, 0,
                                        generate_anchors(), use_nms=False)
    np.testing.assert_array_equal(out_scores.ravel(), expected)


def test_proposal_layer_settings_reads_a_prototxt_param_str():
    # What a tool reading a prototxt (an exporter) gets, with the layer's own defaults.
    s = proposal_layer_settings("{'feat_stride': 16, 'scales': [2, 4], 'ratios': [1], "
                                "'post_nms_top_n': 100, 'min_size': 8, 'use_gpu_nms': false}",
                                caffe.TEST)
    assert s.feat_stride == 16 and s.anchors.shape == (2, 4)
    np.testing.assert_array_equal(s.anchors, generate_anchors(16, [1], [2, 4]))
    assert (s.proposals.pre_nms_top_n, s.proposals.post_nms_top_n) == (6000, 100)
    assert s.proposals.min_size == 8 and s.use_gpu_nms is False
    assert s.backprop_coords is False and s.coord_grad_scale == 1.0
    with pytest.raises(ValueError, match="the RPN mode is 'rnp'"):
        proposal_layer_settings("{'feat_stride': 16, 'mode': 'rnp'}", caffe.TEST)
    with pytest.raises(ValueError, match="'post_nms_top_n' should be an integer"):
        proposal_layer_settings("{'feat_stride': 16, 'post_nms_top_n': 1.5}", caffe.TEST)


def test_single_top_and_errors():
    scores, deltas = random_inputs(8)
    rois = run(scores, deltas, [[200, 200, 1.0]], num_tops=1)[0]
    assert rois.shape[1] == 5
    with pytest.raises(caffe.CaffeError, match='im_info'):
        run(np.concatenate([scores] * 2), np.concatenate([deltas] * 2), [[200, 200, 1.0]])
    with pytest.raises(caffe.CaffeError, match='channels'):
        run(scores[:, :6], deltas, [[200, 200, 1.0]])
    with pytest.raises(caffe.CaffeError, match="proposal.*unknown param_str key.*pre_nms_topn"):
        run(scores, deltas, [[200, 200, 1.0]], param_str="{'feat_stride': 16, 'pre_nms_topn': 5}")


def test_a_batch_proposes_for_each_image_alone():
    # Two images of different extents in one padded blob: each gets the proposals it gets on
    # its own (its size, scale, limits and NMS), tagged with its index, in image order.
    (s0, d0), (s1, d1) = random_inputs(11), random_inputs(12)
    info = [[128, 160, 1.0], [100, 120, 0.8]]
    alone = [run(s, d, [i]) for s, d, i in ((s0, d0, info[0]), (s1, d1, info[1]))]
    rois, scores = run(np.concatenate([s0, s1]), np.concatenate([d0, d1]), info)
    n0 = len(alone[0][0])
    assert len(rois) == n0 + len(alone[1][0]) and n0 > 0 and len(alone[1][0]) > 0
    np.testing.assert_array_equal(rois[:n0, 1:], alone[0][0][:, 1:])
    np.testing.assert_array_equal(rois[n0:, 1:], alone[1][0][:, 1:])
    assert (rois[:n0, 0] == 0).all() and (rois[n0:, 0] == 1).all()
    np.testing.assert_array_equal(scores, np.concatenate([alone[0][1], alone[1][1]]))
    assert rois[n0:, 3].max() <= 119 and rois[n0:, 4].max() <= 99  # clipped to image 1


class FakeRpnNet:
    """Stands in for an RPN test net: records its inputs and proposes fixed scaled boxes."""

    def __init__(self):
        self.blobs = {name: caffe.Blob((1, 1)) for name in ('data', 'im_info', 'rois', 'scores')}
        self.inputs = []

    def forward(self, **kwargs):
        self.inputs.append(kwargs)
        scale = kwargs['im_info'][0, 2]
        rois = np.array([[0, 10, 20, 30, 40], [0, 0, 0, 99, 59]], np.float32)
        rois[:, 1:] *= scale
        self.blobs['rois'].reshape(*rois.shape)
        self.blobs['rois'].data[...] = rois
        self.blobs['scores'].reshape(2, 1)
        self.blobs['scores'].data[...] = [[0.9], [0.2]]
        return {'rois': rois}


def test_im_proposals_returns_boxes_in_image_pixels():
    from fast_rcnn.test_settings import TestSettings
    from rpn.generate import im_proposals
    net = FakeRpnNet()
    boxes, scores = im_proposals(net, np.zeros((60, 100, 3), np.uint8), TestSettings(scales=(120,)))
    np.testing.assert_array_equal(net.inputs[0]['im_info'], [[120, 200, 2.0]])
    assert net.inputs[0]['data'].shape == (1, 3, 120, 200)
    np.testing.assert_allclose(boxes, [[10, 20, 30, 40], [0, 0, 99, 59]])
    np.testing.assert_array_equal(scores, np.float32([[0.9], [0.2]]))
    with pytest.raises(ValueError, match='one scale'):
        im_proposals(net, np.zeros((60, 100, 3), np.uint8), TestSettings(scales=(120, 240)))


def test_imdb_proposals_covers_every_image_and_names_bad_files(tmp_path, capsys):
    import cv2
    from fast_rcnn.test_settings import TestSettings
    from rpn.generate import imdb_proposals
    settings = TestSettings(scales=(60,))
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / ('%d.png' % i)))
        cv2.imwrite(paths[-1], np.zeros((30 + 10 * i, 50, 3), np.uint8))

    class Imdb:
        num_images = 3

        def image_path_at(self, i):
            return paths[i]

    boxes = imdb_proposals(FakeRpnNet(), Imdb(), settings)
    assert len(boxes) == 3
    for i, b in enumerate(boxes):
        # proposals are clipped to the original image (width 50, height 30 + 10 i)
        h = 30 + 10 * i
        expected = [[10, 20, 30, min(40, h - 1)], [0, 0, 49, min(59, h - 1)]]
        np.testing.assert_allclose(b, expected, rtol=1e-6)
    assert 'im_proposals: 3/3' in capsys.readouterr().out
    paths[1] = str(tmp_path / 'missing.jpg')
    with pytest.raises(OSError, match='missing.jpg'):
        imdb_proposals(FakeRpnNet(), Imdb(), settings)


# Backward (non-approximate joint training, paper Sec. 3.2) -------------------------------------

BACKPROP = limits(300, 40, 0.7, 16, ", 'backprop_coords': true")


def build_backprop(scores, deltas, im_info, param_str=BACKPROP, phase=caffe.TRAIN):
    return build(scores, deltas, im_info, phase, 2, param_str)


def decoded(anchor, d):
    """One anchor's box before clipping, written out in float64 (paper Eq. 2 inverted, the
    release's x2 = cx + w / 2)."""
    w, h = anchor[2] - anchor[0] + 1.0, anchor[3] - anchor[1] + 1.0
    cx, cy = anchor[0] + 0.5 * w + d[0] * w, anchor[1] + 0.5 * h + d[1] * h
    pw, ph = np.exp(d[2]) * w, np.exp(d[3]) * h
    return np.array([cx - 0.5 * pw, cy - 0.5 * ph, cx + 0.5 * pw, cy + 0.5 * ph])


def anchor_at(k, width):
    """Anchor k of the (y, x, a)-ordered grid, as the reference pipeline places it."""
    a, pos = k % A, k // A
    y, x = divmod(pos, width)
    return generate_anchors()[a] + [x * STRIDE, y * STRIDE, x * STRIDE, y * STRIDE]


def anchors_of_rois(top, deltas, im_info):
    """For each of the layer's proposals, the anchors whose decoded, clipped box it is (found by
    brute force over all anchors, not from the layer's bookkeeping; clipping can give two
    anchors one box)."""
    _, _, height, width = deltas.shape
    im_h, im_w = im_info[0][:2]
    boxes = {}
    for k in range(height * width * A):
        a, pos = k % A, k // A
        y, x = divmod(pos, width)
        box = np.clip(decoded(anchor_at(k, width), deltas[0, 4 * a:4 * a + 4, y, x]), 0,
                      [im_w - 1, im_h - 1, im_w - 1, im_h - 1])
        boxes.setdefault(tuple(np.round(box, 2)), []).append(k)
    rois = top[0].data[:, 1:]
    return [boxes[tuple(np.round(r.astype(np.float64), 2))] for r in rois]


@pytest.mark.parametrize('seed', [0, 1])
def test_backward_matches_finite_differences_with_the_kept_set_frozen(monkeypatch, seed):
    """d(sum w * rois) / d(rpn_bbox_pred) against central differences of the layer's output
    with the kept set frozen (the selection passes no gradient)."""
    scores, deltas = random_inputs(seed, 6, 7)
    im_info = np.array([[6 * STRIDE + 11, 7 * STRIDE - 9, 1.0]], dtype=np.float32)
    layer, bottom, top = build_backprop(scores, deltas, im_info)
    kept = layer._selections[0].anchor_rows.copy()
    assert all(k in found for k, found in zip(kept, anchors_of_rois(top, deltas, im_info)))
    rng = np.random.RandomState(10 + seed)
    weights = rng.uniform(-1, 1, size=top[0].shape).astype(np.float32)
    top[0].diff[...] = weights
    top[1].diff[...] = rng.uniform(-1, 1, size=top[1].shape)
    bottom[1].diff[...] = 7  # overwritten, not accumulated
    layer.backward(top, [True, True, False], bottom)
    analytic = bottom[1].diff.copy()
    assert not bottom[0].diff.any()  # scores get no gradient

    rois = top[0].data.copy()
    import rpn.proposal_layer
    monkeypatch.setattr(rpn.proposal_layer, 'propose', frozen_selection(kept))
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, rois)
    step, checked = 1e-2, 0
    im_h, im_w = im_info[0][:2]
    limit = np.array([im_w, im_h, im_w, im_h]) - 1
    used = set(kept.tolist())
    for k in range(deltas.size // 4):
        a, pos = k % A, k // A
        y, x = divmod(pos, deltas.shape[3])
        for c in range(4):
            idx = (0, 4 * a + c, y, x)
            if k not in used:
                assert analytic[idx] == 0
                continue
            # Skip a coordinate the step would carry across the image border (a kink).
            sides = []
            for sign in (1, -1):
                d = deltas[0, 4 * a:4 * a + 4, y, x].astype(np.float64)
                d[c] += sign * step
                box = decoded(anchor_at(k, deltas.shape[3]), d)
                sides.append((box >= 0) & (box <= limit))
            if (sides[0] != sides[1]).any():
                continue
            values = []
            for sign in (1, -1):
                bottom[1].data[idx] = deltas[idx] + sign * step
                layer.forward(bottom, top)
                values.append(float(np.sum(top[0].data.astype(np.float64) * weights)))
            bottom[1].data[idx] = deltas[idx]
            numeric = (values[0] - values[1]) / (2 * step)
            assert abs(analytic[idx] - numeric) <= 2e-3 * max(abs(numeric), 1.0), \
                (idx, analytic[idx], numeric)
            checked += 1
    assert checked >= 4 * len(kept) - 8


def test_clipped_coordinates_pass_no_gradient():
    """One 32 x 32 anchor (scale 2, ratio 1) at the top-left position, widened past the left and
    top border: x1 and y1 are clipped to 0, x2 and y2 are not. By hand: d x2 / d dx = w and
    d x2 / d dw = exp(dw) * w / 2, while x1's gradient is dropped."""
    scores = np.zeros((1, 2, 2, 2), np.float32)
    scores[0, 1, 0, 0] = 1.0  # the best proposal is the top-left anchor
    deltas = np.zeros((1, 4, 2, 2), np.float32)
    deltas[0, :, 0, 0] = [0.1, 0.2, 0.5, 0.4]
    param = limits(0, 0, 1.0, 0, ", 'scales': [2], 'ratios': [1], 'backprop_coords': true")
    layer, bottom, top = build_backprop(scores, deltas, [[100, 120, 1.0]], param)
    anchor = np.array([-8, -8, 23, 23], np.float64)  # 32 x 32 centred on (7.5, 7.5)
    box = decoded(anchor, deltas[0, :, 0, 0].astype(np.float64))
    assert box[0] < 0 and box[1] < 0 and 0 < box[2] < 119 and 0 < box[3] < 99
    np.testing.assert_allclose(top[0].data[0, 1:], [0, 0, box[2], box[3]], rtol=1e-6)
    top[0].diff[...] = 0
    g = np.array([3.0, -2.0, 5.0, 7.0])
    top[0].diff[0, 1:] = g
    layer.backward(top, [False, True, False], bottom)
    w = 32.0
    expected = [w * g[2], w * g[3], 0.5 * np.exp(0.5) * w * g[2], 0.5 * np.exp(0.4) * w * g[3]]
    np.testing.assert_allclose(bottom[1].diff[0, :, 0, 0], expected, rtol=1e-5)
    assert not bottom[1].diff[0, :, 1:, :].any() and not bottom[1].diff[0, :, 0, 1].any()
    # Inside the image, both corners pass gradient (the same anchor, narrower).
    bottom[1].data[0, 2:, 0, 0] = -0.6
    bottom[1].data[0, :2, 0, 0] = [0.4, 0.4]
    layer.forward(bottom, top)
    box = decoded(anchor, bottom[1].data[0, :, 0, 0].astype(np.float64))
    assert (box > 0).all()
    top[0].diff[0, 1:] = g
    layer.backward(top, [False, True, False], bottom)
    expected = [w * (g[0] + g[2]), w * (g[1] + g[3]), 0.5 * np.exp(-0.6) * w * (g[2] - g[0]),
                0.5 * np.exp(-0.6) * w * (g[3] - g[1])]
    np.testing.assert_allclose(bottom[1].diff[0, :, 0, 0], expected, rtol=1e-5)


def test_backward_is_off_by_default_and_param_checked():
    scores, deltas = random_inputs(2, 4, 5)
    layer, bottom, top = build_backprop(scores, deltas, [[100, 120, 1.0]],
                                        limits(300, 40, 0.7, 16))
    top[0].diff[...] = 1
    bottom[1].diff[...] = 5
    bottom[0].diff[...] = 5
    layer.backward(top, [True, True, False], bottom)
    assert not bottom[0].diff.any() and not bottom[1].diff.any()
    with pytest.raises(caffe.CaffeError, match='backprop_coords'):
        build_backprop(scores, deltas, [[100, 120, 1.0]],
                       "{'feat_stride': 16, 'backprop_coords': 'yes'}")
    for bad in ("-1", "'big'", "true"):
        with pytest.raises(caffe.CaffeError, match='coord_grad_scale'):
            build_backprop(scores, deltas, [[100, 120, 1.0]],
                           "{'feat_stride': 16, 'coord_grad_scale': %s}" % bad)


def test_coord_grad_scale_multiplies_the_gradient():
    scores, deltas = random_inputs(3, 4, 5)
    grads = []
    for param in (BACKPROP, limits(300, 40, 0.7, 16, ", 'backprop_coords': true, "
                                                     "'coord_grad_scale': 0.25")):
        layer, bottom, top = build_backprop(scores, deltas, [[100, 120, 1.0]], param)
        top[0].diff[...] = np.random.RandomState(0).uniform(-1, 1, top[0].shape)
        layer.backward(top, [True, True, False], bottom)
        grads.append(bottom[1].diff.copy())
    assert np.abs(grads[0]).max() > 1
    np.testing.assert_allclose(grads[1], 0.25 * grads[0], rtol=1e-6)


def test_backward_of_a_batch_is_each_images_backward():
    # Two images in one padded blob: each image's rpn_bbox_pred gradient is the one it gets
    # alone from its own rows of the rois gradient; padding positions of the smaller image's
    # score map still belong to it (same map size), so the whole slice is compared.
    (s0, d0), (s1, d1) = random_inputs(21, 6, 7), random_inputs(22, 6, 7)
    info = [[90, 110, 1.0], [80, 100, 0.8]]
    rng = np.random.RandomState(5)
    layer, bottom, top = build_backprop(np.concatenate([s0, s1]), np.concatenate([d0, d1]), info)
    top[0].diff[...] = rng.uniform(-1, 1, top[0].shape)
    layer.backward(top, [True, True, False], bottom)
    batch_grad = bottom[1].diff.copy()
    for n, (s, d) in enumerate(((s0, d0), (s1, d1))):
        rows = top[0].data[:, 0] == n
        assert rows.sum() > 0
        l1, b1, t1 = build_backprop(s, d, [info[n]])
        np.testing.assert_array_equal(t1[0].data[:, 1:], top[0].data[rows, 1:])
        t1[0].diff[...] = top[0].diff[rows]
        l1.backward(t1, [True, True, False], b1)
        assert np.abs(b1[1].diff).max() > 0
        np.testing.assert_array_equal(batch_grad[n], b1[1].diff[0])
