"""caffe.Classifier (pycaffe's): a TEST-phase Net whose first input is fed images through a
Transformer, returning class probabilities, averaged over ten crops (corners, center and their
mirrors) or from the center crop alone."""
import numpy as np

from .layer import TEST
from .net import Net
from . import preprocessing
from .preprocessing import Transformer, resize_image


def configure_transformer(net, mean=None, input_scale=None, raw_scale=None, channel_swap=None):
    """A Transformer for net's first input, taking (H, W, K) images (what Classifier and
    Detector set up)."""
    in_ = net.inputs[0]
    transformer = Transformer({in_: net.blobs[in_].data.shape})
    transformer.set_transpose(in_, (2, 0, 1))
    if mean is not None:
        transformer.set_mean(in_, mean)
    if input_scale is not None:
        transformer.set_input_scale(in_, input_scale)
    if raw_scale is not None:
        transformer.set_raw_scale(in_, raw_scale)
    if channel_swap is not None:
        transformer.set_channel_swap(in_, channel_swap)
    return transformer


class Classifier(Net):
    """Classifier(model_file, pretrained_file, image_dims=None, mean=None, input_scale=None,
    raw_scale=None, channel_swap=None). image_dims: the (height, width) images are resized to
    before cropping (default: the input's own size, so no crop)."""

    def __init__(self, model_file, pretrained_file, image_dims=None, mean=None,
                 input_scale=None, raw_scale=None, channel_swap=None):
        super().__init__(model_file, pretrained_file, TEST)
        self.transformer = configure_transformer(self, mean, input_scale, raw_scale,
                                                 channel_swap)
        self.crop_dims = np.array(self.blobs[self.inputs[0]].data.shape[2:])
        self.image_dims = self.crop_dims if image_dims is None else np.asarray(image_dims)

    def predict(self, inputs, oversample=True):
        """inputs: (H, W, K) images. Returns (N, C) predictions of the net's first output (in
        sorted order, as pycaffe's net.outputs[0]): the mean over the ten crops of each image
        with oversample, else for its center crop."""
        inputs = list(inputs)
        height, width = (int(d) for d in self.image_dims)
        images = np.zeros((len(inputs), height, width, inputs[0].shape[2]), dtype=np.float32)
        for i, image in enumerate(inputs):
            images[i] = resize_image(image, (height, width))
        crop_h, crop_w = (int(d) for d in self.crop_dims)
        if oversample:
            crops = preprocessing.oversample(images, (crop_h, crop_w))
        else:
            # The center crop starts at floor(center - crop / 2), as pycaffe truncates it.
            y, x = int(height / 2.0 - crop_h / 2.0), int(width / 2.0 - crop_w / 2.0)
            crops = images[:, y:y + crop_h, x:x + crop_w, :]
        in_ = self.inputs[0]
        net_in = np.stack([self.transformer.preprocess(in_, crop) for crop in crops])
        predictions = self.forward_all(**{in_: net_in})[self.outputs[0]]
        if oversample:
            predictions = predictions.reshape((len(predictions) // 10, 10, -1)).mean(axis=1)
        return predictions
