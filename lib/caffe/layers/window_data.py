"""WindowData: R-CNN's training input: windows (boxes) cut from images listed in a window file,
warped to crop_size x crop_size; top 0 the windows (batch_size, 3, crop_size, crop_size), top 1
their labels (batch_size,).

The window file (window_data_param.source), white-space separated, per image:
    # <image index>            (0, 1, 2, ... in order)
    <image path>               (root_folder is put before it as a string)
    <channels> <height> <width>
    <number of windows>
    <label> <overlap> <x1> <y1> <x2> <y2>      (one line per window; integer pixel corners)
A window with overlap >= fg_threshold is foreground (its label must be positive); one with
overlap < bg_threshold is background (label and overlap set to 0); others are not used.

Each batch, as Caffe's WindowDataLayer::load_batch: batch_size - int(batch_size * fg_fraction)
background windows, then the foreground ones, each drawn uniformly (with replacement) from its
set, flipped left-right with probability 1/2 when transform_param.mirror. A window is cut from
the image decoded in colour (cached as file bytes with cache_images) and warped bilinearly to
crop_size x crop_size (crop_mode "warp"), or, with context_pad p or crop_mode "square" (the
window made square about its centre), first grown about its centre by crop_size / (crop_size -
2p) so that p pixels of context surround it after warping, clipped to the image, and placed
where the unclipped window would have been (the rest stays 0). The arithmetic is Caffe's, in
float32 with C's round(). Values are (pixel - mean) * window_data_param.scale, the mean from
transform_param's mean_file (its centre crop_size square, offset with the window) or
mean_value. crop_size, mirror and the mean are transform_param's; the scale is
window_data_param's (Caffe reads it there: a V1 file's scale, which the upgrade moves into
transform_param, is not applied, in Caffe as here).
"""
import math

import cv2
import numpy as np

from ..common import CaffeError
from ..io import image_to_chw, not_found, read_image, read_text_lines
from ..layer import register
from ..rng import CaffeRNG, caffe_rng_rand
from .base_data_layer import BasePrefetchingDataLayer, reuse

# A window's fields (Caffe's WindowDataLayer enum).
IMAGE_INDEX, LABEL, OVERLAP, X1, Y1, X2, Y2 = range(7)


def c_round(value):
    """C's round(): halves away from zero."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


class _Tokens:
    """The window file's white-space separated words, with their line numbers."""

    def __init__(self, path):
        self.path = path
        self.words = [(word, number) for number, line in read_text_lines(path, 'window file')
                      for word in line.split()]
        self.pos = 0

    def more(self):
        return self.pos < len(self.words)

    def take(self, what, convert=str):
        if self.pos >= len(self.words):
            line = self.words[-1][1] if self.words else 1
            raise CaffeError('%s:%d: the file ends where %s should be' % (self.path, line, what))
        word, number = self.words[self.pos]
        self.pos += 1
        try:
            return convert(word)
        except ValueError:
            raise CaffeError('%s:%d: expected %s, got %r' % (self.path, number, what, word[:100])) \
                from None

    def line(self):
        return self.words[self.pos - 1][1]


def _integer(word):
    if not word.lstrip('+-').isdigit() or not word.isascii():
        raise ValueError(word)
    value = int(word)
    if not -2 ** 31 <= value < 2 ** 31:
        raise ValueError(word)
    return value


def _number(word):
    # Caffe reads the overlap into a float and compares it with float thresholds.
    with np.errstate(over='ignore'):
        value = float(np.float32(float(word)))
    if not math.isfinite(value):
        raise ValueError(word)
    return value


def read_window_file(path, root_folder, fg_threshold, bg_threshold):
    """(images [(path, line)], foreground windows, background windows), each window an array
    of the 7 fields, with its line number in a parallel list, as Caffe's DataLayerSetUp reads the
    file."""
    tokens = _Tokens(path)
    if not tokens.more():
        raise CaffeError('window file %s is empty' % path)
    images, fg, bg, fg_lines, bg_lines = [], [], [], [], []
    while tokens.more():
        if tokens.take('"#"') != '#':
            raise CaffeError('%s:%d: expected "#" starting image %d'
                             % (path, tokens.line(), len(images)))
        index = tokens.take('an image index', _integer)
        if index != len(images):
            raise CaffeError('%s:%d: image index %d where %d comes next (Caffe finds a window\'s '
                             'image by this index, so images must be numbered 0, 1, 2, ... in '
                             'order)' % (path, tokens.line(), index, len(images)))
        image_path = root_folder + tokens.take('an image path')
        line = tokens.line()
        channels = tokens.take('the image\'s channels', _integer)
        for what in ('height', 'width'):
            tokens.take('the image\'s %s' % what, _integer)
        if channels != 3:
            raise CaffeError('%s:%d: image %d has %d channels; WindowData decodes every image in '
                             'colour (3 channels), as Caffe does' % (path, line, index, channels))
        images.append((image_path, line))
        count = tokens.take('the number of windows', _integer)
        if count < 0:
            raise CaffeError('%s:%d: a negative number of windows (%d)'
                             % (path, tokens.line(), count))
        for _ in range(count):
            label = tokens.take('a window label', _integer)
            overlap = tokens.take('a window overlap', _number)
            corners = [tokens.take('a window corner', _integer) for _ in range(4)]
            window = [index, label, overlap] + corners
            used = overlap >= fg_threshold or overlap < bg_threshold
            if used and (corners[2] < corners[0] or corners[3] < corners[1]):
                # Caffe would warp it to a region of no or negative size, and fail there.
                raise CaffeError('%s:%d: window (%d, %d, %d, %d) is empty: x2 < x1 or y2 < y1'
                                 % ((path, tokens.line()) + tuple(corners)))
            if overlap >= fg_threshold:
                if label <= 0:
                    raise CaffeError('%s:%d: a foreground window (overlap %g >= fg_threshold '
                                     '%g) with label %d; foreground labels must be positive'
                                     % (path, tokens.line(), overlap, fg_threshold, label))
                fg.append(window)
                fg_lines.append(tokens.line())
            elif overlap < bg_threshold:
                window[LABEL] = window[OVERLAP] = 0
                bg.append(window)
                bg_lines.append(tokens.line())
    return images, (fg, fg_lines), (bg, bg_lines)


