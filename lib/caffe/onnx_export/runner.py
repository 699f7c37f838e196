"""OnnxNet: an ONNX model run by ONNX Runtime behind the part of pycaffe's Net that test code
uses: `blobs` (the graph's inputs and outputs by name, each with .data, .shape and .reshape),
`inputs`, `outputs`, `forward(**inputs)` returning {output name: array}, and `name`.

Threads follow the runtime's rules: all cores unless OMP_NUM_THREADS says otherwise, and the
worker threads sleep between runs (no spinning) unless OMP_WAIT_POLICY is ACTIVE, so that
concurrent jobs share the cores.
"""
import collections
import os

import numpy as np

from ..common import CaffeError


class _Value:
    """A named input or output of the graph, as a pycaffe blob's data and shape."""

    def __init__(self, shape=()):
        self.data = np.zeros(shape, dtype=np.float32)

    @property
    def shape(self):
        return self.data.shape

    def reshape(self, *shape):
        shape = tuple(shape[0]) if len(shape) == 1 and not np.isscalar(shape[0]) else shape
        if self.data.shape != shape:
            self.data = np.zeros(shape, dtype=np.float32)


def session_options(threads=None):
    import onnxruntime as ort
    options = ort.SessionOptions()
    if threads is None:
        value = os.environ.get('OMP_NUM_THREADS', '').strip()
        threads = int(value) if value.isdigit() else 0
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if os.environ.get('OMP_WAIT_POLICY', '').upper() != 'ACTIVE':
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    return options


class OnnxNet:
    def __init__(self, path, threads=None):
        import onnxruntime as ort
        if not os.path.isfile(path):
            raise FileNotFoundError(2, 'ONNX model not found', path)
        try:
            self.session = ort.InferenceSession(path, session_options(threads),
                                                providers=['CPUExecutionProvider'])
        except Exception as e:  # ONNX Runtime raises its own types for a bad file
            raise CaffeError('%s: ONNX Runtime cannot load it: %s' % (path, e)) from None
        self.source = path
        self.name = os.path.splitext(os.path.basename(path))[0]
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.blobs = collections.OrderedDict()
        for i in self.session.get_inputs():
            self.blobs[i.name] = _Value([d if isinstance(d, int) else 1 for d in i.shape])
        for name in self.outputs:
            self.blobs.setdefault(name, _Value())

    def forward(self, blobs=None, **kwargs):
        """Runs the graph on the inputs given as keywords (the others from self.blobs); fills
        the output blobs and returns {output: array} (plus the names in `blobs`)."""
        unknown = sorted(set(kwargs) - set(self.inputs))
        if unknown:
            raise CaffeError('%s: %s are not inputs of the graph (inputs: %s)'
                             % (self.source, ', '.join(unknown), ', '.join(self.inputs)))
        feed = {}
        for name in self.inputs:
            value = kwargs[name] if name in kwargs else self.blobs[name].data
            feed[name] = np.ascontiguousarray(value, dtype=np.float32)
            self.blobs[name].data = feed[name]
        results = self.session.run(self.outputs, feed)
        for name, value in zip(self.outputs, results):
            self.blobs[name].data = value
        wanted = list(self.outputs) + [b for b in (blobs or []) if b not in self.outputs]
        return {name: self.blobs[name].data for name in wanted}
