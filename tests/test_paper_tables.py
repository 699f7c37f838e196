"""The switches the paper's tables need (anchors, lambda, iter_size, dense windows, external .mat
proposals, COCO settings, unshared alternating training, the detector alone, the Table 5 split)
and smoke runs of every table command on a tiny toy dataset, writing <table>.md to a temporary
results folder."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, 'tools')
TOY_TEST = os.path.join(ROOT, 'models', 'toy', 'TOY', 'faster_rcnn_alt_opt', 'faster_rcnn_test.pt')
TOY_TRAIN = os.path.join(ROOT, 'models', 'toy', 'TOY', 'faster_rcnn_end2end', 'train.prototxt')


def experiment(overrides, files=()):
    """The experiment a tool builds from these config files and --set keys (a nested dict)."""
    from fast_rcnn.experiment import Experiment
    return Experiment.from_files([os.path.join(ROOT, f) for f in files], overrides)


def net_file(prototxt, tmp_path, overrides=None, files=()):
    """The copy of prototxt that a run of that experiment uses (for a 4-class dataset)."""
    import caffe
    phase = caffe.TRAIN if 'train' in os.path.basename(prototxt) else caffe.TEST
    return experiment(overrides or {}, files).net_file(prototxt, 4, str(tmp_path), phase)


def read_net(path):
    from caffe import io
    from caffe.proto import caffe_pb2
    return {l.name: l for l in io.read_prototxt(path, caffe_pb2.NetParameter()).layer}


def param_str(layer):
    sys.path.insert(0, os.path.join(ROOT, 'lib'))
    from utils.param_str import load_param_str
    return load_param_str(layer.python_param.param_str)


# Anchors (Table 8, COCO's 4 scales) -------------------------------------------------------------

@pytest.mark.parametrize('scales,ratios', [((4,), (1.0,)), ((2, 4, 8), (1.0,)), ((4,), None),
                                           ((1, 2, 4, 8), None)])
def test_anchor_settings_reach_the_rpn_layers_and_their_output_counts(tmp_path, scales, ratios):
    import caffe
    anchors = {'ANCHOR_SCALES': list(scales)}
    if ratios:
        anchors['ANCHOR_RATIOS'] = list(ratios)
    num_anchors = len(scales) * len(ratios or (0.5, 1, 2))
    fitted = net_file(TOY_TEST, tmp_path, anchors)
    assert fitted != TOY_TEST
    layers = read_net(fitted)
    assert layers['rpn_cls_score'].convolution_param.num_output == 2 * num_anchors
    assert layers['rpn_bbox_pred'].convolution_param.num_output == 4 * num_anchors
    params = param_str(layers['proposal'])
    assert list(params['scales']) == list(scales) and params['feat_stride'] == 16
    assert list(params['ratios']) == list(ratios or (0.5, 1, 2))
    # The net builds (ProposalLayer checks 2A / 4A channels) and proposes from A anchors.
    net = caffe.Net(fitted, caffe.TEST)
    im = np.random.RandomState(0).randn(1, 3, 96, 128).astype(np.float32)
    net.blobs['data'].reshape(*im.shape)
    net.forward(data=im, im_info=np.array([[96, 128, 1.0]], dtype=np.float32))
    assert net.blobs['rpn_cls_prob_reshape'].data.shape[1] == 2 * num_anchors
    # The training net gets the same anchors in its anchor target layer.
    train = read_net(net_file(TOY_TRAIN, tmp_path, anchors))
    assert list(param_str(train['rpn-data'])['scales']) == list(scales)
    assert train['rpn_bbox_pred'].convolution_param.num_output == 4 * num_anchors


def test_default_anchors_leave_the_rpn_as_written(tmp_path):
    # The copy holds the net's own anchors (the toy's scales [2, 4, 8]) and output counts.
    layers = read_net(net_file(TOY_TEST, tmp_path))
    written = read_net(TOY_TEST)
    assert list(param_str(layers['proposal'])['scales']) == [2, 4, 8]
    assert list(param_str(layers['proposal'])['ratios']) == [0.5, 1, 2]
    for name in ('rpn_cls_score', 'rpn_bbox_pred'):
        assert layers[name] == written[name]


def test_coco_settings(tmp_path):
    from rpn.generate_anchors import generate_anchors
    coco = experiment({}, ['experiments/cfgs/coco.yml'])
    # Negatives [0, 0.5): a RoI with IoU 0.05 is a background candidate.
    keep, num_fg = coco.roi_sampling.sample(np.array([0.05, 0.7]), 1, 2, 1)
    assert num_fg == 1 and sorted(keep) == [0, 1]
    assert coco.ranks_per_update == 8 and coco.iter_size == 0
    areas = {int(round(np.sqrt((a[2] - a[0] + 1) * (a[3] - a[1] + 1))))
             for a in generate_anchors(scales=np.array(coco.anchor_scales), ratios=[1.0])}
    assert areas == {64, 128, 256, 512}
    solver = os.path.join(ROOT, 'models', 'toy', 'TOY', 'faster_rcnn_end2end', 'solver.prototxt')
    from caffe import io
    from caffe.proto import caffe_pb2
    from fast_rcnn.training_errors import TrainingError
    fitted = io.read_prototxt(coco.solver_file(solver, 4, str(tmp_path)),
                              caffe_pb2.SolverParameter())
    assert fitted.iter_size == 8          # one device accumulates the 8 GPUs' minibatches
    import caffe
    try:
        for ranks, iter_size in ((4, 2), (8, 1)):
            caffe.set_solver_count(ranks)
            fitted_n = io.read_prototxt(coco.solver_file(solver, 4, str(tmp_path)),
                                        caffe_pb2.SolverParameter())
            assert fitted_n.iter_size == iter_size, ranks
        caffe.set_solver_count(3)
        with pytest.raises(TrainingError, match='RANKS_PER_UPDATE is 8, which 3 ranks'):
            coco.solver_file(solver, 4, str(tmp_path))
    finally:
        caffe.set_solver_count(1)
    net = read_net(fitted.train_net)
    assert net['rpn_cls_score'].convolution_param.num_output == 2 * 4 * 3


# lambda (Table 9) ------------------------------------------------------------------------

@pytest.mark.parametrize('lam', [0.1, 1.0, 100.0])
def test_lambda_is_the_rpn_regression_loss_weight(tmp_path, lam):
    layers = read_net(net_file(TOY_TRAIN, tmp_path, {'TRAIN': {'RPN_LAMBDA': lam}}))
    # The release's loss_weight 1 is the paper's lambda = 10 (Eq. (1) with N_reg ~ 2400).
    assert list(layers['rpn_loss_bbox'].loss_weight) == pytest.approx([lam / 10.0])
    assert list(layers['loss_bbox'].loss_weight) == [1.0]
    assert list(layers['rpn_loss_cls'].loss_weight) == [1.0]


def test_lambda_10_is_the_release_net(tmp_path):
    layers = read_net(net_file(TOY_TRAIN, tmp_path, {'TRAIN': {'RPN_LAMBDA': 10.0}}))
    assert list(layers['rpn_loss_bbox'].loss_weight) == list(
        read_net(TOY_TRAIN)['rpn_loss_bbox'].loss_weight)


# Dense sliding windows (Table 10) --------------------------------------------------------------

def test_dense_windows_cover_the_feature_grid_with_9_anchors():
    from core.dense_windows import dense_windows, dense_windows_at_scale
    from rpn.generate_anchors import generate_anchors
    # 240 x 320 at scale 1: a 15 x 20 conv5 grid (stride 16), 9 windows per cell.
    boxes = dense_windows_at_scale(240, 320, 1.0)
    assert boxes.shape == (15 * 20 * 9, 4)
    assert boxes[:, 0].min() >= 0 and boxes[:, 2].max() <= 319 and boxes[:, 3].max() <= 239
    # The last cell (y 14, x 19) holds the 9 reference anchors shifted by (304, 224), clipped.
    ref = generate_anchors() + np.array([304, 224, 304, 224])
    ref = np.clip(ref, 0, [319, 239, 319, 239])
    np.testing.assert_allclose(boxes[-9:], ref)
    # Scaled by 2 the grid doubles each way, windows mapped back to image pixels.
    assert dense_windows_at_scale(240, 320, 2.0).shape == (30 * 40 * 9, 4)
    # The pyramid's windows are the union of its levels.
    one = dense_windows(240, 320, (240,), 1000)
    two = dense_windows(240, 320, (240, 480), 1000)
    assert len(one) <= 15 * 20 * 9 and len(two) > len(one)


def test_dense_roidb_trains_on_windows(tmp_path):
    from datasets.factory import get_imdb
    from datasets.toy import generate_toy_dataset
    generate_toy_dataset(str(tmp_path / 'toy'), num_train=2, num_test=1)
    imdb = get_imdb('toy_train', str(tmp_path))
    imdb.config['dense_scales'] = (240,)  # as fast_rcnn.train_roidb.training_roidb sets it
    imdb.set_proposal_method('dense')
    entry = imdb.roidb[0]
    num_gt = int((entry['gt_classes'] > 0).sum())
    assert num_gt >= 1 and entry['boxes'].shape[0] > 1000
    assert entry['gt_overlaps'].shape == (entry['boxes'].shape[0], imdb.num_classes)


# External proposals from .mat files (Tables 2, 3) ----------------------------------------------

def write_mat(path, boxes_per_image):
    """Selective search / EdgeBoxes release layout: 'boxes', a cell per image of 1-based
    [y1 x1 y2 x2] rows."""
    import scipy.io as sio
    cells = np.empty(len(boxes_per_image), dtype=object)
    for i, b in enumerate(boxes_per_image):
        b = np.asarray(b, dtype=np.float64)
        cells[i] = b[:, (1, 0, 3, 2)] + 1
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sio.savemat(path, {'boxes': cells})


def toy_mat_files(data_dir, method='selective_search', per_box=12, seed=0):
    """Stand-in proposal files for the toy dataset: boxes jittered around the ground truth
    (the release's files exist only for PASCAL VOC and COCO)."""
    from datasets.factory import get_imdb
    rng = np.random.RandomState(seed)
    for split in ('train', 'test'):
        imdb = get_imdb('toy_' + split, data_dir)
        boxes = []
        for i, entry in enumerate(imdb.gt_roidb()):
            w, h = imdb.image_size_at(i)
            b = np.repeat(entry['boxes'], per_box, axis=0).astype(np.float64)
            b += rng.randint(-10, 11, b.shape)
            b = np.clip(b, 0, [w - 1, h - 1, w - 1, h - 1])
            boxes.append(b[(b[:, 2] > b[:, 0] + 8) & (b[:, 3] > b[:, 1] + 8)])
        write_mat(os.path.join(data_dir, method + '_data', imdb.name + '.mat'), boxes)


@pytest.mark.parametrize('method', ['selective_search', 'edge_boxes'])
def test_mat_proposals_are_loaded_0_based_xyxy(tmp_path, method):
    from datasets.factory import get_imdb
    from datasets.toy import generate_toy_dataset
    generate_toy_dataset(str(tmp_path / 'toy'), num_train=2, num_test=1)
    props = [np.array([[10, 20, 60, 90], [0, 0, 30, 40]]), np.array([[5, 6, 50, 70]])]
    write_mat(str(tmp_path / (method + '_data') / 'toy_train.mat'), props)
    imdb = get_imdb('toy_train', str(tmp_path))
    imdb.set_proposal_method(method)
    for entry, expected in zip(imdb.roidb, props):
        got = entry['boxes'][entry['gt_classes'] == 0]
        assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, expected.tolist()))


