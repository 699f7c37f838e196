"""caffe.draw: a NetParameter as a Graphviz picture, as pycaffe's caffe.draw draws it: layers as
boxes (convolution red, pooling orange, inner product purple, others blue; in-place layers
green), blobs as grey octagons, edges bottom -> layer -> top, a top edge labelled with the
layer's num_output. tools/draw_net.py is the command line.

Needs pydot (pip install pydot) and, for pictures, Graphviz's `dot` program; a .dot/.gv/.raw
file name writes the graph's dot text and needs no Graphviz.
"""
import shutil

from .common import CaffeError
from .io import atomic_write
from .proto import caffe_pb2
from .upgrade import upgrade_net

LAYER_STYLE = {'shape': 'box', 'style': 'filled', 'fillcolor': '#6495ED'}
NEURON_LAYER_STYLE = {'shape': 'box', 'style': 'filled', 'fillcolor': '#90EE90'}
BLOB_STYLE = {'shape': 'octagon', 'style': 'filled', 'fillcolor': '#E0E0E0'}
_TYPE_COLORS = {'Convolution': '#FF5050', 'Deconvolution': '#FF5050', 'Pooling': '#FF9900',
                'InnerProduct': '#CC33FF'}
# Formats written as the graph's dot text, without running Graphviz.
TEXT_FORMATS = ('raw', 'dot', 'gv')


def _pydot():
    try:
        import pydot
    except ImportError:
        raise CaffeError('drawing a net needs the Python package pydot: pip install pydot '
                         '(and, for pictures, Graphviz: apt-get install graphviz)') from None
    return pydot


def _require_dot(ext):
    if shutil.which('dot') is None:
        raise CaffeError("drawing a net as .%s needs Graphviz's `dot` program, which is not on "
                         "PATH: install Graphviz (apt-get install graphviz, brew install "
                         "graphviz), or write the graph's text with a .dot file name" % ext)


def choose_color_by_layertype(layertype):
    return _TYPE_COLORS.get(layertype, LAYER_STYLE['fillcolor'])


def get_pooling_types_dict():
    """PoolingParameter.PoolMethod value -> name (0 -> 'MAX', ...)."""
    enum = caffe_pb2.PoolingParameter.PoolMethod
    return {enum.Value(name): name for name in enum.keys()}


def get_edge_label(layer):
    """The label of a layer's top edges: the number of outputs of layers that have one."""
    if layer.type in ('Convolution', 'Deconvolution'):
        return str(layer.convolution_param.num_output)
    if layer.type == 'InnerProduct':
        return str(layer.inner_product_param.num_output)
    return ''


def _first(values, default):
    return values[0] if len(values) else default


def get_layer_label(layer, rankdir):
    """The layer's name and type, and for convolution and pooling their window; on one line per
    item when the graph runs left to right, separated by spaces when it runs top to bottom."""
    separator = ' ' if rankdir in ('TB', 'BT') else '\n'
    if layer.type in ('Convolution', 'Deconvolution'):
        p = layer.convolution_param
        parts = [layer.name, '(%s)' % layer.type,
                 'kernel size: %d' % _first(p.kernel_size, p.kernel_h or 1),
                 'stride: %d' % _first(p.stride, p.stride_h or 1),
                 'pad: %d' % _first(p.pad, p.pad_h)]
    elif layer.type == 'Pooling':
        p = layer.pooling_param
        parts = [layer.name, '(%s %s)' % (get_pooling_types_dict()[p.pool], layer.type),
                 'kernel size: %d' % (p.kernel_size or p.kernel_h),
                 'stride: %d' % (p.stride_h or p.stride), 'pad: %d' % (p.pad_h or p.pad)]
    else:
        parts = [layer.name, '(%s)' % layer.type]
    return separator.join(parts)


def _included(layer, phase):
    """pycaffe's phase rule for drawing: a layer is drawn when an include rule names the phase
    (or it has none) and no exclude rule does."""
    if layer.include and layer.exclude:
        raise ValueError('layer %r has both include and exclude rules' % layer.name)
    if layer.include:
        return any(rule.phase == phase for rule in layer.include)
    return not any(rule.phase == phase for rule in layer.exclude)


def _quoted(text):
    # dot's quoted strings: backslashes and quotes escaped, a newline as \n (centred line).
    return '"%s"' % text.replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')


def get_pydot_graph(caffe_net, rankdir, label_edges=True, phase=None):
    """The pydot graph of a NetParameter. rankdir: 'LR', 'TB', 'BT' or 'RL'; phase:
    caffe.TRAIN or caffe.TEST to draw only that phase's layers, None for all."""
    pydot = _pydot()
    net = upgrade_net(caffe_net)
    graph = pydot.Dot(_quoted(net.name or 'Net'), graph_type='digraph', rankdir=rankdir)
    nodes = {}     # dot node id -> pydot.Node, in drawing order
    edges = []

    def blob_node(name):
        node_id = _quoted('blob ' + name)
        if node_id not in nodes:
            nodes[node_id] = pydot.Node(node_id, label=_quoted(name), **BLOB_STYLE)
        return node_id

    for i, layer in enumerate(net.layer):
        if phase is not None and not _included(layer, phase):
            continue
        node_id = _quoted('layer %d %s' % (i, layer.name))
        in_place = len(layer.bottom) == 1 and list(layer.bottom) == list(layer.top)
        style = dict(NEURON_LAYER_STYLE if in_place else LAYER_STYLE)
        if not in_place:
            style['fillcolor'] = choose_color_by_layertype(layer.type)
        nodes[node_id] = pydot.Node(node_id, label=_quoted(get_layer_label(layer, rankdir)),
                                    **style)
        for bottom in layer.bottom:
            edges.append((blob_node(bottom), node_id, ''))
        label = get_edge_label(layer) if label_edges else ''
        for top in layer.top:
            edges.append((node_id, blob_node(top), label))
    for node in nodes.values():
        graph.add_node(node)
    for src, dst, label in edges:
        graph.add_edge(pydot.Edge(src, dst, label=_quoted(label)))
    return graph


def draw_net(caffe_net, rankdir, ext='png', phase=None):
    """The picture of the net, as the bytes of an `ext` file (png, pdf, svg, ...; dot/gv/raw:
    the graph's dot text)."""
    graph = get_pydot_graph(caffe_net, rankdir, phase=phase)
    if ext in TEXT_FORMATS:
        return graph.to_string().encode()
    _require_dot(ext)
    return graph.create(prog='dot', format=ext)


def draw_net_to_file(caffe_net, filename, rankdir='LR', phase=None):
    """Draws the net into `filename`, in the format its extension names (written atomically)."""
    ext = filename[filename.rfind('.') + 1:] if '.' in filename else 'png'
    atomic_write(filename, draw_net(caffe_net, rankdir, ext, phase))
