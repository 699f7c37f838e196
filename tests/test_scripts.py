"""The experiment scripts end to end on the toy dataset with tiny iteration counts: train, test
(an mAP is printed), and for end-to-end training the demo's PNGs. Outputs go to a temporary
ROOT_DIR/DATA_DIR (--set), so the repository's output/ and data/ are left alone."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def sandbox(tmp_path_factory):
    """A ROOT_DIR for outputs and a DATA_DIR holding a small toy dataset (fewer images than the
    default, which the scripts use as they find it), shared by the runs."""
    from datasets.toy import generate_toy_dataset
    base = tmp_path_factory.mktemp('scripts')
    data = base / 'data'
    generate_toy_dataset(str(data / 'toy'), num_train=24, num_test=12)
    return str(base / 'root'), str(data)


def run(cmd, env=None, timeout=900):
    full_env = dict(os.environ, PYTHONUNBUFFERED='1', **(env or {}))
    proc = subprocess.run(cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return proc.returncode, proc.stdout


def run_script(script, sandbox, exp_dir, env):
    """Runs a script; returns its output and its summary (the RESULT file: the tools' results)."""
    root, data = sandbox
    result = os.path.join(root, exp_dir + '_result.json')
    code, out = run([os.path.join(ROOT, 'experiments', 'scripts', script), 'cpu', 'TOY', 'toy',
                     '--set', 'EXP_DIR', exp_dir, 'ROOT_DIR', root, 'DATA_DIR', data],
                    env=dict(env, RESULT=result))
    assert code == 0, out[-5000:]
    with open(result) as f:
        summary = json.load(f)
    log = os.path.join(ROOT, summary['log'])
    for path in [log] + [log[:-len('.txt')] + '_%s.json' % k
                         for k in ('train', 'test', 'proposals', 'demo')]:
        if os.path.isfile(path):
            os.remove(path)
    assert summary['status'] == 'done'
    return out, summary


def mean_ap(summary):
    value = summary['test']['mean_ap']
    assert value is not None, summary
    return value


def test_faster_rcnn_end2end_script_trains_tests_and_draws(sandbox):
    out, summary = run_script('faster_rcnn_end2end.sh', sandbox, 'pytest_end2end',
                              {'ITERS': '20'})
    assert 'Iteration 20/20' in out
    assert 0.0 <= mean_ap(summary) <= 1.0
    per_class = summary['test']['evaluation']['per_class_ap']
    assert set(per_class) == {'square', 'circle', 'triangle'}
    for cls in ('square', 'circle', 'triangle'):
        assert re.search(r'AP for %s = \d\.\d{4}' % cls, out)
        assert '%s = %.4f' % (cls, per_class[cls]) in out  # the result file says what was printed
    root = sandbox[0]
    model = os.path.join(root, 'output', 'pytest_end2end', 'toy_train',
                         'toy_faster_rcnn_iter_20.caffemodel')
    assert summary['final_model'] == summary['train']['final_model'] == model
    assert os.path.isfile(model) and summary['train']['iterations'] == 20
    # One JSON line per iteration beside the snapshots.
    with open(summary['train']['training_log']) as f:
        lines = [json.loads(line) for line in f]
    assert [line['iter'] for line in lines] == list(range(1, 21))
    assert os.path.isfile(os.path.join(root, 'output', 'pytest_end2end', 'toy_test',
                                       'toy_faster_rcnn_iter_20', 'detections.npz'))
    assert os.path.isfile(summary['test']['pr_curves'])
    pngs = [p['png'] for p in summary['demo']['pictures']]
    assert len(pngs) >= 2 and all(os.path.isfile(p) for p in pngs)
    # The demo was given the test run's prototxt and the model, and nothing else.
    assert summary['demo']['prototxt'] == summary['test']['prototxt']
    assert '--cfg' not in out.split('tools/demo.py')[-1].split('\n')[0]


def test_a_runs_prototxt_and_model_reproduce_its_detections_without_cfg(sandbox, tmp_path):
    """The prototxt a test run saves beside its detections holds every setting (its layers'
    param_str, the test settings layer): tools/test_net.py with it and the model, and no --cfg
    or --set of any setting, gives the same detections; so does tools/demo.py with the two
    files. (--set names only where the data are and where outputs go.)"""
    root, data = sandbox
    model = os.path.join(root, 'output', 'pytest_repro', 'toy_train',
                         'toy_faster_rcnn_iter_8.caffemodel')
    cfgs = ['--cfg', 'experiments/cfgs/faster_rcnn_end2end.yml', '--cfg', 'experiments/cfgs/toy.yml']
    places = ['ROOT_DIR', root, 'DATA_DIR', data]
    code, out = run([sys.executable, 'tools/train_net.py', '--gpu', 'cpu', '--solver',
                     'models/toy/TOY/faster_rcnn_end2end/solver.prototxt', '--imdb', 'toy_train',
                     '--iters', '8'] + cfgs + ['--set', 'EXP_DIR', 'pytest_repro'] + places)
    assert code == 0, out[-3000:]
    first = str(tmp_path / 'first.json')
    code, out = run([sys.executable, 'tools/test_net.py', '--gpu', 'cpu', '--def',
                     'models/toy/TOY/faster_rcnn_end2end/test.prototxt', '--net', model,
                     '--imdb', 'toy_test', '--result', first] + cfgs +
                    ['--set', 'EXP_DIR', 'pytest_repro', 'TEST.RPN_POST_NMS_TOP_N', '50',
                     'TEST.NMS', '0.4'] + places)
    assert code == 0, out[-3000:]
    with open(first) as f:
        first = json.load(f)
    saved = first['prototxt']
    assert os.path.dirname(saved) == first['output_dir'] and saved.endswith('test_run.prototxt')
    again = str(tmp_path / 'again.json')
    code, out = run([sys.executable, 'tools/test_net.py', '--gpu', 'cpu', '--def', saved,
                     '--net', model, '--imdb', 'toy_test', '--result', again,
                     '--set', 'EXP_DIR', 'pytest_repro_again'] + places)
    assert code == 0, out[-3000:]
    with open(again) as f:
        again = json.load(f)
    assert again['output_dir'] != first['output_dir'] and 'Reusing' not in out
    assert again['prototxt'] == saved  # complete already: no further copy
    import numpy as np
    a, b = np.load(first['detections']), np.load(again['detections'])
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key])
    assert again['mean_ap'] == first['mean_ap']
    # Without its settings the shipped prototxt detects otherwise (scale 600, 300 proposals).
    other = str(tmp_path / 'other.json')
    code, out = run([sys.executable, 'tools/test_net.py', '--gpu', 'cpu', '--def',
                     'models/toy/TOY/faster_rcnn_end2end/test.prototxt', '--net', model,
                     '--imdb', 'toy_test', '--result', other,
                     '--set', 'EXP_DIR', 'pytest_repro_other'] + places)
    assert code == 0, out[-3000:]
    with open(other) as f:
        c = np.load(json.load(f)['detections'])
    assert any(not np.array_equal(a[k], c[k]) for k in a.files)
    # The demo: the two files give the pictures of the settings of the run.
    pictures = []
    for settings in (['--def', saved, '--set'],
                     ['--def', 'models/toy/TOY/faster_rcnn_end2end/test.prototxt'] + cfgs +
                     ['--set', 'TEST.RPN_POST_NMS_TOP_N', '50']):
        result = str(tmp_path / ('demo%d.json' % len(pictures)))
        code, out = run([sys.executable, 'tools/demo.py', '--gpu', 'cpu', '--model', model,
                         '--num_images', '2', '--thresh', '0', '--out',
                         str(tmp_path / ('demo%d' % len(pictures))), '--result', result] +
                        settings + places)
        assert code == 0, out[-3000:]
        with open(result) as f:
            pictures.append([p['detections'] for p in json.load(f)['pictures']])
    assert pictures[0] == pictures[1] and sum(pictures[0]) > 0