# The detector alone, the Table 5 split ---------------------------------------------------------

def test_detector_net_reads_rois_and_has_no_rpn(tmp_path):
    import caffe
    from fast_rcnn import net_surgery
    path = net_surgery.detector_net_file(TOY_TEST, str(tmp_path))
    layers = read_net(path)
    assert not [n for n in layers if n.startswith('rpn') or n == 'proposal']
    net = caffe.Net(path, caffe.TEST)
    assert 'rois' in net.inputs and 'im_info' not in net.inputs
    rois = np.array([[0, 0, 0, 50, 60], [0, 10, 10, 90, 70]], dtype=np.float32)
    net.blobs['data'].reshape(1, 3, 96, 128)
    net.blobs['rois'].reshape(*rois.shape)
    out = net.forward(data=np.zeros((1, 3, 96, 128), np.float32), rois=rois)
    assert out['cls_prob'].shape == (2, 4)


def test_time_net_splits_conv_proposal_region_wise():
    import caffe
    sys.path.insert(0, TOOLS)
    try:
        import time_net
    finally:
        sys.path.remove(TOOLS)
    net = caffe.Net(TOY_TEST, caffe.TEST)
    conv_end, proposal_end = time_net.split_layers(net)
    names = list(net._layer_names)
    conv = names[:names.index(conv_end) + 1]
    # The shared convolutions end at relu4 (or the split Caffe inserts after it); the RPN
    # starts right after them and ends at the proposal layer.
    assert 'relu4' in conv and not [n for n in conv if n.startswith('rpn')]
    assert names[names.index(conv_end) + 1] == 'rpn_conv/3x3' and proposal_end == 'proposal'


