"""Your own dataset, in the VOC layout, as imdb '<name>_<split>':

  data/<name>/classes.txt                one class name per line (no '__background__';
                                         blank lines and lines starting with '#' ignored)
  data/<name>/Annotations/<id>.xml       VOC XML (size, object/name, object/bndbox, ...)
  data/<name>/JPEGImages/<id>.<ext>      .jpg, .jpeg, .png, .bmp, .tif or .tiff
  data/<name>/ImageSets/Main/<split>.txt one image id per line
  data/<name>/results/Main/              detection files written for evaluation
  data/<name>/annotations_cache/         parsed annotations (evaluation)

data/<name> may be a symlink to the folder. Annotations are read and evaluated exactly as
PASCAL VOC's (datasets.voc_xml, datasets.voc_eval), with these consequences for bad input:
  - a malformed XML file, a missing <size> or <bndbox> field, or an object whose class is not
    in classes.txt raises AnnotationError naming the file;
  - an id without an image, or an empty image set, raises when the imdb is made, naming the
    image set file;
  - a bad box (xmax < xmin, zero area, no pixel inside the image) is skipped with a
    BadBoxWarning naming the file and the object; a box reaching outside the image is clipped
    to it (see datasets.voc_xml).
Evaluation uses the VOC area-under-curve metric unless config['use_07_metric'] is set.
"""
import os

from datasets.imdb import imdb
from datasets.pascal_voc import pascal_voc

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff')
CLASSES_FILE = 'classes.txt'


def read_classes_file(path):
    """The class names listed in a classes.txt, in order, without the background."""
    if not os.path.isfile(path):
        raise FileNotFoundError('classes file not found: {}'.format(path))
    names = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            name = line.strip()
            if not name or name.startswith('#'):
                continue
            if name.lower() == '__background__':
                raise ValueError('{}:{}: list only object classes; the background is implicit'
                                 .format(path, lineno))
            if name.lower() in (n.lower() for n in names):
                raise ValueError('{}:{}: class {!r} is listed twice (names compare '
                                 'case-insensitively)'.format(path, lineno, name))
            names.append(name)
    if not names:
        raise ValueError('{}: no class names (expected one per line)'.format(path))
    return tuple(names)


def list_splits(data_path):
    """The image sets of a custom dataset folder (ImageSets/Main/*.txt), sorted."""
    folder = os.path.join(data_path, 'ImageSets', 'Main')
    if not os.path.isdir(folder):
        return []
    return sorted(f[:-4] for f in os.listdir(folder) if f.endswith('.txt'))


def is_custom_dataset(data_path):
    return os.path.isfile(os.path.join(data_path, CLASSES_FILE))


class custom_dataset(pascal_voc):
    """A VOC-layout folder with a classes.txt; see the module docstring."""

    def __init__(self, name, image_set, data_path=None, data_dir=None):
        imdb.__init__(self, name + '_' + image_set, data_dir=data_dir)
        data_path = os.path.abspath(data_path or os.path.join(self.data_dir, name))
        classes = read_classes_file(os.path.join(data_path, CLASSES_FILE))
        self._classes = ('__background__',) + classes
        self._dataset_name = name
        self._year = None
        self._devkit_path = data_path
        self._init_voc_layout(data_path=data_path,
                              image_set=image_set,
                              results_path=os.path.join(data_path, 'results', 'Main'),
                              annotation_cache=os.path.join(data_path, 'annotations_cache'),
                              use_07_metric=False)
        self._image_files = self._find_images()
        self._roidb_handler = self.gt_roidb

    def _find_images(self):
        folder = os.path.join(self._data_path, 'JPEGImages')
        if not os.path.isdir(folder):
            raise FileNotFoundError('{}: image folder not found: {}'
                                    .format(self._data_path, folder))
        by_id = {}
        rank = {ext: r for r, ext in enumerate(IMAGE_EXTS)}
        for filename in os.listdir(folder):
            stem, ext = os.path.splitext(filename)
            r = rank.get(ext.lower())
            if r is not None and (stem not in by_id or r < by_id[stem][0]):
                by_id[stem] = (r, filename)
        missing = [index for index in self._image_index if index not in by_id]
        if missing:
            shown = ', '.join(repr(m) for m in missing[:5])
            more = ' and {} more'.format(len(missing) - 5) if len(missing) > 5 else ''
            raise FileNotFoundError('{}: no image in {} for id(s) {}{} (looked for {})'.format(
                self._image_set_file(), folder, shown, more, ', '.join(IMAGE_EXTS)))
        return {index: os.path.join(folder, by_id[index][1]) for index in self._image_index}

    def image_path_from_index(self, index):
        return self._image_files[index]

    def _gt_available(self):
        return all(os.path.isfile(self._annotation_path(i)) for i in self.image_index)
