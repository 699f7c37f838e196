"""core.proposals: one image's proposals from the RPN's scores and deltas (paper Sec. 3.3) under
literal ProposalSettings, against the pipeline written out one anchor at a time; the Table 2
ablations; the paper's train and test limits."""
import numpy as np
import pytest

from core.anchors import generate_anchors, shifted_anchors
from core.proposals import TEST_PROPOSALS, TRAIN_PROPOSALS, ProposalSettings, propose
from nms.dispatch import nms
from brute_force import iou, proposals_written_out, rpn_outputs

STRIDE = 16


def run(scores, deltas, im_info, settings, base=None):
    """propose() on (1, 2A, H, W) scores and (1, 4A, H, W) deltas laid out as the RPN gives them:
    (boxes, scores, anchor rows)."""
    base = generate_anchors() if base is None else base
    a = len(base)
    _, _, height, width = scores.shape
    # Anchor k = (y * W + x) * A + a: channels a (foreground half) / 4a..4a+3 at (y, x).
    fg = scores[0, a:].transpose(1, 2, 0).reshape(-1)
    d = deltas[0].transpose(1, 2, 0).reshape(-1, 4)
    anchors = shifted_anchors(base, height, width, STRIDE)
    return propose(fg, d, anchors, np.asarray(im_info, dtype=np.float32)[0], settings, nms)


@pytest.mark.parametrize('seed,pre_n,post_n,thresh,min_size,scale', [
    (0, 12000, 2000, 0.7, 16, 1.0),
    (1, 300, 50, 0.5, 16, 1.6),
    (2, 100, 20, 0.7, 40, 0.5),
    (3, 0, 0, 0.6, 8, 1.0),
])
def test_matches_pipeline_written_out(seed, pre_n, post_n, thresh, min_size, scale):
    scores, deltas = rpn_outputs(seed)
    im_info = np.array([[8 * STRIDE - 5, 10 * STRIDE - 3, scale]], dtype=np.float32)
    settings = ProposalSettings(pre_n, post_n, thresh, min_size)
    boxes, out_scores, rows = run(scores, deltas, im_info, settings)
    expected_boxes, expected_scores = proposals_written_out(
        scores, deltas, im_info, pre_n, post_n, thresh, min_size, generate_anchors())
    assert len(expected_boxes) > 0
    np.testing.assert_allclose(boxes, expected_boxes, rtol=1e-6, atol=1e-4)
    np.testing.assert_array_equal(out_scores, expected_scores)
    assert rows.shape == out_scores.shape


def test_properties_scores_sorted_nms_caps_clipping_min_size():
    scores, deltas = rpn_outputs(3, 12, 14)
    deltas[:, 2::4] += 0.5  # wide boxes, many past the border
    im_info = np.array([[180, 220, 1.5]], dtype=np.float32)
    boxes, out_scores, _ = run(scores, deltas, im_info, ProposalSettings(6000, 40, 0.7, 16))
    assert len(boxes) == 40
    assert (np.diff(out_scores) <= 0).all()
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 219).all()
    assert (boxes[:, 1] >= 0).all() and (boxes[:, 3] <= 179).all()
    assert (boxes[:, 2] == 219).any()  # clipping happened
    assert (boxes[:, 2] - boxes[:, 0] + 1 >= 24).all()
    assert (boxes[:, 3] - boxes[:, 1] + 1 >= 24).all()
    for i in range(len(boxes)):
        for j in range(i):
            assert iou(boxes[i], boxes[j]) <= 0.7


def test_min_size_is_in_original_image_pixels():
    # One anchor of 24 x 24 pixels (scale 1.5, ratio 1) per position, no regression.
    scores = np.zeros((1, 2, 4, 4), np.float32)
    scores[0, 1] = 0.5
    deltas = np.zeros((1, 4, 4, 4), np.float32)
    base = generate_anchors(16, [1], [1.5])
    settings = ProposalSettings(0, 0, 1.0, 16)
    kept = run(scores, deltas, [[1000, 1000, 1.0]], settings, base)[0]
    assert len(kept) == 16  # 24 >= 16 * 1.0
    dropped = run(scores, deltas, [[1000, 1000, 2.0]], settings, base)[0]
    assert len(dropped) == 0  # 24 < 16 * 2.0


def test_pre_nms_top_n_limits_candidates():
    scores, deltas = rpn_outputs(4)
    _, out_scores, _ = run(scores, deltas, [[1000, 1000, 1.0]], ProposalSettings(5, 100, 0.7, 0))
    top5 = np.sort(scores[0, 9:].ravel())[::-1][:5]
    assert len(out_scores) <= 5
    assert set(out_scores) <= set(top5)
    assert out_scores[0] == top5[0]


def test_no_nms_ablation_keeps_top_ranked():
    scores, deltas = rpn_outputs(6)
    im_info = np.array([[128, 160, 1.0]], dtype=np.float32)
    boxes, out_scores, _ = run(scores, deltas, im_info,
                               ProposalSettings(6000, 50, 0.3, 0, no_nms=True))
    expected_boxes, expected = proposals_written_out(scores, deltas, im_info, 6000, 50, 0.3, 0,
                                                     generate_anchors(), use_nms=False)
    np.testing.assert_array_equal(out_scores, expected)
    np.testing.assert_allclose(boxes, expected_boxes, rtol=1e-6, atol=1e-4)
    assert any(iou(boxes[i], boxes[j]) > 0.3 for i in range(50) for j in range(i))


def test_no_reg_ablation_proposes_anchors():
    scores = np.zeros((1, 2, 3, 3), np.float32)
    scores[0, 1] = np.arange(9).reshape(3, 3)
    deltas = np.ones((1, 4, 3, 3), np.float32)
    boxes, _, _ = run(scores, deltas, [[1000, 1000, 1.0]],
                      ProposalSettings(0, 0, 1.0, 0, mode='no_reg'), generate_anchors(16, [1], [2]))
    # Best first: position (2, 2), whose anchor spans 32 - 8 .. 32 + 23; clipped at 0 for x = 0.
    np.testing.assert_array_equal(boxes[0], [24, 24, 55, 55])
    np.testing.assert_array_equal(boxes[-1], [0, 0, 23, 23])


def test_no_cls_ablation_draws_unranked_proposals():
    scores, deltas = rpn_outputs(7)
    boxes, out_scores, _ = run(scores, deltas, [[1000, 1000, 1.0]],
                               ProposalSettings(0, 30, 0.7, 0, mode='no_cls'))
    assert len(boxes) == 30
    assert (np.diff(out_scores) > 0).any()  # not ranked by score
    with pytest.raises(ValueError, match='RPN mode'):
        ProposalSettings(mode='rnp')


def test_the_papers_train_and_test_limits():
    # Sec. 3.3: top 12000 / 2000 in training, 6000 / 300 at test time; NMS 0.7, min size 16.
    assert (TRAIN_PROPOSALS.pre_nms_top_n, TRAIN_PROPOSALS.post_nms_top_n) == (12000, 2000)
    assert (TEST_PROPOSALS.pre_nms_top_n, TEST_PROPOSALS.post_nms_top_n) == (6000, 300)
    for s in (TRAIN_PROPOSALS, TEST_PROPOSALS):
        assert (s.nms_thresh, s.min_size, s.no_nms, s.mode) == (0.7, 16, False, 'rpn')