# Whole commands on a tiny toy dataset ----------------------------------------------------------

@pytest.fixture(scope='module')
def sandbox(tmp_path_factory):
    from datasets.toy import generate_toy_dataset
    base = tmp_path_factory.mktemp('paper')
    data = str(base / 'data')
    generate_toy_dataset(os.path.join(data, 'toy'), num_train=6, num_test=3)
    toy_mat_files(data)
    return str(base / 'root'), data, str(base / 'results')


def run(cmd, env=None, timeout=600):
    full_env = dict(os.environ, PYTHONUNBUFFERED='1', **(env or {}))
    proc = subprocess.run(cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)
    for log in re.findall(r'Logging output to (\S+)', proc.stdout):
        stem = os.path.join(ROOT, log)[:-len('.txt')]
        for path in [stem + '.txt'] + [stem + '_%s.json' % k for k in
                                       ('train', 'test', 'proposals', 'demo', 'result')]:
            if os.path.isfile(path):
                os.remove(path)
    return proc.returncode, proc.stdout


@pytest.mark.slow
def test_unshared_alt_opt_stops_after_step_2(sandbox):
    root, data, _ = sandbox
    result = os.path.join(root, 'unshared.json')
    code, out = run([sys.executable, 'tools/train_faster_rcnn_alt_opt.py', '--gpu', 'cpu',
                     '--net_name', 'TOY', '--imdb', 'toy_train', '--iters', '2,2,2,2',
                     '--unshared', '--result', result,
                     '--cfg', 'experiments/cfgs/faster_rcnn_alt_opt.yml',
                     '--cfg', 'experiments/cfgs/toy.yml',
                     '--set', 'EXP_DIR', 'unshared', 'ROOT_DIR', root, 'DATA_DIR', data])
    assert code == 0, out[-3000:]
    assert 'Stage 1 Fast R-CNN' in out and 'Stage 2' not in out
    with open(result) as f:
        summary = json.load(f)
    rpn, final = summary['final_rpn_model'], summary['final_model']
    assert summary['unshared'] and sorted(summary['steps']) == ['1', '2']
    assert rpn.endswith('toy_rpn_stage1_iter_2.caffemodel') and os.path.isfile(rpn)
    assert final.endswith('toy_fast_rcnn_stage1_iter_2.caffemodel') and os.path.isfile(final)


