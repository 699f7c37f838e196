"""Puts lib/ first on sys.path so `import caffe` (and the detection packages) resolve to this project."""
import os
import sys

LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'lib')
if LIB not in sys.path:
    sys.path.insert(0, LIB)
