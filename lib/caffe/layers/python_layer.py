"""Python layers (type "Python"): python_param.module names a module on sys.path and
python_param.layer a caffe.Layer subclass in it, as in pycaffe. The type's creator (registered
at the bottom, as Caffe's layer_factory registers GetPythonLayer) imports that class."""
import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import site
import sys
import sysconfig

from ..common import CaffeError
from ..layer import Layer, register_creator

_LIB = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _real(path):
    return os.path.realpath(os.path.abspath(path or os.curdir))


def _main_script_folder():
    """The folder of the script Python runs (`python train.py`), which Python puts first on
    sys.path: a layer module beside the user's own script is that script's, not the working
    directory's, even when the script is run from its folder. None for -c, -m and interactive
    sessions, whose first sys.path entry is the working directory."""
    main = sys.modules.get('__main__')
    script = getattr(main, '__file__', None)
    if not script or not sys.path or os.path.basename(script) == '__main__.py':
        return None
    folder = _real(os.path.dirname(script))
    return folder if sys.path[0] and _real(sys.path[0]) == folder else None


def _trusted_entries():
    """lib/, the user's PYTHONPATH and the running script's folder: Python layers are meant to
    come from there."""
    entries = [_LIB] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
    trusted = {_real(p) for p in entries}
    script_folder = _main_script_folder()
    if script_folder:
        trusted.add(script_folder)
    return trusted


def _refused_entries():
    """sys.path entries a prototxt must not pull code from, each with what it is: the working
    directory (first on sys.path for `python -c`, `-m` and interactive sessions) and the standard
    library and site-packages. Folders a program puts on sys.path itself stay usable."""
    paths = sysconfig.get_paths()
    refused = {}
    for key in ('purelib', 'platlib'):
        refused[_real(paths[key])] = 'site-packages'
    try:
        for entry in site.getsitepackages() + [site.getusersitepackages()]:
            refused[_real(entry)] = 'site-packages'
    except AttributeError:  # some virtualenvs' site module lacks these
        pass
    for key in ('stdlib', 'platstdlib'):
        refused[_real(paths[key])] = 'the standard library'
    refused[_real(os.getcwd())] = 'the working directory'
    return refused


def _check_origin(module, where):
    """Raises CaffeError when importing `module` would run code found through a refused sys.path
    entry (see _refused_entries). Every level of the dotted name is looked up, without running
    anything, down to the first one not yet imported: a package already imported (google, for
    protobuf) may still find a new submodule in the working directory (a ./google/evil.py through
    google's namespace path), so its parent's origin says nothing about it."""
    parts = module.split('.')
    search = None  # the top level is searched on sys.path
    for depth in range(1, len(parts) + 1):
        name = '.'.join(parts[:depth])
        loaded = sys.modules.get(name)
        if loaded is not None:
            search = getattr(loaded, '__path__', None)
            if search is None:
                return  # a module, not a package: the import will fail, running nothing
            continue
        spec = _find_spec(parts[depth - 1], search)
        if spec is None:
            return  # not found: the import will fail with its own error
        refused = _refused_entries()
        for location in _spec_locations(spec):
            entry = _sys_path_entry(location)
            if entry in refused and entry not in _trusted_entries():
                raise CaffeError(
                    '%s: module %r was found in %s, through %s (%s), which Python layers are not '
                    'imported from (a prototxt must not run whatever file it names there); to '
                    'allow it, put that folder on PYTHONPATH (PYTHONPATH=%s:$PYTHONPATH)'
                    % (where, name, location, refused[entry], entry, entry))
        search = spec.submodule_search_locations
        if search is None:
            return


def _find_spec(name, search):
    try:
        if search is None:
            return importlib.machinery.PathFinder.find_spec(
                name, [entry or os.curdir for entry in sys.path])
        return importlib.machinery.PathFinder.find_spec(name, list(search))
    except (ImportError, ValueError):
        return None


def _spec_locations(spec):
    """The files or folders a module or package would be loaded from."""
    if spec.origin and spec.has_location:
        return [spec.origin]
    return list(spec.submodule_search_locations or [])


def _sys_path_entry(location):
    """The deepest sys.path entry (or trusted folder) that holds `location`, real paths; the
    location's own folder when none does."""
    real = _real(location)
    candidates = {_real(entry) for entry in sys.path} | _trusted_entries()
    holders = [c for c in candidates if real == c or real.startswith(c.rstrip(os.sep) + os.sep)]
    return max(holders, key=len) if holders else os.path.dirname(real)


def python_layer_class(layer_param):
    p = layer_param.python_param
    where = ('Python layer %r (python_param module %r, layer %r)'
             % (layer_param.name, p.module, p.layer))
    if not p.module or not p.layer:
        raise CaffeError('%s: python_param needs both module and layer' % where)
    _check_origin(p.module, where)
    try:
        module = importlib.import_module(p.module)
    except Exception as e:  # a failing import of user code, whatever it raises
        raise CaffeError('%s: cannot import module %r: %s: %s (is its folder on PYTHONPATH?)'
                         % (where, p.module, type(e).__name__, e)) from e
    cls = getattr(module, p.layer, None)
    if cls is None:
        raise CaffeError('%s: module %r (%s) has no attribute %r'
                         % (where, p.module, getattr(module, '__file__', '?'), p.layer))
    if not (inspect.isclass(cls) and issubclass(cls, Layer)):
        raise CaffeError('%s: %s.%s is not a subclass of caffe.Layer' % (where, p.module, p.layer))
    return cls


register_creator('Python', python_layer_class)