@pytest.mark.slow
def test_alt_opt_trains_on_joined_datasets(sandbox):
    # The paper's 07+12 (Table 3): one proposals file per dataset, one roidb of both.
    root, data, _ = sandbox
    result = os.path.join(root, 'joined.json')
    code, out = run([sys.executable, 'tools/train_faster_rcnn_alt_opt.py', '--gpu', 'cpu',
                     '--net_name', 'TOY', '--imdb', 'toy_train+toy_test', '--iters', '2,2,2,2',
                     '--result', result,
                     '--cfg', 'experiments/cfgs/faster_rcnn_alt_opt.yml',
                     '--cfg', 'experiments/cfgs/toy.yml',
                     '--set', 'EXP_DIR', 'joined', 'ROOT_DIR', root, 'DATA_DIR', data])
    assert code == 0, out[-3000:]
    with open(result) as f:
        summary = json.load(f)
    written = summary['steps']['1']['proposal_path'] + summary['steps']['3']['proposal_path']
    assert len(written) == 4  # 2 stages x 2 datasets
    assert all(os.path.isfile(p) for p in written)
    assert any('/toy_train/' in p for p in written) and any('/toy_test/' in p for p in written)
    # 6 train images (flipped: 12) + 3 test images (flipped: 6) in the detector's roidb
    assert re.search(r'^Filtered \d+ roidb entries: 18 -> \d+', out, re.M), out[-3000:]
    final = summary['final_model']
    assert os.path.isfile(final) and '/toy_train+toy_test/' in final