@pytest.mark.parametrize('joint', ['nonapprox', 'approx_warp'])
def test_faster_rcnn_end2end_script_joint_switch(sandbox, joint):
    """JOINT picks the training mode of Sec. 3.2: the faster_rcnn_end2end_nonapprox nets, with
    cfg's default coordinate gradient (foreground RoIs, x 0.1) or with it turned off, in an
    adapted copy."""
    out, summary = run_script('faster_rcnn_end2end.sh', sandbox, 'pytest_' + joint,
                              {'ITERS': '3', 'JOINT': joint})
    assert summary['joint'] == joint
    model = summary['final_model']
    assert os.path.basename(model) == 'toy_faster_rcnn_nonapprox_iter_3.caffemodel'
    # The test ran a copy of the nonapprox test net with the run's settings.
    assert summary['test']['prototxt'].endswith(
        os.path.join('toy_test', 'toy_faster_rcnn_nonapprox_iter_3', 'test_run.prototxt'))
    assert 0.0 <= mean_ap(summary) <= 1.0
    from caffe import io
    from caffe.proto import caffe_pb2
    solver = io.read_prototxt(summary['train']['solver'], caffe_pb2.SolverParameter())
    layers = {l.name: l for l in io.read_prototxt(solver.train_net,
                                                  caffe_pb2.NetParameter()).layer}
    assert "'precomputed': true" in layers['roi-data'].python_param.param_str
    if joint == 'nonapprox':
        # cfg's default: the foreground RoIs' coordinate gradient, x 0.1 (docs/joint_training.md)
        assert os.path.basename(solver.train_net) == 'train_coordgrad_fg_x0.1.prototxt'
        assert "'backprop_coords': true" in layers['proposal'].python_param.param_str
        assert "'coord_grad_scale': 0.1" in layers['proposal'].python_param.param_str
        assert "'backprop_coords': 'fg'" in layers['roi-data'].python_param.param_str
        return
    assert os.path.basename(solver.train_net) == 'train_nocoordgrad.prototxt'
    assert list(layers['roi_warp_conv4'].propagate_down) == [True, False]
    assert 'backprop' not in layers['proposal'].python_param.param_str


