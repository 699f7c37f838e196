"""Pictures of results: detections drawn on images, and precision/recall curves.

Drawing never changes results; every PNG is written atomically. A very large image is drawn
from a downscaled copy, so a picture costs memory in proportion to the figure, not the photo.
"""
import io
import os

import numpy as np

from caffe.io import atomic_write

# Longest side, in pixels, of the image drawn under the detections: the PNG is 800 pixels wide
# (8 inches at 100 dpi), so twice that is already more than it can show.
MAX_DRAWN_SIDE = 1600


def _pyplot():
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path):
    """Writes a matplotlib figure as a PNG, atomically, and closes it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png')
    _pyplot().close(fig)
    atomic_write(path, buffer.getvalue())
    return path


def vis_detections(im, class_name, dets, thresh=0.3, ax=None, scale=1.0):
    """Draws the detections of one class scoring >= thresh on a matplotlib axis (a new figure's
    when ax is None) and returns the axis. im is BGR; scale maps detection coordinates onto the
    drawn image (for a downscaled copy)."""
    import matplotlib.patches
    if ax is None:
        _, ax = _pyplot().subplots(figsize=_figure_size(*im.shape[:2]))
        ax.imshow(im[:, :, ::-1])
        ax.axis('off')
    for det in dets:
        if det[-1] < thresh:
            continue
        x1, y1, x2, y2 = (float(v) * scale for v in det[:4])
        ax.add_patch(matplotlib.patches.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False,
                                                  edgecolor='red', linewidth=2))
        ax.text(x1, y1 - 2, '%s %.3f' % (class_name, det[-1]), fontsize=10, color='white',
                bbox=dict(facecolor='blue', alpha=0.5, pad=1))
    return ax


def _drawable(im):
    """(image to draw, scale from image to drawn coordinates): a copy downscaled to
    MAX_DRAWN_SIDE when the image is larger."""
    height, width = im.shape[:2]
    longest = max(height, width)
    if longest <= MAX_DRAWN_SIDE:
        return im, 1.0
    import cv2
    scale = MAX_DRAWN_SIDE / float(longest)
    # A side never rounds to nothing: a 1-pixel-high strip stays one pixel high.
    size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
    return cv2.resize(im, size, interpolation=cv2.INTER_AREA), scale


def _figure_size(height, width):
    """8 inches wide, as tall as the image's aspect asks, but at least an inch: a figure of a
    1-pixel-high image would have no room to draw in."""
    return 8, max(1.0, 8 * height / max(width, 1))


def save_detections_image(im, class_names, dets_per_class, path, thresh=0.3, title=None):
    """Writes a PNG of the BGR image with every class's detections >= thresh drawn on it.
    class_names and dets_per_class are parallel lists."""
    plt = _pyplot()
    drawn, scale = _drawable(im)
    height, width = drawn.shape[:2]
    fig, ax = plt.subplots(figsize=_figure_size(height, width))
    ax.imshow(drawn[:, :, ::-1])
    ax.axis('off')
    for name, dets in zip(class_names, dets_per_class):
        vis_detections(drawn, name, dets, thresh=thresh, ax=ax, scale=scale)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)


def save_pr_curves(curves, path, title=None):
    """Writes one precision/recall curve per class to a PNG. curves maps a class name to
    (recall, precision, ap) arrays as voc_eval returns them (ap may be NaN for a class without
    ground truth, which is then left out)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    for name, (recall, precision, ap) in curves.items():
        if ap is None or np.isnan(ap) or len(recall) == 0:
            continue
        ax.plot(recall, precision, label='%s (AP %.3f)' % (name, ap))
    ax.set_xlabel('recall')
    ax.set_ylabel('precision')
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title)
    if ax.lines:
        ax.legend(loc='lower left', fontsize=8, ncol=1 + len(ax.lines) // 12)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return save_figure(fig, path)