def table_rows(path):
    return [l for l in open(path).read().splitlines() if l.startswith('| ') and '---' not in l]


@pytest.mark.slow
@pytest.mark.parametrize('table', ['table2', 'table3', 'table5', 'table8', 'table9',
                                   'table10', 'table11', 'fig4'])
def test_table_command_writes_the_table(sandbox, table):
    root, data, results = sandbox
    code, out = run([os.path.join('experiments', 'scripts', 'paper_table.sh'), table, 'cpu',
                     'TOY', 'toy', '--num-timing-images', '2',
                     '--set', 'ROOT_DIR', root, 'DATA_DIR', data],
                    env={'ITERS': '3', 'ALT_OPT_ITERS': '3,3,3,3', 'PAPER_RESULTS_DIR': results})
    assert code == 0, out[-5000:]
    path = os.path.join(results, table + '.md')
    assert os.path.isfile(path)
    spec = yaml.safe_load(open(os.path.join(ROOT, 'experiments', 'paper_values.yml')))[table]
    rows = table_rows(path)
    text = open(path).read()
    assert 'paper' in rows[0] and '(ours)' in rows[0]
    assert 'dataset: toy' in text and 'ALT_OPT_ITERS=3,3,3,3' in text
    assert 'failed' not in text
    # Every paper row is there with its published value.
    for row in spec['rows']:
        paper = row['paper'] if isinstance(row['paper'], list) else [row['paper']]
        line = [r for r in rows if all(('| %s |' % c) in r or ('| %s' % c) in r
                                       for c in map(str, row['cells']))]
        assert line, (row, rows)
        for v in paper:
            if isinstance(v, float):
                assert ('%.1f' % v) in ' '.join(line)
    head = [c.strip() for c in rows[0].strip().strip('|').split('|')]
    # The toy run makes these rows (SS from the stand-in .mat files through fast_rcnn.sh, the
    # RPN ablations through rpn_generate.py + test_net.py --proposals, dense windows, ...).
    for made in made_rows[table]:
        line = [r for r in rows if made in r][0]
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        ours = [c for c, h in zip(cells, head) if '(ours)' in h]
        assert ours and any(re.fullmatch(r'\d+\.\d+', c) for c in ours), line


