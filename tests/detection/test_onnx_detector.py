"""Faster R-CNN test nets exported to ONNX (fast_rcnn.onnx_model, rpn.proposal_onnx) give the
runtime's outputs: the same RoIs (to 1e-3 pixel), cls_prob and bbox_pred to 1e-4 of their
largest magnitude, on several image sizes through one graph.

The release's nets get random weights scaled layer by layer (calibrated) so that every
convolution's output has unit spread and the RPN's deltas a realistic one: with plain random
weights the activations explode, every box is clipped to the whole image and one RoI survives
NMS, which would test nothing. A model trained for a few iterations stands for a trained one
(its scores are saturated and tied where random ones are not); tests/test_onnx_tools.py runs the
tools on it."""
import json
import os

import numpy as np
import pytest
from google.protobuf import text_format

import caffe
from caffe.proto import caffe_pb2
from core.anchors import generate_anchors
from fast_rcnn import test_settings
from fast_rcnn.onnx_model import TEST_SETTINGS_KEY, compare, export_detector, write_model
from rpn.proposal_onnx import METADATA_KEY, ProposalExport

pytest.importorskip('onnxruntime')
from caffe.onnx_export.runner import OnnxNet  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(ROOT, 'models')
ROI_TOLERANCE = 1e-3       # pixels
OUTPUT_TOLERANCE = 1e-4    # of the output's largest magnitude


def randomize(net, seed):
    r = np.random.RandomState(seed)
    for layer in net.layers:
        blobs, kind = layer.blobs, layer.layer_param.type
        if kind == 'BatchNorm':
            channels, weight = blobs[0].data.shape[0], r.uniform(0.5, 2)
            blobs[0].data[...] = r.randn(channels) * 0.1 * weight
            blobs[1].data[...] = r.uniform(0.5, 1.5, channels) * weight
            blobs[2].data[...] = weight
        elif kind == 'Scale':
            blobs[0].data[...] = r.uniform(0.5, 1.0, blobs[0].data.shape)
            if len(blobs) > 1:
                blobs[1].data[...] = r.randn(*blobs[1].data.shape) * 0.1
        else:
            for b in blobs:
                b.data[...] = r.randn(*b.data.shape)


def calibrated(net, inputs, seed=0, spreads=(('rpn_bbox_pred', 0.2),)):
    """Random weights, then each convolution and inner product (in net order) rescaled so its
    output on `inputs` has standard deviation 1 (or the given spread)."""
    randomize(net, seed)
    spreads = dict(spreads)
    feed(net, inputs)
    done = 0
    for i, (name, layer) in enumerate(zip(net._layer_names, net.layers)):
        if layer.layer_param.type not in ('Convolution', 'InnerProduct'):
            continue
        net.forward_from_to(done, i)
        spread = float(net.top_vecs[i][0].data.std())
        for b in layer.blobs:
            b.data[...] *= spreads.get(name, 1.0) / spread
        done = i
    return net


def feed(net, inputs):
    for name, value in inputs.items():
        net.blobs[name].reshape(*value.shape)
        net.blobs[name].data[...] = value


def image_inputs(height, width, seed, scale=1.5):
    r = np.random.RandomState(seed)
    return {'data': r.uniform(-110, 130, (1, 3, height, width)).astype(np.float32),
            'im_info': np.array([[height, width, scale]], np.float32)}


