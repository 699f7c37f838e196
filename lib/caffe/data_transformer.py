"""DataTransformer: what a data layer's transform_param does to each image, as Caffe's
DataTransformer does it.

For an image of C x H x W values (a Datum's pixels or floats, or a decoded image):
- crop_size s: an s x s window, at a random offset in TRAIN (rows first, then columns, each
  uniform over the H - s + 1 and W - s + 1 places), centred in TEST ((H - s) / 2 rounded down);
- mirror: in TRAIN and TEST alike, the window is flipped left-right with probability 1/2 (Caffe
  draws the flip whenever mirror is set, whatever the phase, and before the crop offsets);
- mean: mean_file (a C x H x W BlobProto of the whole image, cropped and flipped with it) or
  mean_value (one per channel, or one for all), never both;
- then scale: out = (value - mean) * scale, in float32.
force_color / force_gray choose how an encoded Datum is decoded; they do nothing to raw pixels.

Random draws come from a generator of the transformer's own (Caffe's rng_), seeded by init_rand
from the runtime's stream: a data layer's prefetch thread draws from it alone, in its batches'
order, so a seeded run gives the same crops and flips whatever the thread's timing.
"""
import warnings

import numpy as np

from .common import CaffeError
from .io import read_mean_file
from .layer import TRAIN
from .rng import CaffeRNG, caffe_rng_rand


class DataTransformer:
    """param: a TransformationParameter; phase: caffe.TRAIN or caffe.TEST; owner: how errors
    name the layer ('Data layer "data"')."""

    def __init__(self, param, phase, owner):
        self.owner = owner
        self.phase = phase
        self.crop_size = int(param.crop_size)
        self.scale = np.float32(param.scale)
        self.do_mirror = bool(param.mirror)
        self.force_color, self.force_gray = bool(param.force_color), bool(param.force_gray)
        if self.force_color and self.force_gray:
            raise self.error('cannot set both force_color and force_gray')
        if param.HasField('mean_file') and len(param.mean_value):
            raise self.error('cannot specify mean_file and mean_value at the same time')
        self.mean_file = param.mean_file
        self.mean = read_mean_file(param.mean_file) if param.HasField('mean_file') else None
        self.mean_values = np.array(param.mean_value, dtype=np.float32)
        self.rng = None
        self._warned_force = False

    def error(self, message):
        return CaffeError('%s: %s' % (self.owner, message))

    def init_rand(self):
        """Seeds the transformer's generator with a draw from the runtime's stream when it will
        draw (mirror, or cropping in TRAIN), as Caffe's InitRand."""
        if self.do_mirror or (self.phase == TRAIN and self.crop_size):
            self.rng = CaffeRNG(caffe_rng_rand())
        else:
            self.rng = None

    def decode_flags(self, encoded):
        """(force_color, force_gray) for decoding a Datum; Caffe ignores them for raw pixels
        and says so (once here)."""
        if not encoded and (self.force_color or self.force_gray) and not self._warned_force:
            self._warned_force = True
            warnings.warn('%s: force_color and force_gray only apply to encoded Datums'
                          % self.owner, RuntimeWarning, stacklevel=3)
        return self.force_color, self.force_gray

    def infer_shape(self, image):
        """The (channels, height, width) an image (C x H x W) gives: cropped when crop_size."""
        channels, height, width = image.shape
        if channels <= 0:
            raise self.error('an image with no channels')
        crop = self.crop_size
        if crop and (height < crop or width < crop):
            raise self.error('crop_size %d is larger than an image of %d x %d (height x width)'
                             % (crop, height, width))
        return (channels, crop or height, crop or width)

    def transform(self, image, out):
        """Writes the transformed image (C x H x W, uint8 or float32) into out, a float32
        (C, h, w) array whose shape infer_shape gave for an image of this size."""
        shape = self.infer_shape(image)
        if shape != out.shape:
            raise self.error('an image of %d x %d x %d (channels x height x width) in a batch of '
                             '%d x %d x %d images: a batch takes images of one size (resize them, '
                             'or crop with crop_size)' % (image.shape + out.shape))
        channels, height, width = image.shape
        crop = self.crop_size
        # Caffe draws the flip first, then the crop's row and column offsets.
        mirror = self.do_mirror and self.rng.rand(2) == 1
        h_off = w_off = 0
        if crop:
            if self.phase == TRAIN:
                h_off = self.rng.rand(height - crop + 1)
                w_off = self.rng.rand(width - crop + 1)
            else:
                h_off, w_off = (height - crop) // 2, (width - crop) // 2
        rows, cols = slice(h_off, h_off + out.shape[1]), slice(w_off, w_off + out.shape[2])
        if mirror:
            cols = slice(cols.stop - 1, cols.start - 1 if cols.start else None, -1)
        source = image[:, rows, cols]
        if self.mean is not None:
            if self.mean.shape != image.shape:
                raise self.error('mean_file %s holds a %d x %d x %d mean; the images are %d x %d '
                                 'x %d (channels x height x width)'
                                 % ((self.mean_file,) + self.mean.shape + image.shape))
            np.subtract(source, self.mean[:, rows, cols], out=out, dtype=np.float32)
        elif len(self.mean_values):
            if len(self.mean_values) not in (1, channels):
                raise self.error('specify either 1 mean_value or as many as channels: %d '
                                 '(got %d)' % (channels, len(self.mean_values)))
            means = self.mean_values.reshape(-1, 1, 1)
            np.subtract(source, means, out=out, dtype=np.float32)
        else:
            np.multiply(source, self.scale, out=out, dtype=np.float32)
            return
        # (x - mean) * 1 is x - mean exactly: a scale of 1 needs no second pass.
        if self.scale != 1:
            np.multiply(out, self.scale, out=out)