made_rows = {
    'table2': ['| SS | 2000 | SS |', 'RPN+ZF, shared', 'RPN+ZF, unshared', '| RPN+ZF | 100 |',
               '(no NMS)', '(no cls) | 300', '(no reg) | 1000'],
    'table3': ['| SS | 2000 | 07 |', 'RPN+VGG, unshared', 'RPN+VGG, shared | 300 | 07 |'],
    'table5': ['| TOY | RPN + Fast R-CNN |', 'SVD'],
    'table8': ['| 1 scale 1 ratio | 128^2', '3 scales 1 ratio', '3 scales 3 ratios'],
    'table9': ['| 0.1 |', '| 10 |', '| 100 |'],
    'table10': ['Two-Stage', '1 scale |', '5 scales |'],
    'table11': ['Fast R-CNN [impl', '| Faster R-CNN | RPN, 300 | COCO train |',
                '| Faster R-CNN, ResNet-101 | RPN, 300 | COCO train |'],
    'fig4': ['| SS | 300 |', '| RPN (this net) | 2000 |'],
}


@pytest.mark.parametrize('sets,at_most', [(['TEST.RPN_POST_NMS_TOP_N', '7'], 7),
                                          (['TEST.RPN_POST_NMS_TOP_N', '5', 'TEST.RPN_MODE',
                                            'no_reg'], 5)])
def test_rpn_generate_honours_the_test_time_proposal_switches(tmp_path, sets, at_most):
    import caffe
    from datasets.proposals_file import load_proposals
    from datasets.toy import generate_toy_dataset
    generate_toy_dataset(str(tmp_path / 'data' / 'toy'), num_train=1, num_test=2)
    prototxt = os.path.join(ROOT, 'models', 'toy', 'TOY', 'faster_rcnn_alt_opt', 'rpn_test.pt')
    model = str(tmp_path / 'rpn.caffemodel')
    caffe.set_random_seed(0)
    caffe.Net(prototxt, caffe.TEST).save(model)
    code, out = run([sys.executable, 'tools/rpn_generate.py', '--gpu', 'cpu', '--def', prototxt,
                     '--net', model, '--imdb', 'toy_test',
                     '--result', str(tmp_path / 'proposals.json'),
                     '--cfg', 'experiments/cfgs/toy.yml',
                     '--set', 'ROOT_DIR', str(tmp_path / 'root'),
                     'DATA_DIR', str(tmp_path / 'data')] + sets)
    assert code == 0, out[-3000:]
    with open(str(tmp_path / 'proposals.json')) as f:
        path = json.load(f)['proposals']
    boxes = load_proposals(path)
    assert len(boxes) == 2
    assert all(0 < len(b) <= at_most for b in boxes), [np.shape(b) for b in boxes]


