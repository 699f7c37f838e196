"""Caffe nets as ONNX graphs, and a pycaffe-like face for running them in ONNX Runtime.

export_net(net) writes a runtime Net (its layers in order, its weights, its input shapes) as one
ONNX ModelProto: each layer through its converter (layers.CONVERTERS, by type name), Python
layers through the hooks the caller passes (python_layers, keyed 'module.Layer'; the runtime
knows nothing of what a user's Python layer does), weights as initializers. A layer type with no
converter is refused with an ExportError naming the layer and its type.

Caffe names blobs, ONNX names values that are written once: a top written in place (ReLU after a
convolution) gets a new value name each time, and the graph's outputs carry the Caffe blob names.
The inputs keep the net's input names; the axes named in dynamic_axes become symbolic (by
default batch, and height and width of 4-D inputs).

OnnxNet (runner.py) runs the file with ONNX Runtime behind the part of pycaffe's Net interface
that test code uses (blobs, inputs, outputs, forward).
"""
import numpy as np

from .graph import Graph
from .layers import CONVERTERS, ExportError, LayerView

# Opset 19: AveragePool/MaxPool's ceil_mode drops windows that start in the right padding
# (Caffe's rule); RoiAlign has half_pixel coordinates (opset 16).
OPSET = 19

__all__ = ['CONVERTERS', 'ExportError', 'LayerView', 'OPSET', 'build_model', 'export_net',
           'layer_views', 'supported_types']


def supported_types():
    """The Caffe layer types with a converter, sorted ('Python' needs a hook per layer)."""
    return sorted(CONVERTERS)


def layer_views(net):
    """LayerViews of a runtime Net's layers in order (bottoms and tops by Caffe blob name)."""
    views = []
    for i, (name, layer) in enumerate(zip(net._layer_names, net.layers)):
        param = layer.layer_param
        views.append(LayerView(
            name=name, type=param.type, param=param,
            bottoms=list(net.bottom_names[name]), tops=list(net.top_names[name]),
            blobs=[np.asarray(b.data, dtype=np.float32) for b in layer.blobs],
            bottom_shapes=[tuple(b.shape) for b in net.bottom_vecs[i]]))
    return views


def _default_dynamic_axes(shape):
    if len(shape) == 4:
        return {0: 'batch', 2: 'height', 3: 'width'}
    return {0: 'batch'} if shape else {}


def export_net(net, outputs=None, dynamic_axes=None, python_layers=None, metadata=None,
               check=True):
    """A runtime Net (built in the TEST phase) as an ONNX ModelProto.

    outputs: Caffe blob names the graph returns (default net.outputs; a Python layer's tops,
    e.g. proposals, may be added). dynamic_axes: {input name: {axis: dim name}} (default: see
    the module's docstring; an input not named keeps the axes given by default).
    python_layers: {'module.Layer': hook(graph, layer_view)}. metadata: {key: string} written
    into the model. check runs onnx.checker (full_check) on the result.
    """
    from ..layer import TEST
    if net.phase != TEST:
        raise ExportError('%s: only a TEST-phase net is exported (Dropout and BatchNorm run '
                          'their test form)' % net.source)
    dynamic_axes = dict(dynamic_axes or {})
    inputs = []
    for name in net.inputs:
        shape = list(net.blobs[name].shape)
        axes = dynamic_axes.get(name, _default_dynamic_axes(shape))
        inputs.append((name, [axes.get(i, d) for i, d in enumerate(shape)]))
    outputs = [(name, len(net.blobs[name].shape))
               for name in (net.outputs if outputs is None else outputs)]
    return build_model(layer_views(net), inputs, outputs, python_layers=python_layers,
                       metadata=metadata, graph_name=net.name or 'caffe', check=check)