def test_faster_rcnn_end2end_script_rejects_an_unknown_joint_mode():
    code, out = run([os.path.join(ROOT, 'experiments', 'scripts', 'faster_rcnn_end2end.sh'),
                     'cpu', 'TOY', 'toy'], env={'JOINT': 'exact'}, timeout=60)
    assert code == 2 and 'expected approx, nonapprox or approx_warp' in out


def test_faster_rcnn_alt_opt_script_runs_all_four_steps(sandbox):
    out, summary = run_script('faster_rcnn_alt_opt.sh', sandbox, 'pytest_alt_opt',
                              {'ALT_OPT_ITERS': '10,10,10,10'})
    for step in ('Stage 1 RPN, init from ImageNet model', 'Stage 1 RPN, generate proposals',
                 'Stage 1 Fast R-CNN', 'Stage 2 RPN, init from stage 1 Fast R-CNN model',
                 'Stage 2 RPN, generate proposals', 'Stage 2 Fast R-CNN'):
        assert step in out
    final = summary['final_model']
    assert final.endswith('TOY_faster_rcnn_final.caffemodel') and os.path.isfile(final)
    assert summary['test']['model'] == final
    assert sorted(summary['train']['steps']) == ['1', '2', '3', '4']
    assert 0.0 <= mean_ap(summary) <= 1.0


def test_missing_weights_is_a_clear_error(tmp_path):
    missing = str(tmp_path / 'VGG16.v2.caffemodel')
    code, out = run([sys.executable, 'tools/train_net.py', '--gpu', 'cpu',
                     '--solver', 'models/toy/TOY/faster_rcnn_end2end/solver.prototxt',
                     '--imdb', 'toy_train', '--weights', missing], timeout=120)
    assert code != 0
    assert 'weights file %s not found; see data/README.md' % missing in out
    assert 'Traceback' not in out


@pytest.mark.parametrize('script,net', [('faster_rcnn_end2end.sh', 'ResNet-101'),
                                        ('faster_rcnn_alt_opt.sh', 'ResNet-50')])
def test_resnet_scripts_start_from_kaiming_hes_model_files(tmp_path, script, net):
    """NET ResNet-50 / ResNet-101 trains from data/imagenet_models/<NET>-model.caffemodel (the
    names of Kaiming He's release), not a <NET>.v2.caffemodel."""
    weights = 'data/imagenet_models/%s-model.caffemodel' % net
    if os.path.exists(os.path.join(ROOT, weights)):
        pytest.skip('%s is present: the script would train' % weights)
    result = str(tmp_path / 'result.json')
    code, out = run([os.path.join(ROOT, 'experiments', 'scripts', script), 'cpu', net,
                     'pascal_voc', '--set', 'EXP_DIR', 'pytest_resnet',
                     'ROOT_DIR', str(tmp_path / 'root'), 'DATA_DIR', str(tmp_path / 'data')],
                    env={'RESULT': result}, timeout=300)
    with open(result) as f:
        summary = json.load(f)
    os.remove(os.path.join(ROOT, summary['log']))
    assert code != 0 and summary['status'] == 'failed'
    assert 'weights file %s not found; see data/README.md' % weights in out
    assert 'models/pascal_voc/%s/' % net in out


