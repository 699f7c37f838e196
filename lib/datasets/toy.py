"""A synthetic detection dataset, small enough to train and test a detector on a CPU in
minutes: coloured squares (axis-aligned rectangles), circles (ellipses) and triangles on a
cluttered, noisy background, written as a custom VOC-layout dataset (datasets.custom).

  data/toy/classes.txt, Annotations/, JPEGImages/, ImageSets/Main/{train,test,trainval}.txt
  data/toy/toy_params.json   the parameters it was generated with

There is no validation split: trainval lists the same images as train.

Each image is 320x240 to 480x360 with 1 to 4 objects of 24 to 160 pixels (square root of the
area), aspect ratio 0.5 to 2, overlapping little. Every image is drawn from its own random
stream (seed, split, number), so the same parameters give byte-identical files and the test
images do not change with num_train.

  python -m datasets.toy [--root DIR] [--num-train N] [--num-test N] [--seed S]   (from lib/)
"""
import argparse
import json
import os
import shutil
import tempfile
from xml.sax.saxutils import escape

import cv2
import numpy as np

from caffe.io import umask
from utils import paths

CLASSES = ('square', 'circle', 'triangle')
# BGR base colours, far apart and saturated, against the low-saturation background
CLASS_COLORS = {'square': (40, 50, 215), 'circle': (50, 185, 45), 'triangle': (205, 95, 35)}
PARAMS_FILE = 'toy_params.json'
GENERATOR_VERSION = 1
DEFAULTS = {'num_train': 200, 'num_test': 60, 'seed': 7,
            'image_size': ((320, 240), (480, 360)), 'image_format': 'jpg'}
SIZE_RANGE = (24, 160)
ASPECT_RANGE = (0.5, 2.0)
MAX_OBJECTS = 4
MAX_COVERED = 0.15  # at most this fraction of the smaller of two boxes may overlap
SPLIT_CODES = {'train': 1, 'test': 2}


def _params(num_train, num_test, seed, image_size, image_format):
    sizes = np.asarray(image_size, dtype=np.int64).reshape(-1, 2)
    if sizes.shape[0] == 1:
        sizes = np.vstack((sizes, sizes))
    if sizes.shape[0] != 2 or (sizes[0] > sizes[1]).any() or (sizes[0] < 64).any():
        raise ValueError('image_size: expected (width, height) or ((min_w, min_h), '
                         '(max_w, max_h)) of at least 64 pixels, got {}'.format(image_size))
    if image_format not in ('jpg', 'png'):
        raise ValueError("image_format: 'jpg' or 'png', got {!r}".format(image_format))
    if num_train < 1 or num_test < 1:
        raise ValueError('num_train and num_test must be positive')
    return {'version': GENERATOR_VERSION, 'num_train': int(num_train),
            'num_test': int(num_test), 'seed': int(seed), 'image_size': sizes.tolist(),
            'image_format': image_format, 'classes': list(CLASSES)}


