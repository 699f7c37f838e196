"""The project's compiled extensions (Cython, built in place by `make`), imported with one error
message for all of them when they are not built."""
import importlib


class ExtensionNotBuilt(ImportError):
    """A compiled module of lib/ is missing or stale: `make` builds it."""


def load_extension(name):
    """Imports the compiled module `name` (e.g. 'utils.cython_bbox'); raises ExtensionNotBuilt
    saying how to build it when that fails."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ExtensionNotBuilt('the compiled extension %s is not built or does not load (%s); '
                                'run `make` in the repository root' % (name, e)) from e