def differences(net, onnx_net, inputs):
    """(RoI count, max RoI difference in pixels, {output: max difference / max magnitude}),
    RoIs compared as sets (fast_rcnn.onnx_model.compare): proposals whose scores tie within
    float32 rounding may come out in another order, or the other of two such may survive NMS.
    At most 2% of them may, and then the rest must agree."""
    report = compare(net, onnx_net, inputs)
    assert all(r['same_shape'] for r in report.values()), report
    count = report['rois']['shape'][0] if 'rois' in report else 0
    roi_diff = report['rois']['max_abs_diff'] if 'rois' in report else 0.0
    if 'rois' in report:
        rois = report['rois']
        assert rois['reordered'] + rois['unmatched'] <= max(2, count // 50), rois
        if rois['reordered'] or rois['unmatched']:
            print('(of %d RoIs %d in another order, %d not in the graph\'s)'
                  % (count, rois['reordered'], rois['unmatched']))
    return count, roi_diff, {k: r['max_rel_diff'] for k, r in report.items() if k != 'rois'}


def exported(net, tmp_path):
    path = str(tmp_path / 'net.onnx')
    write_model(export_detector(net), path)  # onnx.checker (full) runs inside
    return OnnxNet(path)


def check_equal(net, onnx_net, sizes, seed=10, min_rois=20):
    for k, (height, width) in enumerate(sizes):
        count, roi_diff, relative = differences(net, onnx_net,
                                                image_inputs(height, width, seed + k))
        print('%dx%d: %d rois, max roi diff %.2g px, %s' % (
            height, width, count, roi_diff,
            ', '.join('%s %.2g' % kv for kv in sorted(relative.items()))))
        assert count >= min_rois
        assert roi_diff <= ROI_TOLERANCE
        assert all(v <= OUTPUT_TOLERANCE for v in relative.values()), relative


# The proposal layer ----------------------------------------------------------------------------

def param_str(**params):
    """A proposal layer's param_str (a Python-style dict, as the release writes them)."""
    return '{%s}' % ', '.join('%r: %r' % kv for kv in params.items())


def test_the_graph_carries_the_layers_param_str_settings(tmp_path):
    net = proposal_net(param_str(feat_stride=8, scales=[2, 4, 6], ratios=[0.5, 1, 3],
                                 post_nms_top_n=7,
                                 nms_thresh=0.5), 4, 4)
    settings = json.loads(exported(net, tmp_path).metadata[METADATA_KEY])['proposal']
    # What the param_str leaves out is the paper's test-time rule (Sec. 3.3): 6000 before NMS,
    # a min size of 16, NMS on.
    assert settings == {'feat_stride': 8, 'pre_nms_top_n': 6000, 'post_nms_top_n': 7,
                        'nms_thresh': 0.5, 'min_size': 16, 'no_nms': False, 'mode': 'rpn',
                        'anchors': generate_anchors(ratios=np.array([0.5, 1.0, 3.0]),
                                                    scales=np.array([2.0, 4.0, 6.0])).tolist()}


def proposal_net(param_str, height, width):
    text = ('input: "scores" input_shape { dim: 1 dim: 18 dim: %d dim: %d } '
            'input: "deltas" input_shape { dim: 1 dim: 36 dim: %d dim: %d } '
            'input: "im_info" input_shape { dim: 1 dim: 3 } '
            'layer { name: "proposal" type: "Python" bottom: "scores" bottom: "deltas" '
            'bottom: "im_info" top: "rois" top: "roi_scores" python_param { '
            'module: "rpn.proposal_layer" layer: "ProposalLayer" param_str: "%s" } }'
            % (height, width, height, width, param_str))
    return caffe.Net(text_format.Parse(text, caffe_pb2.NetParameter()), caffe.TEST)


def proposal_inputs(r, height, width, scale, stride):
    probs = r.uniform(0, 1, (1, 9, height, width))
    probs[:, :, ::2] = np.round(probs[:, :, ::2] * 8) / 8  # many exact ties
    return {'scores': np.concatenate([1 - probs, probs], axis=1).astype(np.float32),
            'deltas': r.normal(0, 0.4, (1, 36, height, width)).astype(np.float32),
            'im_info': np.array([[height * stride, width * stride, scale]], np.float32)}


@pytest.mark.parametrize('params', [
    {},
    {'pre_nms_top_n': 300, 'post_nms_top_n': 50, 'min_size': 8},
    {'pre_nms_top_n': 0, 'post_nms_top_n': 0, 'nms_thresh': 0.5},
    {'no_nms': True, 'pre_nms_top_n': 500, 'post_nms_top_n': 100},
    {'mode': 'no_reg'},
    {'feat_stride': 8, 'scales': [1, 2, 4], 'pre_nms_top_n': 200, 'post_nms_top_n': 20},
])
def test_proposal_graph_equals_the_proposal_layer(tmp_path, params):
    params = dict({'feat_stride': 16}, **params)
    stride = params['feat_stride']
    net = proposal_net(param_str(**params), 7, 9)
    onnx_net = exported(net, tmp_path)
    settings = json.loads(onnx_net.metadata[METADATA_KEY])['proposal']
    assert settings['pre_nms_top_n'] == params.get('pre_nms_top_n', 6000)
    r = np.random.RandomState(2)
    for height, width, scale in ((7, 9, 1.0), (12, 5, 1.6), (20, 31, 0.8)):
        inputs = proposal_inputs(r, height, width, scale, stride)
        feed(net, inputs)
        net.forward(**inputs)
        got = onnx_net.forward(**inputs)
        for top in ('rois', 'roi_scores'):
            assert got[top].shape == net.blobs[top].data.shape, top
            np.testing.assert_allclose(got[top], net.blobs[top].data, rtol=0, atol=1e-3)
        assert got['rois'].shape[0] > 10


def test_an_image_without_proposals_gives_empty_outputs(tmp_path):
    net = proposal_net(param_str(feat_stride=16, min_size=10000), 4, 4)
    onnx_net = exported(net, tmp_path)
    inputs = proposal_inputs(np.random.RandomState(3), 4, 4, 1.0, 16)
    got = onnx_net.forward(**inputs)
    assert got['rois'].shape == (0, 5) and got['roi_scores'].shape == (0, 1)


def test_random_proposals_and_batches_are_refused(tmp_path):
    from caffe.onnx_export import ExportError
    with pytest.raises(ExportError, match="'proposal' \\(Python\\).*no_cls"):
        export_detector(proposal_net(param_str(feat_stride=16, mode='no_cls'), 4, 4))


# The release's nets ----------------------------------------------------------------------------

def release_net(relative, height=128, width=160):
    net = caffe.Net(os.path.join(MODELS, relative), caffe.TEST)
    return calibrated(net, image_inputs(height, width, seed=0))


def test_zf_end2end(tmp_path):
    net = release_net('pascal_voc/ZF/faster_rcnn_end2end/test.prototxt')
    onnx_net = exported(net, tmp_path)
    assert onnx_net.inputs == ['data', 'im_info']
    assert sorted(onnx_net.outputs) == ['bbox_pred', 'cls_prob', 'rois']
    check_equal(net, onnx_net, [(128, 160), (144, 112), (96, 224), (600, 1000)])


@pytest.mark.slow
def test_vgg16_end2end(tmp_path):
    net = release_net('pascal_voc/VGG16/faster_rcnn_end2end/test.prototxt')
    check_equal(net, exported(net, tmp_path), [(128, 160), (112, 144), (600, 800)])


@pytest.mark.slow
def test_resnet50_end2end(tmp_path):
    net = release_net('pascal_voc/ResNet-50/faster_rcnn_end2end/test.prototxt')
    check_equal(net, exported(net, tmp_path), [(128, 160), (112, 144)])


def test_toy_nonapprox_net_with_roi_warping(tmp_path):
    net = release_net('toy/TOY/faster_rcnn_end2end_nonapprox/test.prototxt')
    check_equal(net, exported(net, tmp_path), [(128, 160), (96, 208)])


def test_rpn_only_net_outputs_proposals_and_scores(tmp_path):
    net = release_net('pascal_voc/ZF/faster_rcnn_alt_opt/rpn_test.pt')
    onnx_net = exported(net, tmp_path)
    assert sorted(onnx_net.outputs) == ['rois', 'scores']
    check_equal(net, onnx_net, [(128, 160), (160, 128)])


def test_fast_rcnn_net_takes_rois(tmp_path):
    net = caffe.Net(os.path.join(MODELS, 'pascal_voc/ZF/fast_rcnn/test.prototxt'), caffe.TEST)
    r = np.random.RandomState(4)

    def inputs(height, width, count):
        xs = np.sort(r.uniform(0, width, (count, 2)), axis=1)
        ys = np.sort(r.uniform(0, height, (count, 2)), axis=1)
        rois = np.stack([np.zeros(count), xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], axis=1)
        return {'data': r.uniform(-110, 130, (1, 3, height, width)).astype(np.float32),
                'rois': rois.astype(np.float32)}
    calibrated(net, inputs(128, 160, 10))
    onnx_net = exported(net, tmp_path)
    assert onnx_net.inputs == ['data', 'rois']
    for height, width, count in ((128, 160, 7), (200, 96, 30)):
        _, _, relative = differences(net, onnx_net, inputs(height, width, count))
        assert all(v <= OUTPUT_TOLERANCE for v in relative.values()), relative


# A trained model -------------------------------------------------------------------------------

def test_trained_toy_model_on_toy_images(toy_training, tmp_path):
    """The toy net after a short training, on the toy test images as im_detect feeds them (each
    its own size), with the toy experiment's settings in its prototxt (proposal limits, test
    scales), as tools/test_net.py writes them."""
    import cv2
    from datasets.factory import get_imdb
    from fast_rcnn.test import image_blob
    net = caffe.Net(toy_training['prototxt'], toy_training['model'], caffe.TEST)
    onnx_net = exported(net, tmp_path)
    assert json.loads(onnx_net.metadata[METADATA_KEY])['proposal']['post_nms_top_n'] == 100
    settings = test_settings.of_net(net)
    assert settings.scales == (160,)
    assert json.loads(onnx_net.metadata[TEST_SETTINGS_KEY])['scales'] == [160]
    imdb = get_imdb('toy_test', toy_training['data'])
    sizes = set()
    for i in range(imdb.num_images):
        im = cv2.imread(imdb.image_path_at(i))
        data, scales = image_blob(im, settings)
        sizes.add(data.shape[2:])
        inputs = {'data': data, 'im_info': np.array([[data.shape[2], data.shape[3], scales[0]]],
                                                    np.float32)}
        count, roi_diff, relative = differences(net, onnx_net, inputs)
        print('toy image %d, %dx%d: %d rois, max roi diff %.2g px, %s' % (
            i, data.shape[2], data.shape[3], count, roi_diff,
            ', '.join('%s %.2g' % kv for kv in sorted(relative.items()))))
        assert count > 0 and roi_diff <= ROI_TOLERANCE, (i, roi_diff)
        assert all(v <= OUTPUT_TOLERANCE for v in relative.values()), (i, relative)
    assert len(sizes) >= 2


def test_onnx_settings_are_the_nets(toy_training, tmp_path):
    from fast_rcnn.onnx_model import settings_of
    net = caffe.Net(toy_training['prototxt'], toy_training['model'], caffe.TEST)
    assert settings_of(exported(net, tmp_path)) == test_settings.of_net(net)


@pytest.fixture(scope='module')
def toy_training(tmp_path_factory):
    """The TOY net trained end to end for a few iterations on a small toy dataset; the copy of
    its test net with the toy experiment's settings, the model, the folders."""
    from datasets.toy import generate_toy_dataset
    from fast_rcnn.experiment import Experiment, train_experiment
    base = tmp_path_factory.mktemp('toy_onnx')
    data = str(base / 'data')
    generate_toy_dataset(os.path.join(data, 'toy'), num_train=8, num_test=4)
    experiment = Experiment.from_files(
        [os.path.join(ROOT, 'experiments', 'cfgs', name)
         for name in ('faster_rcnn_end2end.yml', 'toy.yml')],
        {'DATA_DIR': data, 'ROOT_DIR': str(base), 'EXP_DIR': 'onnx',
         'TRAIN': {'SCALES': [160], 'MAX_SIZE': 240},
         'TEST': {'SCALES': [160], 'MAX_SIZE': 240}})
    net_dir = os.path.join(MODELS, 'toy', 'TOY', 'faster_rcnn_end2end')
    model = train_experiment(experiment, os.path.join(net_dir, 'solver.prototxt'),
                             'toy_train').run(40).final_model
    prototxt = experiment.net_file(os.path.join(net_dir, 'test.prototxt'), None,
                                   str(base / 'nets'), caffe.TEST)
    return {'prototxt': prototxt, 'model': model, 'dir': str(base), 'data': data,
            'original_prototxt': os.path.join(net_dir, 'test.prototxt')}


def test_proposal_export_hook_names_its_key():
    hook = ProposalExport()
    assert list(hook.hooks()) == ['rpn.proposal_layer.ProposalLayer']
    assert json.loads(hook.metadata()[METADATA_KEY]) == {}


# The tools -------------------------------------------------------------------------------------

def run_tool(args, timeout=1800, env=None):
    import subprocess
    import sys
    proc = subprocess.run([sys.executable] + args, cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONUNBUFFERED='1', **(env or {})))
    return proc.returncode, proc.stdout