def _background(rng, width, height):
    base = rng.uniform(70, 185) + rng.uniform(-15, 15, size=3)
    # low-frequency colour variation: a coarse random grid upsampled smoothly
    coarse = rng.uniform(-35, 35, size=(max(2, height // 48), max(2, width // 48), 3))
    image = base + cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    image = np.clip(image, 0, 255).astype(np.uint8)
    # clutter: thin grey strokes and faint blobs, so that not every edge is an object
    for _ in range(rng.integers(3, 9)):
        shade = float(rng.uniform(40, 220))
        color = tuple(float(np.clip(shade + d, 0, 255)) for d in rng.uniform(-12, 12, size=3))
        if rng.random() < 0.6:
            p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            p2 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.line(image, p1, p2, color, int(rng.integers(1, 3)), cv2.LINE_AA)
        else:
            center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.circle(image, center, int(rng.integers(4, 14)), color, -1, cv2.LINE_AA)
    return image


def _sample_box(rng, width, height):
    size = np.exp(rng.uniform(np.log(SIZE_RANGE[0]), np.log(SIZE_RANGE[1])))
    aspect = np.exp(rng.uniform(np.log(ASPECT_RANGE[0]), np.log(ASPECT_RANGE[1])))
    w = int(min(round(size * np.sqrt(aspect)), width - 4))
    h = int(min(round(size / np.sqrt(aspect)), height - 4))
    x1 = int(rng.integers(0, width - w + 1))
    y1 = int(rng.integers(0, height - h + 1))
    return x1, y1, x1 + w - 1, y1 + h - 1


def _too_close(box, boxes):
    area = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
    for other in boxes:
        iw = min(box[2], other[2]) - max(box[0], other[0]) + 1
        ih = min(box[3], other[3]) - max(box[1], other[1]) + 1
        if iw > 0 and ih > 0:
            other_area = (other[2] - other[0] + 1) * (other[3] - other[1] + 1)
            if iw * ih > MAX_COVERED * min(area, other_area):
                return True
    return False


def _shape_mask(cls, box, rng, width, height):
    x1, y1, x2, y2 = box
    mask = np.zeros((height, width), dtype=np.uint8)
    if cls == 'square':
        mask[y1:y2 + 1, x1:x2 + 1] = 1
    elif cls == 'circle':
        center = ((x1 + x2) // 2, (y1 + y2) // 2)
        axes = ((x2 - x1) // 2, (y2 - y1) // 2)
        cv2.ellipse(mask, center, axes, 0, 0, 360, 1, -1)
    else:
        xm, ym = (x1 + x2) // 2, (y1 + y2) // 2
        apex_side = rng.integers(4)  # which side the apex points to
        points = [((x1, y2), (x2, y2), (xm, y1)), ((x1, y1), (x2, y1), (xm, y2)),
                  ((x2, y1), (x2, y2), (x1, ym)), ((x1, y1), (x1, y2), (x2, ym))][apex_side]
        cv2.fillPoly(mask, [np.array(points, dtype=np.int32)], 1)
    return mask.astype(bool)


def _draw_object(image, mask, cls, rng):
    ys, xs = np.nonzero(mask)
    color = np.clip(np.array(CLASS_COLORS[cls], dtype=np.float64)
                    + rng.uniform(-30, 30, size=3), 0, 255)
    # a linear shading across the object, as from a light off to one side
    angle = rng.uniform(0, 2 * np.pi)
    span = max(np.ptp(xs), np.ptp(ys), 1)
    ramp = ((xs - xs.min()) * np.cos(angle) + (ys - ys.min()) * np.sin(angle)) / span
    shade = 0.85 + 0.25 * (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6)
    image[ys, xs] = np.clip(color[None, :] * shade[:, None], 0, 255).astype(np.uint8)
    edge = mask & ~cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    image[edge] = (color * 0.55).astype(np.uint8)


def _make_image(rng, params):
    (wmin, hmin), (wmax, hmax) = params['image_size']
    width = int(rng.integers(wmin, wmax + 1))
    height = int(rng.integers(hmin, hmax + 1))
    image = _background(rng, width, height)
    objects = []
    for _ in range(int(rng.integers(1, MAX_OBJECTS + 1))):
        cls = CLASSES[int(rng.integers(len(CLASSES)))]
        for _attempt in range(50):
            box = _sample_box(rng, width, height)
            if not _too_close(box, [o[1] for o in objects]):
                break
        else:
            continue
        mask = _shape_mask(cls, box, rng, width, height)
        _draw_object(image, mask, cls, rng)
        ys, xs = np.nonzero(mask)
        objects.append((cls, (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))))
    noise = rng.normal(0, 6, size=image.shape)
    image = np.clip(image + noise, 0, 255).astype(np.uint8)
    return image, objects


def _annotation_xml(image_id, filename, width, height, objects):
    parts = ['<annotation>\n  <folder>toy</folder>\n',
             '  <filename>{}</filename>\n'.format(escape(filename)),
             '  <size>\n    <width>{}</width>\n    <height>{}</height>\n'
             '    <depth>3</depth>\n  </size>\n  <segmented>0</segmented>\n'.format(width, height)]
    for cls, (x1, y1, x2, y2) in objects:
        # VOC files are 1-based
        parts.append('  <object>\n    <name>{}</name>\n    <pose>Unspecified</pose>\n'
                     '    <truncated>0</truncated>\n    <difficult>0</difficult>\n'
                     '    <bndbox>\n      <xmin>{}</xmin>\n      <ymin>{}</ymin>\n'
                     '      <xmax>{}</xmax>\n      <ymax>{}</ymax>\n    </bndbox>\n'
                     '  </object>\n'.format(cls, x1 + 1, y1 + 1, x2 + 1, y2 + 1))
    parts.append('</annotation>\n')
    return ''.join(parts)


def _write_split(root, split, count, params):
    ext = '.' + params['image_format']
    encode_args = [cv2.IMWRITE_JPEG_QUALITY, 92] if ext == '.jpg' else []
    ids = []
    for i in range(count):
        image_id = '{}_{:06d}'.format(split, i + 1)
        rng = np.random.default_rng([params['seed'], SPLIT_CODES[split], i])
        image, objects = _make_image(rng, params)
        ok, data = cv2.imencode(ext, image, encode_args)
        if not ok:
            raise RuntimeError('cv2 could not encode {}{}'.format(image_id, ext))
        with open(os.path.join(root, 'JPEGImages', image_id + ext), 'wb') as f:
            f.write(data.tobytes())
        xml = _annotation_xml(image_id, image_id + ext, image.shape[1], image.shape[0], objects)
        with open(os.path.join(root, 'Annotations', image_id + '.xml'), 'w') as f:
            f.write(xml)
        ids.append(image_id)
    return ids


def _read_params(root):
    try:
        with open(os.path.join(root, PARAMS_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def generate_toy_dataset(root, num_train=DEFAULTS['num_train'], num_test=DEFAULTS['num_test'],
                         seed=DEFAULTS['seed'], image_size=DEFAULTS['image_size'],
                         image_format=DEFAULTS['image_format'], force=False):
    """Writes the toy dataset to root and returns root. Does nothing when root already holds
    a toy dataset made with the same parameters (unless force). The dataset is built in a
    temporary folder beside root and renamed into place, so root is never half-written.
    Refuses to replace a folder that is not a toy dataset."""
    params = _params(num_train, num_test, seed, image_size, image_format)
    root = os.path.abspath(root)
    existing = _read_params(root) if os.path.exists(root) else None
    if os.path.exists(root) and existing is None:
        raise FileExistsError('{} exists and is not a generated toy dataset (no {}); '
                              'not replacing it'.format(root, PARAMS_FILE))
    if existing == params and not force:
        return root

    parent = os.path.dirname(root)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.' + os.path.basename(root) + '.tmp-', dir=parent)
    try:
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp's 0700 would hide data/toy from other users
        for folder in ('Annotations', 'JPEGImages', os.path.join('ImageSets', 'Main')):
            os.makedirs(os.path.join(tmp, folder))
        train_ids = _write_split(tmp, 'train', params['num_train'], params)
        test_ids = _write_split(tmp, 'test', params['num_test'], params)
        sets = {'train': train_ids, 'test': test_ids, 'trainval': train_ids}
        for split, ids in sets.items():
            with open(os.path.join(tmp, 'ImageSets', 'Main', split + '.txt'), 'w') as f:
                f.write('\n'.join(ids) + '\n')
        with open(os.path.join(tmp, 'classes.txt'), 'w') as f:
            f.write('\n'.join(CLASSES) + '\n')
        with open(os.path.join(tmp, PARAMS_FILE), 'w') as f:
            json.dump(params, f, indent=1, sort_keys=True)
        _move_into_place(tmp, root, params)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    print('wrote the toy dataset ({} train, {} test images) to {}'
          .format(params['num_train'], params['num_test'], root))
    return root


def _move_into_place(tmp, root, params):
    if os.path.exists(root):
        old = tmp + '.old'
        os.rename(root, old)
        os.rename(tmp, root)
        shutil.rmtree(old)
        return
    try:
        os.rename(tmp, root)
    except OSError:
        # another process finished the same dataset first: theirs is as good as ours
        if _read_params(root) != params:
            raise


def ensure_toy_dataset(root=None, **params):
    """Generates the toy dataset (defaults: data/toy, DEFAULTS) unless it is already there
    with the same parameters; returns its folder."""
    if root is None:
        root = os.path.join(paths.DATA_DIR, 'toy')
    return generate_toy_dataset(root, **params)


def main(argv=None):
    parser = argparse.ArgumentParser(description='Generate the synthetic toy detection dataset.')
    parser.add_argument('--root', default=None, help='output folder (default: data/toy)')
    parser.add_argument('--num-train', type=int, default=DEFAULTS['num_train'])
    parser.add_argument('--num-test', type=int, default=DEFAULTS['num_test'])
    parser.add_argument('--seed', type=int, default=DEFAULTS['seed'])
    parser.add_argument('--format', dest='image_format', choices=('jpg', 'png'),
                        default=DEFAULTS['image_format'])
    parser.add_argument('--force', action='store_true', help='regenerate even if up to date')
    args = parser.parse_args(argv)
    root = ensure_toy_dataset(args.root, num_train=args.num_train, num_test=args.num_test,
                              seed=args.seed, image_format=args.image_format, force=args.force)
    print(root)


if __name__ == '__main__':
    main()