def test_bad_gpu_argument_is_rejected():
    code, out = run([sys.executable, 'tools/test_net.py', '--gpu', 'gpu0', '--def', 'x',
                     '--net', 'y'], timeout=120)
    assert code != 0 and "device id or 'cpu'" in out


# Tools on tiny inputs ---------------------------------------------------------------------------

TINY_FC_NET = '''name: "tiny_fc"
input: "data" input_shape { dim: 2 dim: 12 }
layer { name: "fc6" type: "InnerProduct" bottom: "data" top: "fc6"
        inner_product_param { num_output: 10 weight_filler { type: "gaussian" std: 1 }
                              bias_filler { type: "gaussian" std: 1 } } }
layer { name: "relu6" type: "ReLU" bottom: "fc6" top: "fc6" }
layer { name: "fc7" type: "InnerProduct" bottom: "fc6" top: "fc7"
        inner_product_param { num_output: 8 weight_filler { type: "gaussian" std: 1 }
                              bias_filler { type: "gaussian" std: 1 } } }
'''


def _tiny_fc_model(tmp_path):
    import caffe
    caffe.set_random_seed(3)
    prototxt = str(tmp_path / 'tiny.prototxt')
    with open(prototxt, 'w') as f:
        f.write(TINY_FC_NET)
    net = caffe.Net(prototxt, caffe.TEST)
    model = str(tmp_path / 'tiny.caffemodel')
    net.save(model)
    return prototxt, model, net


def _compress(tmp_path, ranks):
    prototxt, model, net = _tiny_fc_model(tmp_path)
    code, out = run([sys.executable, 'tools/compress_net.py', '--def', prototxt, '--net', model,
                     '--ranks', ranks], timeout=120)
    assert code == 0, out
    stem = 'tiny_svd_' + '_'.join(r.replace(':', '_') for r in ranks.split(','))
    return net, str(tmp_path / (stem + '.prototxt')), str(tmp_path / (stem + '.caffemodel'))


def test_compress_net_at_full_rank_keeps_the_outputs(tmp_path):
    import caffe
    import numpy as np
    net, prototxt_svd, model_svd = _compress(tmp_path, 'fc6:10,fc7:8')
    svd = caffe.Net(prototxt_svd, model_svd, caffe.TEST)
    assert 'fc6' not in svd.params and svd.params['fc6_L'][0].data.shape == (10, 12)
    assert len(svd.params['fc6_L']) == 1  # the first factor has no bias
    x = np.random.RandomState(0).randn(2, 12).astype(np.float32)
    np.testing.assert_allclose(svd.forward(data=x)['fc7'], net.forward(data=x)['fc7'],
                               rtol=1e-4, atol=1e-4)


def test_compress_net_truncation_error_is_the_dropped_singular_values(tmp_path):
    import caffe
    import numpy as np
    net, prototxt_svd, model_svd = _compress(tmp_path, 'fc6:4,fc7:3')
    svd = caffe.Net(prototxt_svd, model_svd, caffe.TEST)
    for name, rank in (('fc6', 4), ('fc7', 3)):
        W = net.params[name][0].data.astype(np.float64)
        approx = svd.params[name + '_U'][0].data @ svd.params[name + '_L'][0].data
        s = np.linalg.svd(W, compute_uv=False)
        # Eckart-Young: the best rank-k error in Frobenius norm.
        assert np.linalg.norm(W - approx) == pytest.approx(np.sqrt((s[rank:] ** 2).sum()),
                                                           rel=1e-4)
        np.testing.assert_array_equal(svd.params[name + '_U'][1].data, net.params[name][1].data)


