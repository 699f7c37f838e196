"""An ONNX graph under construction: nodes, weights and constants, and the names of its values.

Layer converters (layers.py) and Python-layer hooks add nodes through Graph.op and constants
through Graph.const; they name nothing themselves except the tops they were asked to produce.
Node and value names start with the Caffe layer's name (Graph.scope), so a viewer such as Netron
shows which layer each node came from.
"""
import numpy as np
from onnx import helper

# Constants up to this many elements are shared between the nodes that use the same value (the
# axes, shape pieces and scalars converters ask for again and again); weights never are.
_SHARED_CONST_SIZE = 16


class Graph:
    def __init__(self, reserved=(), python_layers=None):
        # Exporter hooks for Python layers, {'module.Layer': hook(graph, layer_view)}.
        self.python_layers = dict(python_layers or {})
        self.nodes = []
        self.initializers = []   # (name, array)
        self.scope = ''
        self._used = set(reserved)
        self._shared = {}

    # Names ---------------------------------------------------------------------------------------
    def fresh(self, base):
        """A value or node name not used yet: base, else base_1, base_2, ..."""
        name, k = base, 0
        while name in self._used:
            k += 1
            name = '%s_%d' % (base, k)
        self._used.add(name)
        return name

    def reserve(self, name):
        """Claims name for a value made later (a graph output); False if it is taken."""
        if name in self._used:
            return False
        self._used.add(name)
        return True

    def _scoped(self, what):
        return '%s/%s' % (self.scope, what) if self.scope else what

    # Nodes ---------------------------------------------------------------------------------------
    def op(self, op_type, inputs, outputs=None, num_outputs=1, **attrs):
        """Adds one node; returns its output name (a list of them for several outputs). outputs
        names them (names the caller reserved); otherwise they get fresh names. An input of ''
        is an omitted optional input."""
        if outputs is None:
            outputs = [self.fresh(self._scoped(op_type)) for _ in range(num_outputs)]
        node = helper.make_node(op_type, list(inputs), list(outputs),
                                name=self.fresh(self._scoped(op_type) + ':node'), **attrs)
        self.nodes.append(node)
        return outputs[0] if len(outputs) == 1 else list(outputs)

    def const(self, value, dtype=np.float32, name=None):
        """An initializer holding value (as dtype). Small constants are made once and shared;
        name (default 'const') is only the base of the initializer's name."""
        array = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        key = None
        if array.size <= _SHARED_CONST_SIZE and name is None:
            key = (array.dtype.str, array.shape, array.tobytes())
            if key in self._shared:
                return self._shared[key]
        tensor_name = self.fresh(self._scoped(name or 'const'))
        self.initializers.append((tensor_name, array))
        if key is not None:
            self._shared[key] = tensor_name
        return tensor_name

    def write_initializers(self, graph_proto):
        """Adds the constants to a GraphProto in place (weights are large: one copy each)."""
        for name, array in self.initializers:
            tensor = graph_proto.initializer.add()
            tensor.name = name
            tensor.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
            tensor.dims.extend(array.shape)
            tensor.raw_data = array.astype(array.dtype.newbyteorder('<'), copy=False).tobytes()

    def ints(self, values):
        """An int64 1-D constant (axes, shapes, starts and ends)."""
        return self.const(np.asarray(values, dtype=np.int64).reshape(-1), np.int64)

    # Shapes --------------------------------------------------------------------------------------
    def dims(self, x, start, end=None):
        """Shape(x)[start:end] as an int64 1-D value (end None: to the last axis)."""
        shape = self.op('Shape', [x])
        if start == 0 and end is None:
            return shape
        return self.op('Slice', [shape, self.ints([start]),
                                 self.ints([end if end is not None else np.iinfo(np.int64).max])])

    def dim(self, x, axis):
        """Shape(x)[axis] as an int64 1-D value of one element."""
        return self.dims(x, axis, axis + 1)

    def concat_shape(self, parts):
        """An int64 shape from pieces: int64 values, or lists of ints made into constants."""
        values = [p if isinstance(p, str) else self.ints(p) for p in parts]
        return values[0] if len(values) == 1 else self.op('Concat', values, axis=0)
