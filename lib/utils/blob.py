"""Images to network input blobs: mean subtraction, rescaling, and zero-padded batching."""
import cv2
import numpy as np


def im_list_to_blob(ims):
    """Stacks H x W x C images into one (N, C, Hmax, Wmax) float32 blob, each image at the
    top-left and zero-padded on the right and bottom (the layout RoI coordinates assume)."""
    ims = list(ims)
    if not ims:
        raise ValueError('im_list_to_blob: no images')
    for i, im in enumerate(ims):
        if im.ndim != 3 or im.shape[2] != ims[0].shape[2]:
            raise ValueError('im_list_to_blob: image %d has shape %s; expected H x W x %d'
                             % (i, im.shape, ims[0].shape[2]))
    height = max(im.shape[0] for im in ims)
    width = max(im.shape[1] for im in ims)
    blob = np.zeros((len(ims), ims[0].shape[2], height, width), dtype=np.float32)
    for i, im in enumerate(ims):
        blob[i, :, :im.shape[0], :im.shape[1]] = im.transpose(2, 0, 1)
    return blob


def prep_im_for_blob(im, pixel_means, target_size, max_size):
    """Subtracts pixel_means from an H x W x 3 image and rescales it so its short side is
    target_size, unless that makes the long side exceed max_size (after rounding), in which case
    the long side is made max_size. Returns (float32 image, scale). The input is not modified."""
    im = _subtract_means(im, pixel_means)
    short_side = min(im.shape[0], im.shape[1])
    long_side = max(im.shape[0], im.shape[1])
    scale = float(target_size) / float(short_side)
    if np.round(scale * long_side) > max_size:
        scale = float(max_size) / float(long_side)
    return _resize(im, scale), scale


def _resize(im, scale):
    """cv2.resize by `scale` (cv2 rounds the sizes), with every side at least one pixel: a very
    thin image (a 1-pixel line of a long photo) would otherwise round to nothing. Only then are
    the sizes given instead of the scale, which changes cv2's interpolation coefficients."""
    height, width = im.shape[:2]
    if round(height * scale) >= 1 and round(width * scale) >= 1:
        return cv2.resize(im, None, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
    return cv2.resize(im, size, interpolation=cv2.INTER_LINEAR)


def pyramid_blob(im, pixel_means, target_sizes, max_size):
    """The image at every target size (see prep_im_for_blob) as one zero-padded
    (len(target_sizes), 3, H, W) float32 blob, and the scales (float64)."""
    ims, scales = [], []
    for target_size in target_sizes:
        scaled, scale = prep_im_for_blob(im, pixel_means, target_size, max_size)
        ims.append(scaled)
        scales.append(scale)
    return im_list_to_blob(ims), np.array(scales, dtype=np.float64)


# Values per chunk of the mean subtraction: bounds its temporaries to about 12 MB.
_CHUNK_VALUES = 1 << 20


def _subtract_means(im, pixel_means):
    """float32(im - pixel_means), computed in the means' precision and rounded once to float32
    as the release does. An 8-bit image with one mean per channel (the usual case) takes its
    values from a 256-entry table per channel, filled by that same computation; otherwise a band
    of rows at a time: a whole-image float64 temporary would be twice the float32 result
    (gigabytes for a very large photo)."""
    im = np.asarray(im)
    means = np.asarray(pixel_means)
    channels = im.shape[-1] if im.ndim == 3 else 0
    if (im.dtype == np.uint8 and 0 < channels <= 4 and means.ndim <= 3
            and means.size in (1, channels) and means.shape[-1:] == (means.size,)):
        levels = np.arange(256, dtype=np.uint8).astype(np.float32)[:, None]
        table = np.empty((256, 1, channels), np.float32)
        table[:, 0, :] = levels - means.reshape(-1)
        return cv2.LUT(im, table).reshape(im.shape)  # cv2 drops a single channel's axis
    out = np.empty(im.shape, dtype=np.float32)
    step = max(1, _CHUNK_VALUES // max(1, int(np.prod(im.shape[1:]))))
    for start in range(0, im.shape[0], step):
        rows = slice(start, start + step)
        out[rows] = im[rows].astype(np.float32) - means
    return out


def indexed_rows(n, boxes):
    """A rois blob's rows for image n of the batch: float32 [n, x1, y1, x2, y2] per box."""
    rows = np.zeros((len(boxes), 5), dtype=np.float32)
    rows[:, 0] = n
    rows[:, 1:] = boxes
    return rows