class WindowReader:
    def __init__(self, source, images, fg, bg, param, transformer, rng, cache, owner):
        self.source, self.images, self.owner = source, images, owner
        self.fg, self.bg = fg, bg
        self.rng, self.cache = rng, cache
        self.batch_size = int(param.batch_size)
        self.context_pad = int(param.context_pad)
        self.square = param.crop_mode == 'square'
        self.scale = np.float32(param.scale)
        self.crop = transformer.crop_size
        self.mirror = transformer.do_mirror
        self.mean, self.mean_values = transformer.mean, transformer.mean_values
        num_fg = int(np.float32(self.batch_size) * np.float32(param.fg_fraction))
        self.num_samples = (self.batch_size - num_fg, num_fg)
        self.num_tops = 2

    def image(self, index):
        path, line = self.images[index]
        if self.cache is None:
            try:
                return read_image(path)
            except CaffeError as e:
                raise CaffeError('%s: %s (line %d of %s)' % (self.owner, e, line, self.source)) \
                    from None
        data = np.frombuffer(self.cache[index], dtype=np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if image is None:
            raise CaffeError('%s: could not decode image %s (line %d of %s; cached at setup)'
                             % (self.owner, path, line, self.source))
        return image

    def load_batch(self, batch):
        crop = self.crop
        batch[0] = reuse(batch[0], (self.batch_size, 3, crop, crop))
        batch[1] = reuse(batch[1], (self.batch_size,))
        batch[0][...] = 0
        item = 0
        for is_fg, (windows, lines) in enumerate((self.bg, self.fg)):
            for _ in range(self.num_samples[is_fg]):
                pick = self.rng.raw() % len(windows)
                do_mirror = self.mirror and self.rng.raw() % 2 == 1
                window = windows[pick]
                try:
                    self.warp(window, do_mirror, batch[0][item])
                except CaffeError as e:
                    raise CaffeError('%s (the window on line %d of %s)'
                                     % (e, lines[pick], self.source)) from None
                batch[1][item] = window[LABEL]
                item += 1

    def warp(self, window, do_mirror, out):
        """Cuts the window out of its image, warps it and writes it into out (3, crop, crop)."""
        image = self.image(window[IMAGE_INDEX])
        rows, cols = image.shape[:2]
        crop = self.crop
        x1, y1, x2, y2 = window[X1], window[Y1], window[X2], window[Y2]
        size = (crop, crop)     # (width, height) to warp the cut region to
        pad_w = pad_h = 0
        if self.context_pad > 0 or self.square:
            f32 = np.float32
            context_scale = f32(crop) / f32(crop - 2 * self.context_pad)
            half_height = f32((y2 - y1 + 1) / 2.0)
            half_width = f32((x2 - x1 + 1) / 2.0)
            center_x = f32(x1) + half_width
            center_y = f32(y1) + half_height
            if self.square:
                half_width = half_height = max(half_width, half_height)
            x1 = c_round(center_x - half_width * context_scale)
            x2 = c_round(center_x + half_width * context_scale)
            y1 = c_round(center_y - half_height * context_scale)
            y2 = c_round(center_y + half_height * context_scale)
            # The grown window may leave the image: clip it, and remember how far it went out.
            unclipped_height, unclipped_width = y2 - y1 + 1, x2 - x1 + 1
            pad_x1, pad_y1 = max(0, -x1), max(0, -y1)
            pad_x2, pad_y2 = max(0, x2 - cols + 1), max(0, y2 - rows + 1)
            x1, x2, y1, y2 = x1 + pad_x1, x2 - pad_x2, y1 + pad_y1, y2 - pad_y2
            scale_x = f32(crop) / f32(unclipped_width)
            scale_y = f32(crop) / f32(unclipped_height)
            width = c_round(f32(x2 - x1 + 1) * scale_x)
            height = c_round(f32(y2 - y1 + 1) * scale_y)
            pad_x1, pad_x2 = c_round(f32(pad_x1) * scale_x), c_round(f32(pad_x2) * scale_x)
            pad_y1 = c_round(f32(pad_y1) * scale_y)
            pad_h = pad_y1
            # A flipped window's padding flips with it.
            pad_w = pad_x2 if do_mirror else pad_x1
            # Rounding may push the warped region past the crop; it is cut back to fit.
            height = min(height, crop - pad_h)
            width = min(width, crop - pad_w)
            size = (width, height)
        if not (0 <= x1 <= x2 < cols and 0 <= y1 <= y2 < rows):
            raise CaffeError('%s: window (%d, %d, %d, %d) is not inside its %d x %d image %s'
                             % (self.owner, window[X1], window[Y1], window[X2], window[Y2],
                                cols, rows, self.images[window[IMAGE_INDEX]][0]))
        if size[0] <= 0 or size[1] <= 0:
            raise CaffeError('%s: window (%d, %d, %d, %d) of image %s warps to an empty region'
                             % (self.owner, window[X1], window[Y1], window[X2], window[Y2],
                                self.images[window[IMAGE_INDEX]][0]))
        cut = cv2.resize(image[y1:y2 + 1, x1:x2 + 1], size, interpolation=cv2.INTER_LINEAR)
        if do_mirror:
            cut = cut[:, ::-1]
        pixels = image_to_chw(cut)
        height, width = pixels.shape[1:]
        target = out[:, pad_h:pad_h + height, pad_w:pad_w + width]
        if self.mean is not None:
            off = (self.mean.shape[2] - crop) // 2
            mean = self.mean[:, off + pad_h:off + pad_h + height, off + pad_w:off + pad_w + width]
            np.subtract(pixels, mean, out=target, dtype=np.float32)
        elif len(self.mean_values):
            np.subtract(pixels, self.mean_values.reshape(-1, 1, 1), out=target, dtype=np.float32)
        else:
            np.multiply(pixels, self.scale, out=target, dtype=np.float32)
            return
        if self.scale != 1:
            np.multiply(target, self.scale, out=target)

    def close(self):
        pass


@register('WindowData')
class WindowDataLayer(BasePrefetchingDataLayer):
    exact_num_top_blobs = 2

    def data_layer_setup(self, top):
        p = self.layer_param.window_data_param
        t = self.transformer
        # Caffe seeds this generator when mirror or crop_size is set; crop_size must be.
        rng = CaffeRNG(caffe_rng_rand()) if (t.do_mirror or t.crop_size) else None
        if p.batch_size <= 0:
            raise self.error('window_data_param.batch_size must be positive')
        if t.crop_size <= 0:
            raise self.error('transform_param.crop_size must be positive (WindowData reads '
                             'crop_size from transform_param, as Caffe does)')
        if not 0 <= p.fg_fraction <= 1:
            raise self.error('fg_fraction must be in [0, 1], got %g' % p.fg_fraction)
        if p.crop_mode not in ('warp', 'square'):
            raise self.error('crop_mode must be "warp" or "square", got %r' % p.crop_mode)
        if 2 * p.context_pad >= t.crop_size:
            raise self.error('context_pad %d leaves nothing of a %d-pixel crop'
                             % (p.context_pad, t.crop_size))
        try:
            images, fg, bg = read_window_file(p.source, p.root_folder, p.fg_threshold,
                                              p.bg_threshold)
        except CaffeError as e:
            raise self.error(str(e)) from None
        self._check_mean(t)
        reader = WindowReader(p.source, images, fg, bg, p, t, rng, self._cache(p, images),
                              '%s layer %r' % (self.type, self.name))
        for kind, windows, count in (('foreground', fg[0], reader.num_samples[1]),
                                     ('background', bg[0], reader.num_samples[0])):
            if count and not windows:
                raise self.error('%s lists no %s windows, and each batch takes %d'
                                 % (p.source, kind, count))
        top[0].reshape((p.batch_size, 3, t.crop_size, t.crop_size))
        top[1].reshape((p.batch_size,))
        return reader

    def _check_mean(self, t):
        if t.mean is not None:
            channels, height, width = t.mean.shape
            off = (width - t.crop_size) // 2
            if channels != 3 or off < 0 or off + t.crop_size > height:
                raise self.error('mean_file %s holds a %d x %d x %d mean; WindowData needs 3 '
                                 'channels and its centre %d x %d square'
                                 % (t.mean_file, channels, height, width, t.crop_size,
                                    t.crop_size))
        if len(t.mean_values) not in (0, 1, 3):
            raise self.error('specify either 1 mean_value or as many as channels: 3 (got %d)'
                             % len(t.mean_values))

    def _cache(self, p, images):
        """The image files' bytes, read once at setup (cache_images), else None."""
        if not p.cache_images:
            return None
        cache = []
        for path, line in images:
            try:
                with open(path, 'rb') as f:
                    cache.append(f.read())
            except FileNotFoundError:
                raise self.error('%s (line %d of %s)' % (not_found(path, 'image'), line,
                                                         p.source)) from None
            except OSError as e:
                raise self.error('could not read image %s (line %d of %s): %s'
                                 % (path, line, p.source, e.strerror or e)) from None
        return cache
