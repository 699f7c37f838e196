"""Golden values for the detection tests, computed the slow, obvious way (independent of the
Cython and numpy code under test), and the random RPN outputs some of them are fed."""
import numpy as np


def iou(a, b):
    """IoU of two [x1, y1, x2, y2] boxes with the release's +1 pixel widths."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
                     - inter)


def rpn_outputs(seed, height=8, width=10, num_anchors=9):
    """Random RPN outputs for one image: scores (1, 2A, H, W) (background, then foreground
    probabilities, some tied) and deltas (1, 4A, H, W), float32."""
    rng = np.random.RandomState(seed)
    probs = rng.uniform(0, 1, size=(1, num_anchors, height, width))
    probs[0, :, :2, :2] = np.round(probs[0, :, :2, :2], 1)  # tied scores
    scores = np.concatenate([1 - probs, probs], axis=1)
    deltas = rng.normal(0, 0.3, size=(1, 4 * num_anchors, height, width))
    return scores.astype(np.float32), deltas.astype(np.float32)


def proposals_written_out(scores, deltas, im_info, pre_n, post_n, thresh, min_size, base,
                          stride=16, use_nms=True):
    """The proposal pipeline (paper Sec. 3.3) written out one anchor at a time over the base
    anchors shifted by stride: (boxes, scores) best first. A top-N of 0 or less: no limit."""
    num = len(base)
    _, _, height, width = scores.shape
    im_h, im_w, im_scale = im_info[0]
    cands = []
    for y in range(height):
        for x in range(width):
            for a in range(num):
                anchor = base[a] + [x * stride, y * stride, x * stride, y * stride]
                box = _decoded(anchor, deltas[0, 4 * a:4 * a + 4, y, x])
                box = [min(max(box[0], 0), im_w - 1), min(max(box[1], 0), im_h - 1),
                       min(max(box[2], 0), im_w - 1), min(max(box[3], 0), im_h - 1)]
                if box[2] - box[0] + 1 >= min_size * im_scale and \
                        box[3] - box[1] + 1 >= min_size * im_scale:
                    cands.append((-float(scores[0, num + a, y, x]), len(cands), box))
    cands.sort(key=lambda c: (c[0], c[1]))
    if pre_n > 0:
        cands = cands[:pre_n]
    kept = []
    for c in cands:
        if not use_nms or all(iou(c[2], k[2]) <= thresh for k in kept):
            kept.append(c)
    if post_n > 0:
        kept = kept[:post_n]
    return (np.array([k[2] for k in kept], dtype=np.float32).reshape(-1, 4),
            np.array([-k[0] for k in kept], dtype=np.float32))


def _decoded(anchor, d):
    """A box from an anchor and its deltas: core.boxes.bbox_transform_inv, which
    tests/core/test_bbox_transform.py checks against the paper's Eq. 2 on its own."""
    from core.boxes import bbox_transform_inv
    return bbox_transform_inv(np.asarray(anchor)[None], np.asarray(d)[None])[0]
