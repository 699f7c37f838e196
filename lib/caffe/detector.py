"""caffe.Detector (pycaffe's): a TEST-phase Net that classifies windows of images (R-CNN style
window detection), each window warped to the net's input, optionally with surrounding context
(context_pad) filled out with the mean where the context leaves the image."""
import numpy as np

from .classifier import configure_transformer
from .layer import TEST
from .net import Net
from .preprocessing import load_image, resize_image


class Detector(Net):
    """Detector(model_file, pretrained_file, mean=None, input_scale=None, raw_scale=None,
    channel_swap=None, context_pad=None). Windows are (ymin, xmin, ymax, xmax) in pixels, the
    end excluded when cropping, as in pycaffe."""

    def __init__(self, model_file, pretrained_file, mean=None, input_scale=None,
                 raw_scale=None, channel_swap=None, context_pad=None):
        super().__init__(model_file, pretrained_file, TEST)
        self.transformer = configure_transformer(self, mean, input_scale, raw_scale,
                                                 channel_swap)
        self.configure_crop(context_pad)

    def detect_windows(self, images_windows):
        """images_windows: (image file name, windows) pairs. Returns one dict per window:
        {'window', 'prediction' (the net's first output), 'filename'}."""
        images_windows = [(name, list(windows)) for name, windows in images_windows]
        crops = []
        for filename, windows in images_windows:
            image = load_image(filename)
            crops.extend(self.crop(image, window) for window in windows)
        if not crops:
            return []
        in_ = self.inputs[0]
        net_in = np.stack([self.transformer.preprocess(in_, crop) for crop in crops])
        predictions = self.forward_all(**{in_: net_in})[self.outputs[0]]
        detections, k = [], 0
        for filename, windows in images_windows:
            for window in windows:
                detections.append({'window': window, 'prediction': predictions[k],
                                   'filename': filename})
                k += 1
        return detections

    def crop(self, im, window):
        """The (H, W, K) crop of `window`; with context_pad, the window grown so that after
        warping to the input size it keeps context_pad pixels of context on each side, the part
        outside the image filled with the mean (in image space)."""
        y1, x1, y2, x2 = (int(v) for v in window)
        if not self.context_pad:
            return im[y1:y2, x1:x2]
        crop_size = self.blobs[self.inputs[0]].width        # square inputs, as in pycaffe
        scale = crop_size / (1.0 * crop_size - self.context_pad * 2)
        half_h, half_w = (y2 - y1 + 1) / 2.0, (x2 - x1 + 1) / 2.0
        center = np.array([y1 + half_h, x1 + half_w] * 2)
        box = np.round(center + scale * np.array([-half_h, -half_w, half_h, half_w]))
        scale_h = crop_size / (box[2] - box[0] + 1)
        scale_w = crop_size / (box[3] - box[1] + 1)
        # How far the grown box leaves the image at the top and left, in input pixels.
        pad_y = int(round(max(0.0, -box[0]) * scale_h))
        pad_x = int(round(max(0.0, -box[1]) * scale_w))
        im_h, im_w = im.shape[:2]
        box = np.clip(box, 0.0, [im_h, im_w, im_h, im_w]).astype(int)
        crop_h = min(int(round((box[2] - box[0] + 1) * scale_h)), crop_size - pad_y)
        crop_w = min(int(round((box[3] - box[1] + 1) * scale_w)), crop_size - pad_x)
        if crop_h <= 0 or crop_w <= 0 or box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError('window %s lies outside the %dx%d image' % (tuple(window), im_h,
                                                                          im_w))
        context = resize_image(im[box[0]:box[2], box[1]:box[3]], (crop_h, crop_w))
        crop = np.ones(self.crop_dims, dtype=np.float32) * self.crop_mean
        crop[pad_y:pad_y + crop_h, pad_x:pad_x + crop_w] = context
        return crop

    def configure_crop(self, context_pad):
        """Sets crop_dims (the input's size in image layout) and, with context_pad, the mean
        in image space (before channel swap and raw_scale) that fills context outside images."""
        in_ = self.inputs[0]
        to_image = np.argsort(self.transformer.transpose[in_])
        self.crop_dims = np.array(self.blobs[in_].data.shape[1:])[to_image]
        self.context_pad = context_pad
        if not context_pad:
            return
        mean = self.transformer.mean.get(in_)
        if mean is None:
            self.crop_mean = np.zeros(self.crop_dims, dtype=np.float32)
            return
        crop_mean = np.array(mean, dtype=np.float32).transpose(to_image)
        channel_swap = self.transformer.channel_swap.get(in_)
        if channel_swap is not None:
            crop_mean = crop_mean[:, :, np.argsort(channel_swap)]
        raw_scale = self.transformer.raw_scale.get(in_)
        if raw_scale is not None:
            crop_mean /= raw_scale
        self.crop_mean = crop_mean
