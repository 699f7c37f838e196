"""Object proposals for a dataset: one (N, 4) [x1, y1, x2, y2] array per image, in image order
(0-based pixels, inclusive corners; extra columns such as scores are kept and ignored by the
readers).

This project writes them as <name>.npz (utils.data_files: read without running code); the
release's <name>.pkl files are still read, through the restricted unpickler. Either way the
file is checked to hold what it should: a list of arrays of four or more columns, one per image.
"""
import numpy as np

from utils.data_files import (DataFileError, load_npz, load_release_pickle, pack_rows,
                              save_npz, unpack_rows)

KIND = 'proposals'
EXTENSION = '.npz'
WHAT = 'proposals file'


def save_proposals(path, box_list):
    """Writes the per-image box arrays to path (an .npz file), atomically."""
    box_list = [np.asarray(b) for b in box_list]
    columns = max([b.shape[1] for b in box_list if b.ndim == 2] or [4])
    rows, counts = pack_rows(box_list, columns, np.float32, path)
    save_npz(path, KIND, {'boxes': rows, 'counts': counts}, {'num_images': len(box_list)})


def load_proposals(path, num_images=None):
    """The per-image (N, C >= 4) float arrays in path (.npz written by save_proposals, or the
    release's .pkl). DataFileError naming the file when it holds anything else, or proposals
    for another number of images than num_images (when given)."""
    if str(path).endswith('.pkl'):
        box_list = _checked_list(load_release_pickle(path, WHAT), path)
    else:
        arrays, _ = load_npz(path, KIND, WHAT)
        if 'boxes' not in arrays or 'counts' not in arrays:
            raise DataFileError('%s %s lacks its boxes or counts array' % (WHAT, path))
        box_list = _checked_list(unpack_rows(arrays['boxes'], arrays['counts'],
                                             '%s %s' % (WHAT, path)), path)
    if num_images is not None and len(box_list) != num_images:
        raise DataFileError('%s %s holds proposals for %d images; the dataset has %d'
                            % (WHAT, path, len(box_list), num_images))
    return box_list


def _checked_list(obj, path):
    if not isinstance(obj, (list, tuple)):
        raise DataFileError('%s %s holds a %s; expected a list with one (N, 4) box array per '
                            'image' % (WHAT, path, type(obj).__name__))
    out = []
    for i, boxes in enumerate(obj):
        if isinstance(boxes, list) and not boxes:
            boxes = np.zeros((0, 4), dtype=np.float32)
        if not isinstance(boxes, np.ndarray) or boxes.dtype.kind not in 'iuf':
            raise DataFileError('%s %s: entry %d is a %s; expected an (N, 4) array of box '
                                'coordinates' % (WHAT, path, i, _describe(boxes)))
        if boxes.size == 0:
            boxes = boxes.reshape(0, max(boxes.shape[-1] if boxes.ndim == 2 else 4, 4))
        if boxes.ndim != 2 or boxes.shape[1] < 4:
            raise DataFileError('%s %s: entry %d has shape %s; expected (N, 4) boxes (or more '
                                'columns, e.g. a score)' % (WHAT, path, i, boxes.shape))
        if not np.isfinite(boxes[:, :4]).all():
            raise DataFileError('%s %s: entry %d holds NaN or infinite coordinates'
                                % (WHAT, path, i))
        out.append(boxes)
    return out


def _describe(value):
    if isinstance(value, np.ndarray):
        return '%s array' % value.dtype
    return type(value).__name__
