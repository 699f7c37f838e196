"""Python layers (type "Python"): python_param.module names a module on sys.path and
python_param.layer a caffe.Layer subclass in it, as in pycaffe. This module is not a
registered type; caffe.layer.layer_class calls python_layer_class for every Python layer."""
import importlib
import inspect

from ..common import CaffeError
from ..layer import Layer


def python_layer_class(layer_param):
    p = layer_param.python_param
    where = ('Python layer %r (python_param module %r, layer %r)'
             % (layer_param.name, p.module, p.layer))
    if not p.module or not p.layer:
        raise CaffeError('%s: python_param needs both module and layer' % where)
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
