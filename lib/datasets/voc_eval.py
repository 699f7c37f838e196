"""PASCAL VOC detection evaluation (the Python port of the devkit's VOCevaldet, as in the
release): average precision of one class from a detection file and the VOC annotations.
"""
import hashlib
import os

import numpy as np

from datasets.ds_utils import files_fingerprint, load_or_build
from datasets.voc_xml import read_voc_xml


def parse_rec(filename):
    """The objects of one VOC annotation file: a list of dicts with 'name', 'pose',
    'truncated', 'difficult' and 'bbox' ([xmin, ymin, xmax, ymax], 1-based, as in the file)."""
    return read_voc_xml(filename)['objects']


def voc_ap(rec, prec, use_07_metric=False):
    """AP from a precision/recall curve.

    use_07_metric: the VOC2007 11-point metric, the mean over t in {0, 0.1, ..., 1} of the
    highest precision at recall >= t. Otherwise the area under the curve made monotonically
    decreasing (the VOC2010+ metric).
    """
    rec = np.asarray(rec, dtype=np.float64)
    prec = np.asarray(prec, dtype=np.float64)
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            above = rec >= t
            ap += (np.max(prec[above]) if above.any() else 0.0) / 11.0
        return ap
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    # precision envelope: at each recall, the best precision reachable at that recall or more
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def _read_image_set(imagesetfile):
    if not os.path.isfile(imagesetfile):
        raise FileNotFoundError('image set file not found: {}'.format(imagesetfile))
    with open(imagesetfile) as f:
        return [line.split()[0] for line in f if line.strip()]


def _load_annotations(annopath, imagenames, imagesetfile, cachedir):
    paths = [annopath.format(name) for name in imagenames]

    def parse_all():
        return {name: parse_rec(path) for name, path in zip(imagenames, paths)}

    if not cachedir:
        return parse_all()
    # one cache per (image set, annotation folder), invalidated when an annotation changes
    tag = hashlib.sha1('{}|{}'.format(os.path.abspath(imagesetfile), annopath).encode())
    cachefile = os.path.join(cachedir, '{}_{}_annots.json'.format(
        os.path.splitext(os.path.basename(imagesetfile))[0], tag.hexdigest()[:10]))
    key = files_fingerprint(paths, extra=('voc_eval annots v2', tuple(imagenames)))
    return load_or_build(cachefile, key, parse_all, 'annotations')


def _read_detections(detpath, classname):
    detfile = detpath.format(classname)
    if not os.path.isfile(detfile):
        raise FileNotFoundError('detection file not found: {}'.format(detfile))
    image_ids, confidence, boxes = [], [], []
    with open(detfile) as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 6:
                raise ValueError('{}:{}: expected "image_id score x1 y1 x2 y2", got {!r}'
                                 .format(detfile, lineno, line.rstrip('\n')))
            try:
                values = [float(x) for x in fields[1:]]
            except ValueError:
                raise ValueError('{}:{}: score and box should be numbers, got {!r}'
                                 .format(detfile, lineno, line.rstrip('\n'))) from None
            image_ids.append(fields[0])
            confidence.append(values[0])
            boxes.append(values[1:])
    return (detfile, image_ids, np.array(confidence, dtype=np.float64),
            np.array(boxes, dtype=np.float64).reshape(-1, 4))


def voc_eval(detpath, annopath, imagesetfile, classname, cachedir,
             ovthresh=0.5, use_07_metric=False):
    """rec, prec, ap = voc_eval(detpath, annopath, imagesetfile, classname, cachedir,
                               [ovthresh], [use_07_metric])

    detpath: detection file path with a {} for the class name; each line is
        "image_id score x1 y1 x2 y2" (1-based, inclusive corners).
    annopath: annotation path with a {} for the image id.
    imagesetfile: text file with one image id per line.
    cachedir: folder for the parsed annotations (None: no cache).

    Detections are taken by decreasing score; one is a true positive when its best-overlapping
    ground-truth box of the class has IoU > ovthresh and was not matched before (each
    ground-truth box is matched once; later duplicates are false positives). Matching a
    `difficult` box counts as neither, and difficult boxes are not in the recall's total.
    Class names compare case-insensitively. With no non-difficult ground truth, ap is nan.
    """
    imagenames = _read_image_set(imagesetfile)
    recs = _load_annotations(annopath, imagenames, imagesetfile, cachedir)

    wanted = classname.lower()
    class_recs = {}
    npos = 0
    for name in imagenames:
        objs = [obj for obj in recs[name] if obj['name'].lower() == wanted]
        difficult = np.array([obj['difficult'] for obj in objs], dtype=bool)
        class_recs[name] = {
            'bbox': np.array([obj['bbox'] for obj in objs], dtype=np.float64).reshape(-1, 4),
            'difficult': difficult,
            'det': np.zeros(len(objs), dtype=bool),
        }
        npos += int((~difficult).sum())

    detfile, image_ids, confidence, boxes = _read_detections(detpath, classname)
    # stable sort: equal scores keep file order, so results do not depend on the sort kind
    order = np.argsort(-confidence, kind='stable')
    boxes = boxes[order]
    image_ids = [image_ids[i] for i in order]

    nd = len(image_ids)
    tp = np.zeros(nd)
    fp = np.zeros(nd)
    for d in range(nd):
        R = class_recs.get(image_ids[d])
        if R is None:
            raise ValueError('{}: image id {!r} is not in the image set {}'
                             .format(detfile, image_ids[d], imagesetfile))
        bb = boxes[d]
        gt = R['bbox']
        ovmax = -np.inf
        if gt.shape[0] > 0:
            iw = np.maximum(np.minimum(gt[:, 2], bb[2]) - np.maximum(gt[:, 0], bb[0]) + 1.0, 0.0)
            ih = np.maximum(np.minimum(gt[:, 3], bb[3]) - np.maximum(gt[:, 1], bb[1]) + 1.0, 0.0)
            inters = iw * ih
            union = ((bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0)
                     + (gt[:, 2] - gt[:, 0] + 1.0) * (gt[:, 3] - gt[:, 1] + 1.0) - inters)
            overlaps = inters / union
            jmax = int(np.argmax(overlaps))
            ovmax = overlaps[jmax]
        if ovmax > ovthresh:
            if not R['difficult'][jmax]:
                if not R['det'][jmax]:
                    tp[d] = 1.0
                    R['det'][jmax] = True
                else:
                    fp[d] = 1.0
        else:
            fp[d] = 1.0

    fp = np.cumsum(fp)
    tp = np.cumsum(tp)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    if npos == 0:
        return np.zeros(nd), prec, float('nan')
    rec = tp / float(npos)
    return rec, prec, voc_ap(rec, prec, use_07_metric)