def test_nets_are_fitted_to_a_datasets_classes(tmp_path):
    from caffe import io
    from caffe.proto import caffe_pb2
    from fast_rcnn.experiment import Experiment
    solver = os.path.join(ROOT, 'models', 'pascal_voc', 'ZF', 'faster_rcnn_end2end',
                          'solver.prototxt')
    experiment = Experiment.from_files([])
    fitted = experiment.solver_file(solver, 5, str(tmp_path))
    assert fitted != solver
    train_net = io.read_prototxt(fitted, caffe_pb2.SolverParameter()).train_net
    net = io.read_prototxt(train_net, caffe_pb2.NetParameter())
    layers = {l.name: l for l in net.layer}
    assert layers['cls_score'].inner_product_param.num_output == 5
    assert layers['bbox_pred'].inner_product_param.num_output == 20
    assert "'num_classes': 5" in layers['input-data'].python_param.param_str
    assert "'num_classes': 5" in layers['roi-data'].python_param.param_str
    # A net already written for the dataset keeps its classes; its copy differs only by the
    # settings written into its Python layers.
    fitted = experiment.solver_file(solver, 21, str(tmp_path / 'voc'))
    net = io.read_prototxt(io.read_prototxt(fitted, caffe_pb2.SolverParameter()).train_net,
                           caffe_pb2.NetParameter())
    written = io.read_prototxt(os.path.join(os.path.dirname(solver), 'train.prototxt'),
                               caffe_pb2.NetParameter())
    for layer in net.layer:
        layer.python_param.param_str = ''
    for layer in written.layer:
        layer.python_param.param_str = ''
    assert net == written


def test_end2end_training_takes_two_images_per_batch(sandbox, tmp_path):
    root, data = sandbox
    result = str(tmp_path / 'train.json')
    code, out = run([sys.executable, 'tools/train_net.py', '--gpu', 'cpu',
                     '--solver', 'models/toy/TOY/faster_rcnn_end2end/solver.prototxt',
                     '--imdb', 'toy_train', '--iters', '4', '--result', result,
                     '--cfg', 'experiments/cfgs/faster_rcnn_end2end.yml',
                     '--cfg', 'experiments/cfgs/toy.yml',
                     '--set', 'TRAIN.IMS_PER_BATCH', '2', 'EXP_DIR', 'pytest_ims2',
                     'ROOT_DIR', root, 'DATA_DIR', data], timeout=600)
    assert code == 0, out[-3000:]
    with open(result) as f:
        summary = json.load(f)
    assert summary['iterations'] == 4 and os.path.isfile(summary['final_model'])
    with open(summary['training_log']) as f:
        lines = [json.loads(line) for line in f]
    assert len(lines) == 4 and all(np.isfinite(v) for line in lines
                                   for v in line['losses'].values())
def test_reval_scores_detections_at_another_iou(tmp_path):
    """Every ground-truth box of a small toy test set detected once, shifted sideways by a
    quarter of its width: IoU (w - d) / (w + d) is about 0.6, a hit at VOC's 0.5 and a miss at
    0.7. reval's default stays 0.5; --ovthresh 0.7 scores the same detections at 0.7."""
    import pickle
    import numpy as np
    from datasets.toy import generate_toy_dataset
    data = tmp_path / 'data'
    generate_toy_dataset(str(data / 'toy'), num_train=1, num_test=4)
    from datasets.factory import get_imdb
    imdb = get_imdb('toy_test', str(data))
    roidb = imdb.gt_roidb()
    dets = [[np.zeros((0, 5), np.float32) for _ in range(imdb.num_images)]
            for _ in range(imdb.num_classes)]
    ious = []
    for i, entry in enumerate(roidb):
        for box, c in zip(entry['boxes'].astype(np.float64), entry['gt_classes']):
            w = box[2] - box[0] + 1
            d = np.round(w / 4)
            ious.append((w - d) / (w + d))
            dets[c][i] = np.vstack([dets[c][i], [[box[0] + d, box[1], box[2] + d, box[3],
                                                  0.9]]]).astype(np.float32)
    assert min(ious) > 0.55 and max(ious) < 0.65
    out_dir = tmp_path / 'test'
    out_dir.mkdir()
    with open(str(out_dir / 'detections.pkl'), 'wb') as f:
        pickle.dump(dets, f)
    results = {}
    for name, extra in (('default', []), ('iou07', ['--ovthresh', '0.7'])):
        result = str(tmp_path / (name + '.json'))
        code, out = run([sys.executable, 'tools/reval.py', str(out_dir), '--imdb', 'toy_test',
                         '--result', result] + extra + ['--set', 'DATA_DIR', str(data)],
                        timeout=120)
        assert code == 0, out
        with open(result) as f:
            results[name] = json.load(f)
    assert results['default']['ovthresh'] == 0.5
    assert results['default']['evaluation']['metric'] == 'VOC AP@0.5 (area under the curve)'
    assert results['default']['mean_ap'] == pytest.approx(1.0)
    assert results['iou07']['ovthresh'] == 0.7
    assert results['iou07']['evaluation']['metric'] == 'VOC AP@0.7 (area under the curve)'
    assert results['iou07']['mean_ap'] == pytest.approx(0.0)
    code, out = run([sys.executable, 'tools/reval.py', str(out_dir), '--imdb', 'toy_test',
                     '--ovthresh', '1.5', '--set', 'DATA_DIR', str(data)], timeout=120)
    assert code == 1 and 'between 0 and 1' in out


