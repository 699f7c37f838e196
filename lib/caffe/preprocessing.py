"""pycaffe's image helpers (exported as caffe.io.*): load_image, resize_image, oversample and the
Transformer that turns H x W x K images into a net's K x H x W input and back.

Images are float arrays of shape (height, width, channels), RGB, values in [0, 1] as load_image
gives them; a net input is (channels, height, width) after Transformer.preprocess.
"""
import os

import numpy as np

from .common import CaffeError

# skimage's rgb2gray weights (ITU-R BT.709 luma), which pycaffe's load_image(color=False) uses.
_GRAY_WEIGHTS = np.array([0.2125, 0.7154, 0.0721])


def load_image(filename, color=True):
    """An image file as float32 in [0, 1]: (H, W, 3) RGB with color, else (H, W, 1) gray.

    As pycaffe: a gray file read with color is repeated into 3 channels; with color an alpha
    channel is dropped (not composited); without color the gray value is skimage's rgb2gray of
    the image composited on white."""
    import cv2
    img = cv2.imread(str(filename), cv2.IMREAD_UNCHANGED)
    if img is None:
        if not os.path.isfile(str(filename)):
            raise CaffeError('Could not open file %s (image not found)' % filename)
        raise CaffeError('cannot read image %s (unreadable or not an image)' % filename)
    img = _to_unit_float(img)
    if img.ndim == 3 and img.shape[2] in (3, 4):
        # OpenCV reads BGR(A); pycaffe's images are RGB(A).
        img = img[:, :, [2, 1, 0] + ([3] if img.shape[2] == 4 else [])]
    if not color:
        if img.ndim == 3:
            if img.shape[2] == 4:
                alpha = img[:, :, 3:]
                img = img[:, :, :3] * alpha + (1.0 - alpha)
            img = img[:, :, :3] @ _GRAY_WEIGHTS
        return img.astype(np.float32)[:, :, np.newaxis]
    if img.ndim == 2:
        return np.repeat(img.astype(np.float32)[:, :, np.newaxis], 3, axis=2)
    return img[:, :, :3].astype(np.float32)


def _to_unit_float(img):
    """skimage's img_as_float: unsigned integers scaled by their type's maximum to [0, 1]."""
    if np.issubdtype(img.dtype, np.unsignedinteger):
        return img.astype(np.float64) / np.iinfo(img.dtype).max
    return img.astype(np.float64)


def resize_image(im, new_dims, interp_order=1):
    """im (H, W, K) resized to (new_dims[0], new_dims[1], K), float32, by spline interpolation
    of order interp_order (1: bilinear) with scipy.ndimage.zoom, the corner pixels mapping onto
    the corner pixels (pycaffe's own path for images of other than 1 or 3 channels; pycaffe sends
    1- and 3-channel images through skimage instead, see docs/pycaffe.md). A constant image
    stays exactly constant."""
    im = np.asarray(im)
    if im.ndim != 3:
        raise ValueError('resize_image: expected an (H, W, K) image, got shape %s' % (im.shape,))
    new_dims = tuple(int(d) for d in new_dims)
    if len(new_dims) != 2 or min(new_dims) < 1:
        raise ValueError('resize_image: new_dims must be (height, width) >= 1, got %s'
                         % (new_dims,))
    if im.size and im.min() == im.max():
        return np.full(new_dims + (im.shape[2],), im.flat[0], dtype=np.float32)
    from scipy import ndimage  # imported here: `import caffe` stays light
    factors = (new_dims[0] / im.shape[0], new_dims[1] / im.shape[1], 1.0)
    resized = ndimage.zoom(im, factors, order=interp_order)
    return resized.astype(np.float32)


def oversample(images, crop_dims):
    """The ten crops of each (H, W, K) image, as pycaffe's oversample orders them: the four
    corners (top-left, top-right, bottom-left, bottom-right), the center, then those five
    mirrored left-right. Returns (10 * N, crop_h, crop_w, K) float32."""
    images = list(images)
    height, width, channels = np.asarray(images[0]).shape
    crop_h, crop_w = (int(d) for d in crop_dims)
    if crop_h > height or crop_w > width:
        raise ValueError('oversample: crop %dx%d is larger than the images (%dx%d)'
                         % (crop_h, crop_w, height, width))
    # The center crop starts at floor(center - crop / 2) (pycaffe truncates to int).
    starts = [(0, 0), (0, width - crop_w), (height - crop_h, 0),
              (height - crop_h, width - crop_w),
              (int(height / 2.0 - crop_h / 2.0), int(width / 2.0 - crop_w / 2.0))]
    crops = np.empty((10 * len(images), crop_h, crop_w, channels), dtype=np.float32)
    for i, im in enumerate(images):
        im = np.asarray(im)
        if im.shape != (height, width, channels):
            raise ValueError('oversample: image %d has shape %s, the first %s'
                             % (i, im.shape, (height, width, channels)))
        for k, (y, x) in enumerate(starts):
            crop = im[y:y + crop_h, x:x + crop_w, :]
            crops[10 * i + k] = crop
            crops[10 * i + 5 + k] = crop[:, ::-1, :]
    return crops


