"""The synthetic toy dataset: determinism, idempotence, annotation sanity, use as an imdb."""
import json
import os
import stat
import warnings

import cv2
import numpy as np
import pytest

import datasets.factory
from datasets import toy
from datasets.toy import generate_toy_dataset
from datasets.voc_xml import read_voc_xml
from utils import paths

SMALL = {'num_train': 8, 'num_test': 4, 'seed': 3}


def all_files(root):
    found = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, 'rb') as f:
                found[os.path.relpath(path, root)] = f.read()
    return found


def test_same_seed_gives_identical_files(tmp_path):
    a = all_files(generate_toy_dataset(str(tmp_path / 'a'), **SMALL))
    b = all_files(generate_toy_dataset(str(tmp_path / 'b'), **SMALL))
    assert len(a) == 8 + 4 + 8 + 4 + 3 + 2  # images, annotations, 3 image sets, classes, params
    assert a == b
    c = all_files(generate_toy_dataset(str(tmp_path / 'c'), **dict(SMALL, seed=4)))
    assert c['JPEGImages/train_000001.jpg'] != a['JPEGImages/train_000001.jpg']
    # each image has its own random stream: more training images leave the test set as it was
    d = all_files(generate_toy_dataset(str(tmp_path / 'd'), **dict(SMALL, num_train=9)))
    assert all(d[k] == a[k] for k in a if 'test_' in k)


def test_annotations_are_sane(tmp_path):
    root = generate_toy_dataset(str(tmp_path / 'toy'), num_train=30, num_test=10, seed=5)
    sets = {s: open(os.path.join(root, 'ImageSets', 'Main', s + '.txt')).read().split()
            for s in ('train', 'test', 'trainval')}
    assert len(sets['train']) == 30 and len(sets['test']) == 10
    assert sets['trainval'] == sets['train'] and not set(sets['train']) & set(sets['test'])
    assert open(os.path.join(root, 'classes.txt')).read().split() == list(toy.CLASSES)
    # square, circle, triangle are red, green and blue (the dominant BGR channel)
    dominant = {'square': 2, 'circle': 1, 'triangle': 0}
    counts = {c: 0 for c in toy.CLASSES}
    for index in sets['train'] + sets['test']:
        with warnings.catch_warnings():
            warnings.simplefilter('error')  # no box may need skipping or clipping
            ann = read_voc_xml(os.path.join(root, 'Annotations', index + '.xml'))
        image = cv2.imread(os.path.join(root, 'JPEGImages', index + '.jpg'))
        assert image.shape == (ann['height'], ann['width'], 3)
        assert 320 <= ann['width'] <= 480 and 240 <= ann['height'] <= 360
        assert 1 <= len(ann['objects']) <= 4
        boxes = [obj['bbox'] for obj in ann['objects']]
        for obj in ann['objects']:
            counts[obj['name']] += 1
            x1, y1, x2, y2 = obj['bbox']
            assert 1 <= x1 < x2 <= ann['width'] and 1 <= y1 < y2 <= ann['height']
            w, h = x2 - x1 + 1, y2 - y1 + 1
            assert 0.45 <= w / h <= 2.2 and 22 <= np.sqrt(w * h) <= 165
            cx, cy = (x1 + x2) // 2 - 1, (y1 + y2) // 2 - 1
            # every shape covers its box's centre, unless another object was drawn over it
            others = [b for b in boxes if b is not obj['bbox']]
            if not any(b[0] - 1 <= cx <= b[2] - 1 and b[1] - 1 <= cy <= b[3] - 1 for b in others):
                assert int(np.argmax(image[cy, cx])) == dominant[obj['name']]
    assert all(n >= 5 for n in counts.values())


def test_generation_is_idempotent_and_refuses_foreign_folders(tmp_path):
    root = generate_toy_dataset(str(tmp_path / 'toy'), **SMALL)
    params_file = os.path.join(root, toy.PARAMS_FILE)
    stamp = os.stat(params_file).st_mtime_ns
    generate_toy_dataset(root, **SMALL)
    assert os.stat(params_file).st_mtime_ns == stamp
    generate_toy_dataset(root, **dict(SMALL, num_test=5))
    assert json.load(open(params_file))['num_test'] == 5
    assert len(os.listdir(os.path.join(root, 'JPEGImages'))) == 8 + 5
    assert sorted(os.listdir(tmp_path)) == ['toy']  # no temporary folders left behind
    (tmp_path / 'mine').mkdir()
    with pytest.raises(FileExistsError, match='mine'):
        generate_toy_dataset(str(tmp_path / 'mine'), **SMALL)


def test_the_dataset_folder_gets_the_mode_mkdir_gives(tmp_path):
    # Built under mkdtemp (0700) and renamed: other users of a shared data/ must still read it.
    saved = os.umask(0o022)
    try:
        root = generate_toy_dataset(str(tmp_path / 'toy'), **SMALL)
        os.mkdir(str(tmp_path / 'plain'))
    finally:
        os.umask(saved)
    mode = stat.S_IMODE(os.stat(root).st_mode)
    assert mode == stat.S_IMODE(os.stat(str(tmp_path / 'plain')).st_mode) == 0o755


def test_factory_generates_toy_on_first_use(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, 'DATA_DIR', str(tmp_path / 'data'))
    made = []

    def small_toy(root):
        made.append(root)
        return generate_toy_dataset(root, **SMALL)

    monkeypatch.setattr(datasets.factory, 'ensure_toy_dataset', small_toy)
    db = datasets.factory.get_imdb('toy_train')
    assert made == [str(tmp_path / 'data' / 'toy')]
    assert db.name == 'toy_train' and db.num_images == 8
    assert db.classes == ('__background__',) + toy.CLASSES
    db.append_flipped_images()
    assert len(db.roidb) == 16 and all(len(e['boxes']) >= 1 for e in db.roidb)
    assert datasets.factory.get_imdb('toy_test').num_images == 4
    assert made == [str(tmp_path / 'data' / 'toy')]  # already there: not made again
    assert {'toy_train', 'toy_test', 'toy_trainval'} <= set(datasets.factory.list_imdbs())


def test_ensure_toy_dataset_defaults_to_data_toy(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, 'DATA_DIR', str(tmp_path / 'data'))
    assert toy.ensure_toy_dataset(**SMALL) == str(tmp_path / 'data' / 'toy')
