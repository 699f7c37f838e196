"""Where the project's files are: the repository's folders (the defaults of cfg.ROOT_DIR,
DATA_DIR and MODELS_DIR) and the output folder of an experiment."""
import os
import os.path as osp

ROOT_DIR = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
DATA_DIR = osp.join(ROOT_DIR, 'data')
MODELS_DIR = osp.join(ROOT_DIR, 'models')
DEFAULT_EXP_DIR = 'default'


def output_dir(imdb, net=None, exp_dir=DEFAULT_EXP_DIR, root_dir=ROOT_DIR):
    """<root_dir>/output/<exp_dir>/<imdb name>[/<net name>], created if missing. imdb and net may
    be objects with a `name` attribute or plain strings."""
    path = osp.abspath(osp.join(root_dir, 'output', exp_dir, _name_of(imdb)))
    if net is not None:
        path = osp.join(path, _name_of(net))
    os.makedirs(path, exist_ok=True)
    return path


def _name_of(thing):
    return thing if isinstance(thing, str) else thing.name
