"""Which algorithm the CPU Convolution layer uses, layer by layer.

Caffe's ConvolutionParameter.engine picks, as it does between Caffe's and cuDNN's layers:

- CAFFE: im2col + one matrix product per group (convolution.py), Caffe's own CPU algorithm,
  whose float32 results this runtime matches.
- DEFAULT (and CUDNN, which has no meaning on the CPU): the runtime chooses by shape, as cuDNN
  chooses its algorithm on the GPU. Under the process's policy (below, 'auto' by default) a
  3x3, stride-1, dilation-1, one-group layer with enough channels runs Winograd's F(2x2, 3x3)
  (winograd.py) forward and for the data gradient, and its weight gradient as F(3x3, 2x2);
  every other shape runs im2col.

The policy, for every DEFAULT layer of the process: CAFFE_CPU_CONV in the environment, or
set_policy():

- 'auto' (default): F(2x2, 3x3) where the shape rule says it is faster. Its float32 error
  against a float64 reference is about twice im2col's, some 5e-7 of a layer's largest output
  on VGG16's layers, well inside the 1e-5 that the golden checks allow
  (docs/cpu_performance.md, "Convolution algorithms").
- 'winograd4': F(4x4, 3x3) instead (4 times fewer multiplications than im2col, against 2.25
  times), faster again but about ten times the error (some 1e-5 of the largest output: at the
  golden checks' limit, so not the default).
- 'im2col': every layer as with engine CAFFE.

The GPU path runs cuDNN whatever the engine (cuDNN's own algorithm choice, float32 math).
"""
import os

from ..common import CaffeError
from . import winograd

POLICIES = ('auto', 'winograd4', 'im2col')
ENVIRONMENT = 'CAFFE_CPU_CONV'
ENGINE_CAFFE = 1  # ConvolutionParameter.Engine.CAFFE

# Smallest channel counts (input and output) for which Winograd beats im2col: below them the
# transforms, which cost per channel what the products cost per channel pair, outweigh the
# products they save (measured with tools/benchmark_conv_cpu.py --algorithms).
MIN_CHANNELS = 16


def _from_environment():
    name = os.environ.get(ENVIRONMENT, 'auto').strip().lower() or 'auto'
    if name not in POLICIES:
        raise CaffeError('%s=%r: expected one of %s' % (ENVIRONMENT, name, ', '.join(POLICIES)))
    return name


_policy = None


def policy():
    """The process's policy for DEFAULT-engine layers (CAFFE_CPU_CONV read on first use)."""
    global _policy
    if _policy is None:
        _policy = _from_environment()
    return _policy


def set_policy(name):
    """Sets the policy of every DEFAULT-engine Convolution layer from its next reshape on."""
    global _policy
    if name not in POLICIES:
        raise CaffeError('convolution policy %r: expected one of %s' % (name, ', '.join(POLICIES)))
    _policy = name


def winograd_tile(engine, kernel, stride, dilation, group, channels, num_output):
    """The Winograd output tile (2 or 4) a layer of this shape runs with, or 0 for im2col."""
    if engine == ENGINE_CAFFE or not winograd.available():
        return 0
    name = policy()
    if name == 'im2col':
        return 0
    if kernel != (3, 3) or stride != (1, 1) or dilation != (1, 1) or group != 1:
        return 0
    if min(channels, num_output) < MIN_CHANNELS:
        return 0
    return 4 if name == 'winograd4' else 2