class Transformer:
    """pycaffe's caffe.io.Transformer: per net input, the steps that turn an (H, W, K) image
    into the input blob's (K, H, W) layout.

    preprocess, in this order: convert to float32; resize to the input's height and width;
    transpose (e.g. (2, 0, 1)); reorder channels (channel_swap, e.g. RGB -> BGR); multiply by
    raw_scale (e.g. 255 for [0, 1] images and a [0, 255] model); subtract mean; multiply by
    input_scale. deprocess undoes them in reverse (except the resize).

    inputs: {input name: input blob shape (N, K, H, W)}."""

    def __init__(self, inputs):
        self.inputs = {name: tuple(int(d) for d in shape) for name, shape in inputs.items()}
        self.transpose = {}
        self.channel_swap = {}
        self.raw_scale = {}
        self.mean = {}
        self.input_scale = {}

    def _check_input(self, name):
        if name not in self.inputs:
            raise ValueError('%s is not one of the net inputs: %s' % (name, sorted(self.inputs)))

    def preprocess(self, in_, data):
        """The net input for one (H, W, K) image (the caller's array is not modified)."""
        self._check_input(in_)
        out = np.array(data, dtype=np.float32)
        in_dims = self.inputs[in_][2:]
        if out.shape[:2] != in_dims:
            out = resize_image(out, in_dims)
        if in_ in self.transpose:
            out = out.transpose(self.transpose[in_])
        if in_ in self.channel_swap:
            out = out[list(self.channel_swap[in_]), :, :]
        if in_ in self.raw_scale:
            out *= self.raw_scale[in_]
        if in_ in self.mean:
            out -= self.mean[in_]
        if in_ in self.input_scale:
            out *= self.input_scale[in_]
        return out

    def deprocess(self, in_, data):
        """The image for one net input: preprocess undone (without the resize); squeezed."""
        self._check_input(in_)
        out = np.array(data, dtype=np.float32).squeeze()
        if in_ in self.input_scale:
            out /= self.input_scale[in_]
        if in_ in self.mean:
            out += self.mean[in_]
        if in_ in self.raw_scale:
            out /= self.raw_scale[in_]
        if in_ in self.channel_swap:
            out = out[np.argsort(self.channel_swap[in_]), :, :]
        if in_ in self.transpose:
            out = out.transpose(np.argsort(self.transpose[in_]))
        return out

    def set_transpose(self, in_, order):
        """The axis order taking the image (H, W, K) to the input's (K, H, W): (2, 0, 1)."""
        self._check_input(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise ValueError('transpose order %s needs %d axes, as the input %s has besides '
                             'the batch' % (tuple(order), len(self.inputs[in_]) - 1, in_))
        self.transpose[in_] = tuple(order)

    def set_channel_swap(self, in_, order):
        """The channel order of the input in terms of the image's: (2, 1, 0) for RGB -> BGR.
        Applied after the transpose, to axis 0."""
        self._check_input(in_)
        if len(order) != self.inputs[in_][1]:
            raise ValueError('channel swap %s needs %d channels, as the input %s has'
                             % (tuple(order), self.inputs[in_][1], in_))
        self.channel_swap[in_] = tuple(order)

    def set_raw_scale(self, in_, scale):
        """The factor taking the image's range to the model's (255 for [0, 1] -> [0, 255])."""
        self._check_input(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_, mean):
        """The mean subtracted after raw_scale: per channel (K,), or per pixel (K, H, W) or
        (H, W) matching the input."""
        self._check_input(in_)
        mean = np.asarray(mean)
        shape = mean.shape
        if mean.ndim == 1:
            if shape[0] != self.inputs[in_][1]:
                raise ValueError('mean has %d channels, the input %s %d'
                                 % (shape[0], in_, self.inputs[in_][1]))
            mean = mean[:, np.newaxis, np.newaxis]
        else:
            if len(shape) == 2:
                shape = (1,) + shape
            if len(shape) != 3:
                raise ValueError('mean of shape %s: give (K,), (H, W) or (K, H, W)'
                                 % (mean.shape,))
            if shape != self.inputs[in_][1:]:
                raise ValueError('mean of shape %s does not match the input %s of shape %s'
                                 % (mean.shape, in_, self.inputs[in_][1:]))
        self.mean[in_] = mean

    def set_input_scale(self, in_, scale):
        """The factor applied last, after mean subtraction (e.g. 0.017 for a unit-variance
        model)."""
        self._check_input(in_)
        self.input_scale[in_] = scale
