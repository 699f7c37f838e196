"""caffe.draw and tools/draw_net.py: the graph's nodes and edges, phase selection, the dot text
written without Graphviz, and one clear error when pydot or Graphviz's dot is missing."""
import os
import shutil
import subprocess
import sys

import pytest
from google.protobuf import text_format

import caffe
from caffe.proto import caffe_pb2

pydot = pytest.importorskip('pydot')
import caffe.draw  # noqa: E402  (after the skip: the module's functions need pydot)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NET = '''
name: "small"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: AVE kernel_size: 2 stride: 2 } include { phase: TRAIN } }
layer { name: "ip" type: "InnerProduct" bottom: "conv1" top: "ip"
        inner_product_param { num_output: 10 } exclude { phase: TRAIN } }
'''


def net():
    return text_format.Parse(NET, caffe_pb2.NetParameter())


def _unquote(name):
    return name.strip('"')


def _graph(graph):
    """{node name: attributes} and [(src, dst, label)] of a pydot graph."""
    nodes = {_unquote(n.get_name()): n.get_attributes() for n in graph.get_nodes()}
    edges = [(_unquote(e.get_source()), _unquote(e.get_destination()),
              _unquote(e.get_attributes().get('label', ''))) for e in graph.get_edges()]
    return nodes, edges


def test_graph_nodes_edges_labels_and_colors():
    nodes, edges = _graph(caffe.draw.get_pydot_graph(net(), 'LR'))
    layers = {k for k in nodes if k.startswith('layer')}
    blobs = {k for k in nodes if k.startswith('blob')}
    assert layers == {'layer 0 data', 'layer 1 conv1', 'layer 2 relu1', 'layer 3 pool1',
                      'layer 4 ip'}
    assert blobs == {'blob data', 'blob conv1', 'blob pool1', 'blob ip'}
    assert nodes['layer 1 conv1']['fillcolor'] == '#FF5050'
    assert nodes['layer 2 relu1']['fillcolor'] == '#90EE90'         # in place
    assert nodes['layer 3 pool1']['fillcolor'] == '#FF9900'
    assert nodes['layer 4 ip']['fillcolor'] == '#CC33FF'
    assert nodes['blob data']['shape'] == 'octagon'
    label = _unquote(nodes['layer 1 conv1']['label'])
    assert label == r'conv1\n(Convolution)\nkernel size: 3\nstride: 2\npad: 1'
    assert _unquote(nodes['layer 3 pool1']['label']).startswith(r'pool1\n(AVE Pooling)')
    assert ('layer 1 conv1', 'blob conv1', '4') in edges              # num_output on the top
    assert ('blob data', 'layer 1 conv1', '') in edges
    assert ('blob conv1', 'layer 2 relu1', '') in edges
    assert ('layer 2 relu1', 'blob conv1', '') in edges
    assert ('layer 4 ip', 'blob ip', '10') in edges
    assert len(edges) == 9
    vertical, _ = _graph(caffe.draw.get_pydot_graph(net(), 'TB'))
    assert _unquote(vertical['layer 2 relu1']['label']) == 'relu1 (ReLU)'


def test_phase_selects_layers():
    train, _ = _graph(caffe.draw.get_pydot_graph(net(), 'LR', phase=caffe.TRAIN))
    test, _ = _graph(caffe.draw.get_pydot_graph(net(), 'LR', phase=caffe.TEST))
    assert 'layer 3 pool1' in train and 'layer 4 ip' not in train
    assert 'layer 3 pool1' not in test and 'layer 4 ip' in test


def test_dot_text_needs_no_graphviz(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, 'which', lambda name: None)
    out = str(tmp_path / 'net.dot')
    caffe.draw.draw_net_to_file(net(), out)
    text = open(out).read()
    assert text.startswith('digraph "small"') and '"blob conv1" -> "layer 2 relu1"' in text
    with pytest.raises(caffe.CaffeError, match="Graphviz's `dot` program.*apt-get install "
                                               "graphviz"):
        caffe.draw.draw_net_to_file(net(), str(tmp_path / 'net.png'))
    assert not os.path.exists(str(tmp_path / 'net.png'))


def test_missing_pydot_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, 'pydot', None)
    with pytest.raises(caffe.CaffeError, match='pip install pydot'):
        caffe.draw.get_pydot_graph(net(), 'LR')


@pytest.mark.skipif(shutil.which('dot') is None, reason="Graphviz's dot is not installed")
def test_png_through_graphviz(tmp_path):
    out = str(tmp_path / 'net.png')
    caffe.draw.draw_net_to_file(net(), out, 'TB')
    assert open(out, 'rb').read(8) == b'\x89PNG\r\n\x1a\n'


def test_draw_net_tool(tmp_path):
    prototxt = tmp_path / 'net.prototxt'
    prototxt.write_text(NET)
    out = tmp_path / 'net.dot'
    run = subprocess.run([sys.executable, os.path.join(ROOT, 'tools', 'draw_net.py'),
                          str(prototxt), str(out), '--phase', 'TEST', '--rankdir', 'TB'],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    text = out.read_text()
    assert 'rankdir=TB' in text and '"layer 4 ip"' in text and '"layer 3 pool1"' not in text
    run = subprocess.run([sys.executable, os.path.join(ROOT, 'tools', 'draw_net.py'),
                          str(tmp_path / 'missing.prototxt'), str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stderr.strip().startswith('error: Could not open file')
