"""Python layers (type "Python"): python_param.module names a module on sys.path and
python_param.layer a caffe.Layer subclass in it, as in pycaffe. This module is not a
registered type; caffe.layer.layer_class calls python_layer_class for every Python layer."""
import importlib
import importlib.util
import inspect
import os
import sys

from ..common import STARTUP_SYS_PATH, CaffeError
from ..layer import Layer

_LIB = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _allowed_roots():
    """Folders Python layers may be imported from: lib/, the user's PYTHONPATH, and folders the
    program put on sys.path after start-up. Not the working directory, nor the standard library:
    a prototxt is data, and loading one must not run whatever module its text names."""
    roots = {_LIB}
    roots.update(p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p)
    roots.update(p for p in sys.path if p not in STARTUP_SYS_PATH)
    return {os.path.realpath(os.path.abspath(p or os.curdir)) for p in roots}


def _check_origin(module, where):
    """Raises CaffeError unless the top-level package of `module` lies under an allowed root.
    Only the top level is looked up: finding a submodule would run its parents' code."""
    top = module.split('.')[0]
    if top in sys.modules:
        return  # already imported: importing it again runs nothing
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return  # import_module reports it as not found
    locations = list(spec.submodule_search_locations or []) or [spec.origin or '']
    roots = _allowed_roots()
    for location in locations:
        path = os.path.realpath(os.path.abspath(location))
        if not any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots):
            raise CaffeError('%s: module %r was found at %s, outside lib/ and PYTHONPATH; '
                             'Python layers are imported only from there (add its folder to '
                             'PYTHONPATH if you trust it)' % (where, top, location))


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