def build_model(views, inputs, outputs, python_layers=None, metadata=None, graph_name='caffe',
                check=True):
    """The ONNX ModelProto of layers `views` (LayerViews, Caffe blob names) given the graph
    inputs [(name, shape)] (a shape entry is a size or a dimension name) and the Caffe blobs to
    output [(name, rank)] (rank None: from ONNX shape inference). Input layers are skipped:
    their tops are the graph's inputs."""
    import onnx
    from onnx import TensorProto, helper

    ranks = dict(outputs)
    outputs = [name for name, _ in outputs]
    input_names = [name for name, _ in inputs]
    missing = [o for o in outputs if not any(o in v.tops for v in views) and
               o not in input_names]
    if missing:
        raise ExportError('no layer produces the output blob(s) %s' % ', '.join(missing))
    g = Graph(reserved=input_names, python_layers=python_layers)
    # The last write of an output blob gets the plain name; every other value a fresh one.
    last_write = {}
    for i, view in enumerate(views):
        for top in view.tops:
            last_write[top] = i
    for name in outputs:
        if name not in input_names and not g.reserve(name):
            raise ExportError('output name %r is used twice' % name)
    current = {name: name for name in input_names}
    for i, view in enumerate(views):
        if view.type == 'Input':
            undeclared = [t for t in view.tops if t not in current]
            if undeclared:
                raise ExportError('Input layer %r: top(s) %s are not graph inputs'
                                  % (view.name, ', '.join(undeclared)))
            continue
        converter = CONVERTERS.get(view.type)
        if converter is None:
            raise ExportError('layer %r of type %s has no ONNX form (exported types: %s)'
                              % (view.name, view.type, ', '.join(supported_types())))
        try:
            bottoms = [current[b] for b in view.bottoms]
        except KeyError as e:
            raise ExportError('layer %r reads blob %s, which nothing before it produces'
                              % (view.name, e)) from None
        tops = [t if (t in outputs and last_write[t] == i and t not in input_names)
                else g.fresh(t) for t in view.tops]
        onnx_view = LayerView(view.name, view.type, view.param, bottoms, tops, view.blobs,
                              view.bottom_shapes)
        g.scope = view.name
        aliases = converter(g, onnx_view)
        if aliases is not None:
            if len(aliases) != len(tops):
                raise onnx_view.error('converter gave %d values for %d tops'
                                      % (len(aliases), len(tops)))
            tops = list(aliases)
        for caffe_name, value in zip(view.tops, tops):
            current[caffe_name] = value
    g.scope = ''
    for name in outputs:
        if current[name] != name:
            # An output that is another value (an alias, or a graph input): named by Identity.
            if name in input_names:
                raise ExportError('output %r is also an input of the net (a layer writes its '
                                  'input in place); an ONNX graph cannot give a changed input '
                                  'back under its name' % name)
            g.op('Identity', [current[name]], [name])

    def value_info(name, shape):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    def output_shape(name):
        rank = ranks[name]
        return None if rank is None else ['%s_%d' % (name, i) for i in range(rank)]

    model = helper.make_model(
        helper.make_graph(g.nodes, graph_name,
                          [value_info(name, shape) for name, shape in inputs],
                          [value_info(name, output_shape(name)) for name in outputs]),
        opset_imports=[helper.make_opsetid('', OPSET)],
        producer_name='py-faster-rcnn caffe runtime (lib/caffe)')
    g.write_initializers(model.graph)
    # Readers as old as ONNX Runtime 1.14 take IR version 9.
    model.ir_version = min(model.ir_version, 9)
    if any(rank is None for rank in ranks.values()):
        # Outputs of unknown rank take the type shape inference gives them.
        inferred = onnx.shape_inference.infer_shapes(model)
        types = {o.name: o.type for o in inferred.graph.output}
        types.update({v.name: v.type for v in inferred.graph.value_info})
        for output in model.graph.output:
            if ranks[output.name] is None:
                if output.name not in types:
                    raise ExportError('the rank of output %r is unknown' % output.name)
                output.type.CopyFrom(types[output.name])
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=str(key), value=str(value))
    if check:
        onnx.checker.check_model(model, full_check=True)
    return model
