"""Built-in layer types: importing this package registers every one of them."""
import importlib
import os
import pkgutil

for _info in pkgutil.iter_modules([os.path.dirname(__file__)]):
    importlib.import_module('.' + _info.name, __name__)