def read_json(path):
    with open(path) as f:
        return json.load(f)


@pytest.mark.slow
def test_tools_export_then_test_and_demo_through_onnx(toy_training, tmp_path):
    """tools/export_onnx.py writes the trained toy model with the toy experiment's proposal
    settings; tools/test_net.py --onnx gives the runtime's mean AP on the toy test set;
    tools/demo.py --onnx draws its detections."""
    cfgs = ['--cfg', 'experiments/cfgs/faster_rcnn_end2end.yml',
            '--cfg', 'experiments/cfgs/toy.yml']
    sets = ['--set', 'DATA_DIR', os.path.join(toy_training['dir'], 'data'),
            'ROOT_DIR', str(tmp_path), 'EXP_DIR', 'onnx', 'TEST.SCALES', '(160,)',
            'TEST.MAX_SIZE', '240']
    model, prototxt = toy_training['model'], toy_training['original_prototxt']
    path = str(tmp_path / 'toy.onnx')
    image = os.path.join(toy_training['dir'], 'data', 'toy', 'JPEGImages', 'test_000001.jpg')
    code, out = run_tool(['tools/export_onnx.py', '--def', prototxt, '--net', model,
                          '--out', path, '--result', str(tmp_path / 'export.json'),
                          '--check', image] + cfgs + sets)
    assert code == 0, out[-3000:]
    exported = read_json(str(tmp_path / 'export.json'))
    [checked] = exported['check']
    assert checked['blob'][2] == 160  # the short side at TEST.SCALES
    assert checked['outputs']['rois']['same_shape']
    assert checked['outputs']['rois']['max_abs_diff'] <= ROI_TOLERANCE
    assert checked['outputs']['cls_prob']['max_rel_diff'] <= OUTPUT_TOLERANCE
    assert exported['outputs'] == ['bbox_pred', 'cls_prob', 'rois']
    proposal = exported['metadata']['proposal_settings']['proposal']
    assert proposal.pop('anchors') == generate_anchors(scales=np.array([2.0, 4.0, 8.0])).tolist()
    assert proposal == {'feat_stride': 16, 'pre_nms_top_n': 1000, 'post_nms_top_n': 100,
                        'nms_thresh': 0.7, 'min_size': 8, 'no_nms': False, 'mode': 'rpn'}
    assert exported['metadata']['test_settings']['scales'] == [160]

    results = {}
    for kind, model_args in (('runtime', ['--def', prototxt, '--net', model]),
                             ('onnx', ['--onnx', path])):
        result = str(tmp_path / ('test_%s.json' % kind))
        code, out = run_tool(['tools/test_net.py', '--gpu', 'cpu', '--imdb', 'toy_test',
                              '--result', result] + model_args + cfgs + sets)
        assert code == 0, out[-3000:]
        results[kind] = read_json(result)
    print('mean AP: runtime %.6f, ONNX Runtime %.6f' % (results['runtime']['mean_ap'],
                                                        results['onnx']['mean_ap']))
    assert results['onnx']['onnx'] == path
    assert results['onnx']['output_dir'] != results['runtime']['output_dir']
    assert abs(results['onnx']['mean_ap'] - results['runtime']['mean_ap']) < 5e-5
    per_class = results['runtime']['evaluation']['per_class_ap']
    for cls, ap in results['onnx']['evaluation']['per_class_ap'].items():
        assert abs(ap - per_class[cls]) < 5e-5, cls
    # A model this briefly trained may score no AP at all: its detections must agree too, as
    # many per class and image with the same scores. Where two RoIs pool to the same features
    # (and so score the same), NMS keeps the first, and RoIs whose proposal scores tie within
    # rounding may come in another order (fast_rcnn.onnx_model.compare): a few boxes may
    # differ.
    from fast_rcnn.detection_cache import load_detections
    runtime, onnx = (load_detections(results[k]['detections']) for k in ('runtime', 'onnx'))
    total = same_boxes = 0
    for per_class, onnx_per_class in zip(runtime[1:], onnx[1:]):
        for dets, onnx_dets in zip(per_class, onnx_per_class):
            dets, onnx_dets = np.asarray(dets).reshape(-1, 5), np.asarray(onnx_dets).reshape(-1, 5)
            assert dets.shape == onnx_dets.shape
            np.testing.assert_allclose(onnx_dets[:, 4], dets[:, 4], atol=1e-4)
            total += len(dets)
            same_boxes += int(np.sum(np.abs(onnx_dets[:, :4] - dets[:, :4]).max(axis=1)
                                     <= 1e-3)) if len(dets) else 0
    assert total > 0 and same_boxes >= 0.95 * total, (same_boxes, total)

    code, out = run_tool(['tools/demo.py', '--onnx', path, '--images', image, '--thresh', '0.1',
                          '--out', str(tmp_path / 'demo'),
                          '--result', str(tmp_path / 'demo.json')] + cfgs + sets)
    assert code == 0, out[-3000:]
    pictures = read_json(str(tmp_path / 'demo.json'))['pictures']
    assert len(pictures) == 1 and os.path.isfile(pictures[0]['png'])