def test_rpn_part_of_an_end2end_test_net_gives_its_proposals(tmp_path):
    """net_surgery.rpn_only cuts a Faster R-CNN test net after its proposal layer (with a
    scores top): the same proposals as the whole net, scores in [0, 1], and rpn_generate.py
    takes the whole net's prototxt."""
    import caffe
    from datasets.toy import generate_toy_dataset
    from fast_rcnn import net_surgery
    full_def = os.path.join(ROOT, 'models', 'toy', 'TOY', 'faster_rcnn_end2end_nonapprox',
                            'test.prototxt')
    model = str(tmp_path / 'toy.caffemodel')
    caffe.set_random_seed(0)
    full = caffe.Net(full_def, caffe.TEST)
    full.save(model)
    rpn_def = net_surgery.rpn_net_file(full_def, str(tmp_path))
    assert rpn_def != full_def and net_surgery.rpn_net_file(rpn_def, str(tmp_path)) == rpn_def
    rpn = caffe.Net(rpn_def, model, caffe.TEST)
    assert sorted(rpn.outputs) == ['rois', 'scores']
    assert not [n for n in rpn._layer_names if n.startswith(('fc', 'roi_', 'cls', 'bbox'))]
    im = np.random.RandomState(0).uniform(-50, 50, (1, 3, 96, 128)).astype(np.float32)
    info = np.array([[96, 128, 1.0]], np.float32)
    for net in (full, rpn):
        net.blobs['data'].reshape(*im.shape)
        net.forward(data=im, im_info=info)
    np.testing.assert_array_equal(rpn.blobs['rois'].data, full.blobs['rois'].data)
    scores = rpn.blobs['scores'].data
    assert scores.shape == (len(rpn.blobs['rois'].data), 1)
    assert (scores >= 0).all() and (scores <= 1).all() and (np.diff(scores.ravel()) <= 0).all()

    generate_toy_dataset(str(tmp_path / 'data' / 'toy'), num_train=1, num_test=2)
    code, out = run([sys.executable, 'tools/rpn_generate.py', '--gpu', 'cpu', '--def', full_def,
                     '--net', model, '--imdb', 'toy_test',
                     '--result', str(tmp_path / 'proposals.json'),
                     '--cfg', 'experiments/cfgs/toy.yml',
                     '--set', 'ROOT_DIR', str(tmp_path / 'root'),
                     'DATA_DIR', str(tmp_path / 'data'), 'TEST.RPN_POST_NMS_TOP_N', '9'])
    assert code == 0, out[-3000:]
    from datasets.proposals_file import load_proposals
    with open(str(tmp_path / 'proposals.json')) as f:
        boxes = load_proposals(json.load(f)['proposals'])
    assert len(boxes) == 2 and all(0 < len(b) <= 9 for b in boxes)


# Sec. 3.2: approximate vs. non-approximate joint training --------------------------------------

def paper_tables_module():
    sys.path.insert(0, os.path.join(ROOT, 'experiments'))
    try:
        import paper_tables
    finally:
        sys.path.remove(os.path.join(ROOT, 'experiments'))
    return paper_tables


def test_sec32_rows_count_divergence_and_average_the_finished_runs():
    pt = paper_tables_module()
    runs = [{'status': 'done', 'map50': 0.60, 'map70': 0.30, 'recall50': 0.90, 'recall70': 0.50},
            {'status': 'diverged', 'diverged_at': 17},
            {'status': 'done', 'map50': 0.70, 'map70': 0.40, 'recall50': 0.80, 'recall70': 0.70}]
    summary = pt.summarize_runs(runs)
    assert (summary['runs'], summary['diverged'], summary['finished']) == (3, 1, 2)
    # Two values a and b: mean (a + b) / 2, sample std |a - b| / sqrt(2).
    assert summary['map50']['mean'] == pytest.approx(0.65)
    assert summary['map50']['std'] == pytest.approx(0.1 / np.sqrt(2))
    assert summary['recall70']['values'] == [0.5, 0.7]
    cells = pt.sec32_cells(summary)
    assert cells[:2] == [3, 1]
    assert cells[2] == '65.0 ± 7.1' and cells[3] == '35.0 ± 7.1'
    assert cells[4] == '0.850 ± 0.071' and cells[5] == '0.600 ± 0.141'
    all_diverged = pt.summarize_runs([{'status': 'diverged'}] * 2)
    assert all_diverged['map50'] is None and pt.sec32_cells(all_diverged)[2:] == ['—'] * 4


