"""Reads one PASCAL VOC annotation XML. The single reader behind both the training roidb
(pascal_voc, custom datasets) and the evaluation (voc_eval.parse_rec), so the two always see
the same objects.

Coordinates stay as the file writes them: 1-based, inclusive corners. Required fields are
size/width, size/height and, per object, name and bndbox/{xmin,ymin,xmax,ymax}; difficult,
truncated and pose are optional (0, 0, 'Unspecified'). Non-integer coordinates are rounded.

Bad boxes do not stop a dataset from loading; each is skipped with a BadBoxWarning naming the
file and the object:
  - xmax < xmin or ymax < ymin (inverted);
  - xmax == xmin or ymax == ymin (zero area: the annotation spans no extent);
  - a box with no pixel inside the image.
A box that reaches outside the image is clipped to it (silently when by at most
CLIP_TOLERANCE pixels, which annotation tools often produce, with a warning otherwise).
Missing or malformed fields raise AnnotationError naming the file and the field.
"""
import os
import warnings
import xml.etree.ElementTree as ET

CLIP_TOLERANCE = 2


class AnnotationError(ValueError):
    """An annotation file that cannot be read as VOC XML; the message names the file."""


class BadBoxWarning(UserWarning):
    """A box skipped or clipped while reading an annotation; the message names file and object."""


def _text(node, path, filename, what):
    child = node.find(path)
    if child is None or child.text is None or not child.text.strip():
        raise AnnotationError('{}: missing field <{}> in {}'.format(filename, path, what))
    return child.text.strip()


def _number(node, path, filename, what, kind):
    text = _text(node, path, filename, what)
    try:
        value = float(text)
    except ValueError:
        raise AnnotationError('{}: field <{}> in {} should be a number, got {!r}'
                              .format(filename, path, what, text)) from None
    if kind is int:
        return int(round(value))
    return value


def _optional_int(node, path, filename, what, default):
    child = node.find(path)
    if child is None or child.text is None or not child.text.strip():
        return default
    text = child.text.strip()
    if text.lower() in ('true', 'false'):
        return int(text.lower() == 'true')
    try:
        return int(float(text))
    except ValueError:
        raise AnnotationError('{}: field <{}> in {} should be an integer, got {!r}'
                              .format(filename, path, what, text)) from None


def _clean_box(box, width, height, filename, what):
    """The box clipped to the image, or None (with a warning) when it is not usable."""
    xmin, ymin, xmax, ymax = box
    if xmax < xmin or ymax < ymin:
        reason = 'xmax < xmin' if xmax < xmin else 'ymax < ymin'
        warnings.warn('{}: {} skipped: {} in bndbox {}'.format(filename, what, reason, box),
                      BadBoxWarning, stacklevel=3)
        return None
    if xmax == xmin or ymax == ymin:
        warnings.warn('{}: {} skipped: zero-area bndbox {}'.format(filename, what, box),
                      BadBoxWarning, stacklevel=3)
        return None
    if xmax < 1 or ymax < 1 or xmin > width or ymin > height:
        warnings.warn('{}: {} skipped: bndbox {} lies outside the {}x{} image'
                      .format(filename, what, box, width, height), BadBoxWarning, stacklevel=3)
        return None
    clipped = [max(xmin, 1), max(ymin, 1), min(xmax, width), min(ymax, height)]
    if clipped[2] == clipped[0] or clipped[3] == clipped[1]:
        warnings.warn('{}: {} skipped: bndbox {} has no area inside the {}x{} image'
                      .format(filename, what, box, width, height), BadBoxWarning, stacklevel=3)
        return None
    shift = max(abs(a - b) for a, b in zip(box, clipped))
    if shift > CLIP_TOLERANCE:
        warnings.warn('{}: {} bndbox {} clipped to the {}x{} image: {}'
                      .format(filename, what, box, width, height, clipped),
                      BadBoxWarning, stacklevel=3)
    return clipped


def read_voc_xml(filename):
    """Parses a VOC annotation file.

    Returns {'filename', 'width', 'height', 'objects'}; each object is a dict with 'name'
    (stripped), 'pose', 'truncated', 'difficult' (ints) and 'bbox' ([xmin, ymin, xmax, ymax],
    1-based ints, clipped to the image). Skipped boxes are left out (see the module docstring).
    """
    if not os.path.isfile(filename):
        raise FileNotFoundError('annotation file not found: {}'.format(filename))
    try:
        root = ET.parse(filename).getroot()
    except ET.ParseError as err:
        raise AnnotationError('{}: malformed XML: {}'.format(filename, err)) from None
    size = root.find('size')
    if size is None:
        raise AnnotationError('{}: missing field <size> in the annotation'.format(filename))
    width = _number(size, 'width', filename, '<size>', int)
    height = _number(size, 'height', filename, '<size>', int)
    if width <= 0 or height <= 0:
        raise AnnotationError('{}: <size> should give a positive width and height, got {}x{}'
                              .format(filename, width, height))
    image_file = root.findtext('filename')
    objects = []
    for k, obj in enumerate(root.findall('object')):
        what = 'object {}'.format(k)
        name = _text(obj, 'name', filename, what)
        what = "object {} ('{}')".format(k, name)
        bndbox = obj.find('bndbox')
        if bndbox is None:
            raise AnnotationError('{}: missing field <bndbox> in {}'.format(filename, what))
        box = [_number(bndbox, tag, filename, what + ' <bndbox>', int)
               for tag in ('xmin', 'ymin', 'xmax', 'ymax')]
        box = _clean_box(box, width, height, filename, what)
        if box is None:
            continue
        objects.append({
            'name': name,
            'pose': (obj.findtext('pose') or 'Unspecified').strip(),
            'truncated': _optional_int(obj, 'truncated', filename, what, 0),
            'difficult': _optional_int(obj, 'difficult', filename, what, 0),
            'bbox': box,
        })
    return {'filename': image_file.strip() if image_file else None,
            'width': width, 'height': height, 'objects': objects}
