"""Golden values for the detection tests, computed the slow, obvious way (independent of the
Cython and numpy code under test)."""


def iou(a, b):
    """IoU of two [x1, y1, x2, y2] boxes with the release's +1 pixel widths."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
                     - inter)