@pytest.mark.slow
def test_sec32_command_trains_the_default_arms_with_every_seed(sandbox):
    root, data, results = sandbox
    code, out = run([os.path.join('experiments', 'scripts', 'paper_table.sh'), 'sec32', 'cpu',
                     'TOY', 'toy', '--seeds', '4', '--set', 'ROOT_DIR', root, 'DATA_DIR', data],
                    env={'ITERS': '2', 'PAPER_RESULTS_DIR': results})
    assert code == 0, out[-5000:]
    text = open(os.path.join(results, 'sec32.md')).read()
    assert 'failed' not in text and 'ITERS=2' in text
    rows = table_rows(os.path.join(results, 'sec32.md'))
    assert rows[0].startswith('| training | RoI layer |')
    for label in ('| approximate joint | RoI pooling | none |',
                  '| approximate joint | ROIWarping | off |',
                  '| non-approximate joint | ROIWarping | on: foreground RoIs, x 0.1 (the default) |',
                  '| non-approximate joint | ROIWarping | on: the exact derivative (all RoIs, x 1) |'):
        line = [r for r in rows if r.startswith(label)]
        assert len(line) == 1, rows
        cells = [c.strip() for c in line[0].strip().strip('|').split('|')]
        assert cells[3:5] == ['1', '0']
        assert all(re.fullmatch(r'\d+\.\d+ ± \d+\.\d+', c) for c in cells[5:]), cells
    # Arms not asked for (--arms) are listed without values.
    assert [r for r in rows if 'foreground RoIs, x 1 |' in r][0].endswith('| — | — | — | — |')
    with open(os.path.join(results, 'sec32.json')) as f:
        arms = json.load(f)
    assert sorted(arms) == ['approx_roipool', 'approx_warp', 'nonapprox', 'nonapprox_exact']
    for arm, joint in (('approx_roipool', 'approx'), ('approx_warp', 'approx_warp'),
                       ('nonapprox', 'nonapprox'), ('nonapprox_exact', 'nonapprox')):
        assert arms[arm]['joint'] == joint
        assert [one['seed'] for one in arms[arm]['runs']] == [4]
        for one in arms[arm]['runs']:
            assert one['status'] == 'done'
            # Every hit at IoU 0.7 is one at 0.5: AP and recall can only drop.
            assert 0 <= one['map70'] <= one['map50'] <= 1
            assert 0 <= one['recall70'] <= one['recall50'] <= 1
            # Each run trained with its own seed, in its own mode (the script's summary).
            summary = json.load(open(os.path.join(results, 'runs', 'sec32',
                                                  '%s_seed%d.json' % (arm, one['seed']))))
            assert summary['joint'] == joint and summary['train']['iterations'] == 2
            from caffe import io
            from caffe.proto import caffe_pb2
            solver = io.read_prototxt(summary['train']['solver'], caffe_pb2.SolverParameter())
            train_net = open(solver.train_net).read()
            assert ('type: "ROIWarping"' in train_net) == (joint != 'approx')
            assert ('backprop_coords' in train_net) == (joint == 'nonapprox')
            # The default tames the coordinate gradient; the exact arm keeps the nets' own.
            if joint == 'nonapprox':
                import yaml
                layers = {l.name: yaml.safe_load(l.python_param.param_str) for l in
                          io.read_prototxt(solver.train_net, caffe_pb2.NetParameter()).layer
                          if l.type == 'Python'}
                rois, scale = (layers['roi-data']['backprop_coords'],
                               layers['proposal'].get('coord_grad_scale', 1))
                assert (rois, scale) == (('fg', 0.1) if arm == 'nonapprox' else ('all', 1))


def test_table11_fast_rcnn_row_looks_for_the_coco_proposal_folders(tmp_path):
    import argparse
    pt = paper_tables_module()
    args = argparse.Namespace(net='VGG16', dataset='coco', set_cfgs=['DATA_DIR', str(tmp_path)])
    runner = pt.Runner(args)
    with pytest.raises(pt.NotRun) as err:
        runner.has_mat('selective_search')
    folder = os.path.join(str(tmp_path), 'coco_proposals', 'selective_search', 'mat')
    assert folder in str(err.value)
    os.makedirs(folder)
    runner.has_mat('selective_search')  # found: the row runs fast_rcnn.sh
