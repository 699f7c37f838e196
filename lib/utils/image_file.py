"""Cheap checks that an image file is whole, made before hours of training depend on it.

Decoding every image up front would take minutes on PASCAL VOC. Instead:
- check_image_file reads a file's first and last bytes (microseconds) and catches what cv2.imread
  does not: an empty file, a file that is not an image, and a JPEG or PNG cut short (cv2 decodes
  those with a grey bottom and only a warning);
- image_header reads the header with Pillow, which opens images lazily (Image.open parses the
  header and decodes nothing): the size the image will have, to compare with its annotation, and
  for PNG the checksums of every chunk (Image.verify reads the compressed data without inflating
  it), which catches a damaged PNG body that cv2.imread would refuse mid-training. OpenCV has no
  header-only reader: cv2.imread always decodes the whole image.
"""
import os
import warnings

# (magic at the start, the bytes a whole file ends with, or None where the format has no end
# marker we can rely on)
_FORMATS = (
    ('JPEG', b'\xff\xd8\xff', b'\xff\xd9'),
    ('PNG', b'\x89PNG\r\n\x1a\n', b'IEND\xaeB`\x82'),
    ('BMP', b'BM', None),
    ('TIFF', b'II*\x00', None),
    ('TIFF', b'MM\x00*', None),
)
# JPEG writers may pad after the end marker; look for it in the last bytes.
_TAIL = 64
# EXIF orientations that turn the image a quarter: cv2.imread applies them (IMREAD_COLOR), so
# the decoded image is the stored one with width and height swapped.
_QUARTER_TURNS = (5, 6, 7, 8)
_EXIF_ORIENTATION = 0x0112


def check_image_file(path):
    """Raises OSError naming path when the file is missing, empty, not a JPEG/PNG/BMP/TIFF, or
    a JPEG/PNG without its end marker (truncated). Returns the format's name."""
    try:
        size = os.path.getsize(path)
        with open(path, 'rb') as f:
            head = f.read(16)
            f.seek(max(size - _TAIL, 0))
            tail = f.read()
    except OSError as e:
        raise OSError('cannot read image %s: %s' % (path, e.strerror or e)) from None
    if size == 0:
        raise OSError('image %s is empty' % path)
    for name, magic, end in _FORMATS:
        if head.startswith(magic):
            if end is not None and end not in tail:
                raise OSError('image %s is truncated (a %s file without its end marker)'
                              % (path, name))
            return name
    raise OSError('%s is not an image (not JPEG, PNG, BMP or TIFF)' % path)


def image_header(path):
    """(width, height) of the image as cv2.imread decodes it (EXIF orientation applied), read
    from its header, after check_image_file and, for a PNG, the checksums of its data. Raises
    OSError naming path for a file that fails any of these."""
    check_image_file(path)
    from PIL import Image
    try:
        with warnings.catch_warnings():
            # A huge photo is not a decompression bomb here: nothing is decoded.
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                with Image.open(path) as im:
                    width, height = im.size
                    orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
                    png = im.format == 'PNG'
                if png:  # verify() must come first after open, and ends the image's use
                    with Image.open(path) as im:
                        im.verify()
            finally:
                Image.MAX_IMAGE_PIXELS = limit
    except (OSError, SyntaxError, ValueError) as e:
        # Pillow reports a damaged PNG chunk as SyntaxError, an unknown format as OSError.
        raise OSError('image %s is damaged or unreadable (%s)' % (path, e)) from None
    if orientation in _QUARTER_TURNS:
        width, height = height, width
    return width, height


def check_image_size(path, width, height, source):
    """image_header, and a ValueError naming path and `source` (where width x height came from,
    e.g. the annotation) when the image is of another size."""
    real = image_header(path)
    if real != (int(width), int(height)):
        raise ValueError('image %s is %dx%d but %s says %dx%d; fix the one that is wrong'
                         % ((path,) + real + (source, int(width), int(height))))
    return real
