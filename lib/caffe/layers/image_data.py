"""ImageData: batches of image files named in a list file (image_data_param { source
root_folder batch_size new_height new_width is_color shuffle rand_skip }), through
transform_param; top 0 the images (batch_size, C, H, W), top 1 the labels (batch_size,).

As Caffe's ImageDataLayer: the list holds "<file> <label>" per line (caffe.io.read_image_list);
a file's path is root_folder and its name joined as strings (root_folder "images/" reads
"images/a.jpg"; Caffe adds no separator, and lists rely on writing their own); images are read
by OpenCV in colour (BGR) or gray (is_color: false) and resized to new_height x new_width when
both are given; shuffle reorders the list at setup and at every pass's end, from a generator of
the layer's own; rand_skip starts at a random line in [0, rand_skip). A batch takes its shape
from its first image.
"""
from ..common import CaffeError
from ..io import image_to_chw, read_image, read_image_list
from ..layer import register
from ..rng import CaffeRNG, caffe_rng_rand
from .base_data_layer import BasePrefetchingDataLayer, reuse


class ImageListReader:
    def __init__(self, lines, source, param, transformer, shuffle_rng, owner):
        self.lines, self.source, self.owner = lines, source, owner
        self.root = param.root_folder
        self.height, self.width = int(param.new_height), int(param.new_width)
        self.is_color = bool(param.is_color)
        self.batch_size = int(param.batch_size)
        self.transformer, self.shuffle_rng = transformer, shuffle_rng
        self.line_id = 0
        self.num_tops = 2

    def image(self):
        """The image of the current line, as (C, H, W)."""
        name, _, number = self.lines[self.line_id]
        try:
            image = read_image(self.root + name, self.height, self.width, self.is_color)
        except CaffeError as e:
            raise CaffeError('%s: %s (line %d of %s)' % (self.owner, e, number, self.source)) \
                from None
        return image_to_chw(image)

    def load_batch(self, batch):
        for item in range(self.batch_size):
            image = self.image()
            try:
                if item == 0:
                    shape = self.transformer.infer_shape(image)
                    batch[0] = reuse(batch[0], (self.batch_size,) + shape)
                self.transformer.transform(image, batch[0][item])
            except CaffeError as e:
                name, _, number = self.lines[self.line_id]
                raise CaffeError('%s, at %s (line %d of %s)' % (e, name, number, self.source)) \
                    from None
            batch[1] = reuse(batch[1], (self.batch_size,))
            batch[1][item] = self.lines[self.line_id][1]
            self.line_id += 1
            if self.line_id >= len(self.lines):
                self.line_id = 0
                if self.shuffle_rng is not None:
                    self.shuffle_rng.shuffle(self.lines)

    def close(self):
        pass


@register('ImageData')
class ImageDataLayer(BasePrefetchingDataLayer):
    exact_num_top_blobs = 2

    def data_layer_setup(self, top):
        p = self.layer_param.image_data_param
        if (p.new_height == 0) != (p.new_width == 0) or p.new_height < 0 or p.new_width < 0:
            raise self.error('new_height and new_width must be set together (both positive), '
                             'got %d and %d' % (p.new_height, p.new_width))
        if p.batch_size <= 0:
            raise self.error('image_data_param.batch_size must be positive')
        try:
            lines = read_image_list(p.source)
        except CaffeError as e:
            raise self.error(str(e)) from None
        shuffle_rng = None
        if p.shuffle:
            shuffle_rng = CaffeRNG(caffe_rng_rand())
            shuffle_rng.shuffle(lines)
        owner = '%s layer %r' % (self.type, self.name)
        reader = ImageListReader(lines, p.source, p, self.transformer, shuffle_rng, owner)
        if p.rand_skip:
            skip = caffe_rng_rand() % p.rand_skip
            if skip >= len(lines):
                raise self.error('rand_skip drew %d, but %s lists only %d images (not enough '
                                 'to skip)' % (skip, p.source, len(lines)))
            reader.line_id = skip
        image = reader.image()
        try:
            shape = self.transformer.infer_shape(image)
        except CaffeError as e:
            name, _, number = lines[reader.line_id]
            raise CaffeError('%s, at %s (line %d of %s)' % (e, name, number, p.source)) from None
        top[0].reshape((p.batch_size,) + shape)
        top[1].reshape((p.batch_size,))
        return reader
