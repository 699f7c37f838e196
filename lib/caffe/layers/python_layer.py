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


def _trusted_entries():
    """lib/ and the user's PYTHONPATH: Python layers are meant to come from there."""
    entries = [_LIB] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
    return {_real(p) for p in entries}


def _refused_entries():
    """sys.path entries a prototxt must not pull code from: the working directory (first on
    sys.path for `python -c`, `-m` and interactive sessions) and the standard library and
    site-packages. Folders a program puts on sys.path itself stay usable."""
    paths = sysconfig.get_paths()
    entries = [os.getcwd()] + [paths[k] for k in ('stdlib', 'platstdlib', 'purelib', 'platlib')]
    try:
        entries += site.getsitepackages() + [site.getusersitepackages()]
    except AttributeError:  # some virtualenvs' site module lacks these
        pass
    return {_real(p) for p in entries}


def _check_origin(module, where):
    """Raises CaffeError when the import of `module` would run a top-level module or package
    found through a refused sys.path entry (see _refused_entries). Only the top level is looked
    up: finding a submodule would already run its parents' code."""
    top = module.split('.')[0]
    if top in sys.modules:
        return  # already imported: importing it again runs nothing
    for entry in sys.path:
        try:
            spec = importlib.machinery.PathFinder.find_spec(top, [entry or os.curdir])
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            continue
        real = _real(entry)
        if real not in _trusted_entries() and real in _refused_entries():
            raise CaffeError('%s: module %r was found in %s, outside lib/ and PYTHONPATH; '
                             'Python layers are imported only from there (add its folder to '
                             'PYTHONPATH if you trust it)' % (where, top, spec.origin or entry))
        return


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