def test_coord_gradient_norms_tool(tmp_path):
    """tools/coord_gradient_norms.py on the toy nets: per-image norms whose medians it reports;
    an approximate net's coordinate part is 0; a net without a proposal layer is refused."""
    from datasets.toy import generate_toy_dataset
    data = tmp_path / 'data'
    generate_toy_dataset(str(data / 'toy'), num_train=2, num_test=1)
    results = {}
    for name in ('faster_rcnn_end2end_nonapprox', 'faster_rcnn_end2end'):
        result = str(tmp_path / (name + '.json'))
        code, out = run([sys.executable, 'tools/coord_gradient_norms.py', '--gpu', 'cpu',
                         '--solver', 'models/toy/TOY/%s/solver.prototxt' % name,
                         '--imdb', 'toy_train', '--images', '3', '--result', result,
                         '--cfg', 'experiments/cfgs/faster_rcnn_end2end.yml',
                         '--cfg', 'experiments/cfgs/toy.yml',
                         '--set', 'DATA_DIR', str(data), 'ROOT_DIR', str(tmp_path / 'root')],
                        timeout=300)
        assert code == 0, out[-3000:]
        with open(result) as f:
            results[name] = json.load(f)
    import numpy as np
    nonapprox = results['faster_rcnn_end2end_nonapprox']
    assert len(nonapprox['per_image']) == 3
    for key in ('rpn_bbox_pred_approx', 'rpn_bbox_pred_coord', 'net_approx', 'net_coord'):
        values = [row[key] for row in nonapprox['per_image']]
        assert all(v > 0 for v in values), key
        assert nonapprox['medians'][key] == pytest.approx(float(np.median(values)))
    approx = results['faster_rcnn_end2end']
    assert all(row['rpn_bbox_pred_coord'] == 0 and row['net_coord'] == 0
               for row in approx['per_image'])
    # At a training snapshot (bbox_pred saved with the normalization folded in: unfolded first).
    common = ['--gpu', 'cpu', '--imdb', 'toy_train', '--cfg',
              'experiments/cfgs/faster_rcnn_end2end.yml', '--cfg', 'experiments/cfgs/toy.yml']
    solver = 'models/toy/TOY/faster_rcnn_end2end_nonapprox/solver.prototxt'
    trained = str(tmp_path / 'train.json')
    code, out = run([sys.executable, 'tools/train_net.py', '--solver', solver, '--iters', '1',
                     '--result', trained] + common +
                    ['--set', 'DATA_DIR', str(data), 'ROOT_DIR', str(tmp_path / 'root')],
                    timeout=300)
    assert code == 0, out[-3000:]
    with open(trained) as f:
        snapshot = json.load(f)['final_model']
    at_snapshot = str(tmp_path / 'at_snapshot.json')
    code, out = run([sys.executable, 'tools/coord_gradient_norms.py', '--solver', solver,
                     '--weights', snapshot, '--images', '1', '--result', at_snapshot] + common +
                    ['--set', 'DATA_DIR', str(data), 'ROOT_DIR', str(tmp_path / 'root')],
                    timeout=300)
    assert code == 0, out[-3000:]
    with open(at_snapshot) as f:
        assert json.load(f)['per_image'][0]['net_coord'] > 0
    code, out = run([sys.executable, 'tools/coord_gradient_norms.py', '--gpu', 'cpu',
                     '--solver', 'models/toy/TOY/faster_rcnn_alt_opt/stage1_rpn_solver.pt',
                     '--imdb', 'toy_train', '--images', '1',
                     '--cfg', 'experiments/cfgs/faster_rcnn_end2end.yml',
                     '--cfg', 'experiments/cfgs/toy.yml',
                     '--set', 'DATA_DIR', str(data), 'ROOT_DIR', str(tmp_path / 'root')],
                    timeout=300)
    assert code == 1 and 'no proposal layer' in out, out[-2000:]