def test_export_tool_refuses_a_layer_without_onnx_form(tmp_path):
    prototxt = tmp_path / 'net.prototxt'
    prototxt.write_text('input: "data" input_shape { dim: 1 dim: 3 dim: 8 dim: 8 } '
                        'layer { name: "mine" type: "Python" bottom: "data" top: "y" '
                        'python_param { module: "net_test_layers" layer: "Scale" } }')
    weights = tmp_path / 'net.caffemodel'
    weights.write_bytes(caffe_pb2.NetParameter(name='empty').SerializeToString())
    out_file = tmp_path / 'net.onnx'
    code, out = run_tool(['tools/export_onnx.py', '--def', str(prototxt), '--net', str(weights),
                          '--out', str(out_file)],
                         env={'PYTHONPATH': os.path.join(ROOT, 'tests', 'caffe')})
    assert code == 1, out[-2000:]
    assert "error: layer 'mine' (Python): Python layer net_test_layers.Scale has no ONNX " \
           "form" in out
    assert not out_file.exists()


def test_rois_are_compared_as_sets():
    from fast_rcnn.onnx_model import _matching_rows
    rois = np.arange(20, dtype=np.float32).reshape(4, 5) * 10
    order, matched = _matching_rows(rois, rois + 1e-4, 1e-3)
    assert order.tolist() == [0, 1, 2, 3] and matched.all()
    swapped = rois[[0, 2, 1, 3]] + 1e-4
    order, matched = _matching_rows(rois, swapped, 1e-3)
    assert order.tolist() == [0, 2, 1, 3] and matched.all()
    np.testing.assert_allclose(swapped[order], rois, atol=1e-3)
    other = swapped.copy()
    other[1, 2] += 1                                   # runtime row 2 has no counterpart
    order, matched = _matching_rows(rois, other, 1e-3)
    assert matched.tolist() == [True, True, False, True] and order[1] == 2
