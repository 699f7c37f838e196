"""Datasets by name.

  voc_<year>_<split>     year 2007 or 2012; split train, val, trainval or test
  coco_2014_<split>      split train, val, minival or valminusminival
  coco_2015_<split>      split test or test-dev
  toy_<split>            the generated toy dataset (data/toy; made on first use)
  <name>_<split>         any custom dataset folder data/<name>/ with a classes.txt
                         (see datasets.custom); split = ImageSets/Main/<split>.txt

Datasets are found under a data folder (data_dir, cfg.DATA_DIR; default: the repository's
data/, utils.paths.DATA_DIR).
"""
import os

from datasets.coco import coco
from datasets.custom import custom_dataset, is_custom_dataset, list_splits
from datasets.pascal_voc import pascal_voc
from datasets.toy import ensure_toy_dataset
from utils import paths

TOY_NAME = 'toy'
TOY_SPLITS = ('train', 'test', 'trainval')


def _release_sets():
    sets = {}
    for year in ('2007', '2012'):
        for split in ('train', 'val', 'trainval', 'test'):
            sets['voc_{}_{}'.format(year, split)] = (
                lambda data_dir, split=split, year=year: pascal_voc(split, year,
                                                                    data_dir=data_dir))
    for year, splits in (('2014', ('train', 'val', 'minival', 'valminusminival')),
                         ('2015', ('test', 'test-dev'))):
        for split in splits:
            sets['coco_{}_{}'.format(year, split)] = (
                lambda data_dir, split=split, year=year: coco(split, year, data_dir=data_dir))
    return sets


_RELEASE_SETS = _release_sets()


class UnknownDatasetError(KeyError):
    """get_imdb was given a name that is not a known dataset; the message lists the options."""

    def __str__(self):
        return str(self.args[0])


def _custom_datasets(data_dir):
    """{name: folder} of the custom datasets under data_dir (folders with a classes.txt)."""
    found = {}
    if os.path.isdir(data_dir):
        for entry in sorted(os.listdir(data_dir)):
            path = os.path.join(data_dir, entry)
            if os.path.isdir(path) and is_custom_dataset(path):
                found[entry] = path
    return found


def list_imdbs(data_dir=None):
    """All dataset names get_imdb accepts, sorted (custom datasets as found right now)."""
    names = set(_RELEASE_SETS)
    names.update('{}_{}'.format(TOY_NAME, split) for split in TOY_SPLITS)
    for name, path in _custom_datasets(data_dir or paths.DATA_DIR).items():
        names.update('{}_{}'.format(name, split) for split in list_splits(path))
    return sorted(names)


def get_imdb(name, data_dir=None):
    """The imdb called name (see the module docstring) under data_dir (default: data/)."""
    data_dir = data_dir or paths.DATA_DIR
    if name in _RELEASE_SETS:
        return _RELEASE_SETS[name](data_dir)
    if name in ('{}_{}'.format(TOY_NAME, split) for split in TOY_SPLITS):
        toy_root = os.path.join(data_dir, TOY_NAME)
        if not os.path.exists(toy_root):
            ensure_toy_dataset(toy_root)
        return custom_dataset(TOY_NAME, name[len(TOY_NAME) + 1:], toy_root, data_dir)

    # longest dataset name first, so 'my_set_train' prefers data/my_set over data/my
    customs = _custom_datasets(data_dir)
    for dataset in sorted(customs, key=len, reverse=True):
        prefix = dataset + '_'
        if name.startswith(prefix) and len(name) > len(prefix):
            split = name[len(prefix):]
            splits = list_splits(customs[dataset])
            if split not in splits:
                raise UnknownDatasetError(
                    'Unknown dataset: {}: {} has no image set {!r} (ImageSets/Main/{}.txt); '
                    'its image sets: {}'.format(name, customs[dataset], split, split,
                                                ', '.join(splits) or 'none'))
            return custom_dataset(dataset, split, customs[dataset], data_dir)
    raise UnknownDatasetError(
        'Unknown dataset: {}. Known datasets: {}. A custom dataset is a folder {}/<name>/ '
        'with classes.txt, Annotations/, JPEGImages/ and ImageSets/Main/<split>.txt, used as '
        "'<name>_<split>'.".format(name, ', '.join(list_imdbs(data_dir)), data_dir))
