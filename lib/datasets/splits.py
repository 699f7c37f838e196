"""The experiments' dataset table (experiments/dataset_splits.txt): a short dataset name ->
the imdbs it trains and tests on, its models/ folder, its extra cfg file and its initial weights.
The shell scripts read the same file."""
import os
from dataclasses import dataclass

TABLE = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', 'experiments',
                                     'dataset_splits.txt'))
_COLUMNS = ('dataset', 'train_imdb', 'test_imdb', 'models', 'imdb_prefix', 'cfg', 'init')


@dataclass(frozen=True)
class DatasetSplits:
    dataset: str
    train_imdb: str
    test_imdb: str
    models: str           # the folder under models/
    imdb_prefix: str      # imdb names starting with it use this models folder ('' for '*')
    cfg: str              # an extra cfg file for every run ('' for none)
    init: str             # 'imagenet' or 'random'


def read_table(path=TABLE):
    """The table's rows, in file order, the '*' row last."""
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            fields = line.split('#', 1)[0].split()
            if not fields:
                continue
            if len(fields) != len(_COLUMNS):
                raise ValueError('%s:%d: expected %d columns (%s), got %d'
                                 % (path, number, len(_COLUMNS), ' '.join(_COLUMNS),
                                    len(fields)))
            rows.append(DatasetSplits(*('' if v == '-' else v for v in fields)))
    return rows


def dataset_splits(dataset, models_root=None, net=None, path=TABLE):
    """The row for a dataset name; a name the table lacks is a custom dataset (the '*' row with
    {} replaced), whose models folder is models/<name> when models_root/<name>/<net> exists."""
    rows = read_table(path)
    for row in rows:
        if row.dataset == dataset:
            return row
    default = next(row for row in rows if row.dataset == '*')
    models = default.models
    if models_root and net and os.path.isdir(os.path.join(models_root, dataset, net)):
        models = dataset
    return DatasetSplits(dataset, default.train_imdb.format(dataset),
                         default.test_imdb.format(dataset), models, '', default.cfg,
                         default.init)


def models_folder(imdb_name, path=TABLE):
    """models/<folder> holding the nets for an imdb name (its prefix's row; PASCAL VOC's nets
    otherwise: custom datasets use them, fitted to their classes at run time)."""
    rows = read_table(path)
    for row in rows:
        if row.imdb_prefix and imdb_name.startswith(row.imdb_prefix):
            return row.models
    return next(row for row in rows if row.dataset == '*').models
