"""A cheap check that an image file is whole, made before hours of training depend on it.

Decoding every image up front would take minutes on PASCAL VOC; reading a file's first and last
bytes takes microseconds and catches what cv2.imread does not: an empty file, a file that is not
an image, and a JPEG or PNG cut short (cv2 decodes those with a grey bottom and only a warning).
"""
import os

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
