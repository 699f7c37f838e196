#!/usr/bin/env python3
"""The paper's tables as experiments: trains and tests what each row of a table needs, by calling
the experiment scripts and tools (experiments/scripts/*.sh, tools/test_net.py, rpn_generate.py,
eval_recall.py, time_net.py, compress_net.py), and writes <results dir>/<table>.md with the
paper's value (experiments/paper_values.yml) beside ours. Every run hands its results over as a
JSON file (the scripts' RESULT, the tools' --result), kept under <results dir>/runs/<table>/;
nothing here reads printed output.

  experiments/paper_tables.py table2 --gpu 0 --net ZF --dataset pascal_voc
  experiments/paper_tables.py table8 --gpu cpu --net TOY --dataset toy --set DATA_DIR /tmp/data

Tables: table2 table3 table5 table8 table9 table10 table11 fig4, and sec32 (Sec. 3.2's training
modes compared over several seeds: the paper states no numbers). ITERS / ALT_OPT_ITERS (the
scripts' environment overrides) set the training length of every row; without them the scripts'
defaults (the paper's schedules) are used. Rows that differ only at test time share one trained
model. A row whose data or model is not available (selective search files, a second dataset,
an evaluation server) is written as "not run" with the reason.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys

import numpy as np
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'lib'))

from caffe.io import atomic_write  # noqa: E402
from datasets.coco import proposals_dir  # noqa: E402
from datasets.splits import dataset_splits  # noqa: E402
from fast_rcnn import net_surgery  # noqa: E402
from utils.param_str import load_param_str  # noqa: E402
TABLES = ('table2', 'table3', 'table5', 'table8', 'table9', 'table10', 'table11', 'fig4',
          'sec32')
# Tools that run no net and take no --gpu.
DEVICELESS_TOOLS = ('eval_recall.py', 'reval.py')
# The image pyramid of the paper's 5-scale testing (Table 10, after SPPnet) for a 600-pixel
# single scale; other single scales (the toy dataset's 240) scale it proportionally.
PYRAMID_600 = (480, 576, 688, 864, 1200)
PYRAMID_MAX_SIZE_1000 = 2000


class NotRun(Exception):
    """A row that cannot be produced here; the message says why."""


def not_run(reason):
    """A row maker that only says why the row is not run."""
    def row():
        raise NotRun(reason)
    return row


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Reproduce one of the paper's tables")
    parser.add_argument('table', choices=TABLES)
    parser.add_argument('--gpu', default='0', help="device id, or 'cpu' (default: %(default)s)")
    parser.add_argument('--net', default=None,
                        help="network (default: the paper's for the table; TOY for toy)")
    parser.add_argument('--dataset', default='pascal_voc',
                        help='pascal_voc, coco, toy or a custom dataset (default: %(default)s)')
    parser.add_argument('--results-dir', default=os.environ.get(
        'PAPER_RESULTS_DIR', os.path.join(ROOT, 'experiments', 'results')),
        help='where <table>.md is written (default: $PAPER_RESULTS_DIR or experiments/results)')
    parser.add_argument('--num-timing-images', type=int, default=100,
                        help='images timed for table5 (default: %(default)s)')
    parser.add_argument('--seeds', default='1,2,3,4,5',
                        help='sec32: the RNG_SEED of each training run of an arm '
                             '(default: %(default)s)')
    parser.add_argument('--arms', default=SEC32_DEFAULT_ARMS,
                        help='sec32: the arms to train, of %s (default: %%(default)s)'
                             % ', '.join(SEC32_ARMS))
    parser.add_argument('--vgg-rpn', default=None,
                        help="table2's 'SS -> RPN+VGG' row: a VGG-16 RPN model (e.g. the "
                             "stage-1 RPN of table3's unshared run)")
    parser.add_argument('--set', dest='set_cfgs', nargs=argparse.REMAINDER, default=[],
                        help='cfg KEY VALUE pairs given to every run (last option)')
    return parser.parse_args(argv)


def load_paper_values(path=None):
    with open(path or os.path.join(ROOT, 'experiments', 'paper_values.yml')) as f:
        return yaml.safe_load(f)


# Datasets and nets as experiments/dataset_splits.txt names them ----------------------------------

def dataset_imdbs(dataset, net=None):
    """(train imdb, test imdb, models subdir) of a dataset name (the scripts' table)."""
    row = dataset_splits(dataset, os.path.join(ROOT, 'models'), net)
    return row.train_imdb, row.test_imdb, row.models


def base_anchor_scales(prototxt):
    """The anchor scales a net's proposal layer is written for (param_str), else the paper's."""
    for layer in net_surgery.anchor_layers(net_surgery.read_net(prototxt)):
        scales = load_param_str(layer.python_param.param_str).get('scales')
        if scales:
            return tuple(int(float(v)) for v in scales)
    return (8, 16, 32)


def toy_scaled(values, single_scale):
    return tuple(int(round(v * single_scale / 600.0)) for v in values)


# Running the scripts and tools -------------------------------------------------------------------

class Runner:
    """Runs scripts and tools for one table, caching trained models by run name."""

    def __init__(self, args):
        self.args = args
        self.net = args.net
        self.train_imdb, self.test_imdb, self.pt_dir = dataset_imdbs(args.dataset, args.net)
        self.models = os.path.join('models', self.pt_dir, self.net)
        self.user_sets = list(args.set_cfgs or [])
        self.cfg_toy = ['--cfg', 'experiments/cfgs/toy.yml'] if args.dataset == 'toy' else []
        self.runs = {}

    # --- cfg values as the runs see them
    def cfg_value(self, key, default=None):
        """A cfg value after the user's --set (else the toy/paper default given)."""
        sets = self.user_sets
        for k, v in zip(sets[0::2], sets[1::2]):
            if k == key:
                return v
        return default

    def data_dir(self):
        return self.cfg_value('DATA_DIR', os.path.join(ROOT, 'data'))

    def test_single_scale(self):
        return 240 if self.args.dataset == 'toy' else 600

    def exp_dir(self, name):
        return 'paper_%s_%s_%s' % (self.args.dataset, self.net, name)

    def result_path(self, name):
        """Where the run `name` of this table leaves its results."""
        return os.path.join(self.args.results_dir, 'runs', self.args.table, name + '.json')

    def call(self, cmd, result, env=None, check=True):
        """Runs cmd in the repository root (its output shown as it comes: training runs last
        hours) and returns the JSON result file it wrote; RuntimeError on failure (with check
        False, only when it wrote no result file)."""
        print('+ ' + ' '.join(shlex.quote(c) for c in cmd), flush=True)
        if os.path.exists(result):
            os.remove(result)
        full_env = dict(os.environ, PYTHONUNBUFFERED='1', **(env or {}))
        code = subprocess.call(cmd, cwd=ROOT, env=full_env)
        sys.stdout.flush()
        found = read_json(result)
        if (code != 0 and check) or found is None:
            log = (found or {}).get('log')
            raise RuntimeError('%s failed (status %d)%s' % (
                ' '.join(cmd[:2]), code, ', log %s' % log if log else ''))
        return found

    def script_summary(self, name, script, sets=(), env=None, dataset=None, cfgs=(), net=None):
        """Runs experiments/scripts/<script> (on the table's net unless `net` says another) and
        returns its summary (the RESULT file), whatever its status: 'done', or 'diverged' /
        'failed' for a training that stopped."""
        cmd = [os.path.join('experiments', 'scripts', script), self.args.gpu, net or self.net,
               dataset or self.args.dataset]
        for c in cfgs:
            cmd += ['--cfg', c]
        cmd += ['--set', 'EXP_DIR', self.exp_dir(name)] + self.user_sets + list(sets)
        result = self.result_path(name)
        return self.call(cmd, result, dict(env or {}, RESULT=result), check=False)

    def script(self, name, script, sets=(), env=None, dataset=None, cfgs=(), net=None):
        """Runs experiments/scripts/<script> once per name; returns its results: 'map' (the
        test's mean AP), 'model' (the final model), 'rpn_model' (alt-opt's final RPN), 'coco'
        ((AP@.5, AP@[.5,.95]) on COCO-style datasets, else None)."""
        if name in self.runs:
            return self.runs[name]
        summary = self.script_summary(name, script, sets, env, dataset, cfgs, net)
        if summary.get('status') != 'done':
            raise RuntimeError('%s did not finish (log %s)' % (script, summary.get('log')))
        evaluation = summary['test'].get('evaluation') or {}
        coco = None
        if 'ap50' in evaluation:
            coco = (evaluation['ap50'], evaluation['mean_ap'])
        run = {'map': summary['test'].get('mean_ap'), 'model': summary['final_model'],
               'rpn_model': summary['train'].get('final_rpn_model'), 'coco': coco}
        self.runs[name] = run
        return run

    def tool(self, tool, args, cfg='faster_rcnn_alt_opt', sets=(), exp_dir=None, name=None):
        """Runs tools/<tool> and returns its --result file's contents."""
        cmd = [sys.executable, os.path.join('tools', tool)]
        if tool not in DEVICELESS_TOOLS:
            cmd += ['--gpu', self.args.gpu]
        result = self.result_path(name or '%s_%s' % (os.path.splitext(tool)[0],
                                                     exp_dir or 'test'))
        cmd += list(args) + ['--result', result]
        cmd += ['--cfg', 'experiments/cfgs/%s.yml' % cfg] + self.cfg_toy
        cmd += ['--set', 'EXP_DIR', exp_dir or self.exp_dir('test')] + self.user_sets + list(sets)
        return self.call(cmd, result)

    # --- the pieces rows are made of
    def shared(self, sets=(), name='shared'):
        """4-step alternating training: shared features (the paper's default system)."""
        return self.script(name, 'faster_rcnn_alt_opt.sh',
                           sets=['TEST.RPN_POST_NMS_TOP_N', '300'] + list(sets))

    def unshared(self):
        """Steps 1-2 of alternating training only: RPN and detector share no features."""
        return self.script('unshared', 'faster_rcnn_alt_opt.sh', env={'UNSHARED': '1'},
                           sets=['TEST.RPN_POST_NMS_TOP_N', '300'])

    def has_mat(self, method):
        imdbs = self.train_imdb.split('+') + [self.test_imdb]
        # VOC-style sets keep one <method>_data/<imdb>.mat; COCO one folder of per-image files.
        missing = [p for p in (proposals_dir(self.data_dir(), method) if i.startswith('coco_')
                               else os.path.join(self.data_dir(), method + '_data', i + '.mat')
                               for i in imdbs) if not os.path.exists(p)]
        missing = list(dict.fromkeys(missing))
        if missing:
            raise NotRun('no %s proposals (%s; data/README.md)'
                         % (method.replace('_', ' '), ', '.join(missing)))

    def fast_rcnn(self, method):
        """Fast R-CNN trained and tested on external proposals (.mat files)."""
        self.has_mat(method)
        return self.script(method, 'fast_rcnn.sh', sets=[
            'TRAIN.PROPOSAL_METHOD', method, 'TEST.PROPOSAL_METHOD', method])

    def detector_def(self):
        fast = os.path.join(self.models, 'fast_rcnn', 'test.prototxt')
        if os.path.isfile(os.path.join(ROOT, fast)):
            return fast
        return os.path.join(self.models, 'faster_rcnn_alt_opt', 'faster_rcnn_test.pt')

    def rpn_proposals(self, rpn_model, name, sets, prototxt=None):
        result = self.tool('rpn_generate.py', [
            '--def', prototxt or os.path.join(self.models, 'faster_rcnn_alt_opt', 'rpn_test.pt'),
            '--net', rpn_model, '--imdb', self.test_imdb], sets=sets,
            exp_dir=self.exp_dir('proposals_' + name), name='proposals_' + name)
        return result['proposals']

    def test_on_proposals(self, model, proposals, name, prototxt=None):
        result = self.tool('test_net.py', ['--def', prototxt or self.detector_def(),
                                           '--net', model, '--imdb', self.test_imdb,
                                           '--proposals', proposals],
                           exp_dir=self.exp_dir('test_' + name), name='test_' + name)
        return result['mean_ap']


def read_json(path):
    """The JSON object in path, or None when there is none (or it is unreadable)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def pct(value):
    """mAP in % from the 0-1 values the tools print."""
    return None if value is None else 100.0 * value


# The tables ------------------------------------------------------------------------------------

def table2(r):
    """Table 2: proposals at train and test time, with the RPN ablations at test time."""
    rows = {}
    rows['shared_300'] = lambda: pct(r.shared()['map'])
    rows['unshared_300'] = lambda: pct(r.unshared()['map'])
    rows['ss'] = lambda: pct(r.fast_rcnn('selective_search')['map'])
    rows['eb'] = lambda: pct(r.fast_rcnn('edge_boxes')['map'])
    notes = []

    def detector():
        # The paper's ablation detector is Fast R-CNN trained on SS; without SS files, the
        # unshared (stage-1) detector, trained on RPN proposals, stands in.
        try:
            return r.fast_rcnn('selective_search')['model']
        except NotRun:
            if not notes:
                notes.append('Ablation rows ("SS" at train time): no selective search data, so '
                             'the detector is the unshared stage-1 Fast R-CNN (trained on RPN '
                             'proposals) instead of one trained on SS.')
            return r.unshared()['model']

    def ablation(name, n, sets):
        def row():
            # The paper's test-time RPN: top 6000 before NMS, then N.
            props = r.rpn_proposals(r.unshared()['rpn_model'], name,
                                    ['TEST.RPN_PRE_NMS_TOP_N', '6000',
                                     'TEST.RPN_POST_NMS_TOP_N', str(n)] + sets)
            return pct(r.test_on_proposals(detector(), props, name))
        return row

    for n in (100, 300, 1000):
        rows['rpn_%d' % n] = ablation('rpn_%d' % n, n, [])
    rows['no_nms_6000'] = ablation('no_nms_6000', 6000, ['TEST.RPN_NO_NMS', 'True'])
    for n in (100, 300, 1000):
        rows['no_cls_%d' % n] = ablation('no_cls_%d' % n, n, ['TEST.RPN_MODE', 'no_cls'])
    for n in (300, 1000):
        rows['no_reg_%d' % n] = ablation('no_reg_%d' % n, n, ['TEST.RPN_MODE', 'no_reg'])

    def rpn_vgg():
        if not r.args.vgg_rpn:
            raise NotRun('needs a VGG-16 RPN: --vgg-rpn MODEL (e.g. the stage-1 RPN of table3 '
                         'with --net VGG16)')
        vgg_def = os.path.join('models', r.pt_dir, 'VGG16', 'faster_rcnn_alt_opt', 'rpn_test.pt')
        props = r.rpn_proposals(r.args.vgg_rpn, 'rpn_vgg_300', [
            'TEST.RPN_PRE_NMS_TOP_N', '6000', 'TEST.RPN_POST_NMS_TOP_N', '300'], prototxt=vgg_def)
        return pct(r.test_on_proposals(detector(), props, 'rpn_vgg_300'))
    rows['rpn_vgg_300'] = rpn_vgg
    return rows, notes


def table3(r):
    rows = {
        'ss_07': lambda: pct(r.fast_rcnn('selective_search')['map']),
        'unshared_07': lambda: pct(r.unshared()['map']),
        'shared_07': lambda: pct(r.shared()['map']),
    }

    def ss_0712():
        if r.args.dataset != 'pascal_voc':
            raise NotRun('07+12 needs PASCAL VOC 2007 and 2012')
        r.train_imdb = 'voc_2007_trainval+voc_2012_trainval'
        try:
            r.has_mat('selective_search')
        finally:
            r.train_imdb = dataset_imdbs(r.args.dataset, r.net)[0]
        return pct(r.script('ss_0712', 'fast_rcnn.sh', dataset='pascal_voc_0712')['map'])

    def shared_0712():
        if r.args.dataset != 'pascal_voc':
            raise NotRun('07+12 needs PASCAL VOC 2007 and 2012')
        return pct(r.script('shared_0712', 'faster_rcnn_alt_opt.sh', dataset='pascal_voc_0712',
                            sets=['TEST.RPN_POST_NMS_TOP_N', '300'])['map'])

    rows.update(ss_0712=ss_0712,
                shared_0712=shared_0712,
                shared_coco0712=not_run('needs a COCO-trained model fine-tuned on 07+12 (the '
                                        'paper\'s Sec. 4.2)'))
    return rows, []


def table5(r):
    """Timing of the shared model (and its SVD-compressed fc layers)."""
    test_def = os.path.join(r.models, 'faster_rcnn_alt_opt', 'faster_rcnn_test.pt')
    timing_args = ['--imdb', r.test_imdb, '--num-images', str(r.args.num_timing_images)]

    def timing(prototxt, model, name):
        t = r.tool('time_net.py', ['--def', prototxt, '--net', model] + timing_args,
                   name='timing_' + name)
        return [t['conv_ms'], t['proposal_ms'], t['region_ms'], t['total_ms'],
                '%.1f fps' % t['fps']]

    def rpn():
        return timing(test_def, r.shared()['model'], 'rpn')

    def svd():
        fc = fc_outputs(os.path.join(ROOT, test_def))
        # The Fast R-CNN paper's ranks for VGG-16's 4096-wide fc6/fc7: 1024 and 256.
        ranks = 'fc6:%d,fc7:%d' % (max(1, fc['fc6'] // 4), max(1, fc['fc7'] // 16))
        result = r.result_path('compress_svd')
        svd = r.call([sys.executable, 'tools/compress_net.py', '--def', test_def,
                      '--net', r.shared()['model'], '--ranks', ranks, '--result', result],
                     result)
        return timing(svd['prototxt'], svd['model'], 'svd')

    rows = {'vgg_ss': not_run('selective search runs outside this project (the paper: 1510 ms '
                              'on a CPU)')}
    rows['vgg_rpn'] = rpn if r.net == 'VGG16' else not_run('run with --net VGG16')
    rows['zf_rpn'] = rpn if r.net == 'ZF' else not_run('run with --net ZF')
    extra = []
    if r.net not in ('VGG16', 'ZF'):
        extra.append({'id': 'net_rpn', 'cells': [r.net, 'RPN + Fast R-CNN'], 'paper': None})
        rows['net_rpn'] = rpn
    extra.append({'id': 'rpn_svd', 'cells': [r.net, 'RPN + Fast R-CNN, SVD fc6/fc7'],
                  'paper': None})
    rows['rpn_svd'] = svd
    return rows, ['Times are per image on this run\'s device (%s), %s test images.'
                  % ('CPU' if r.args.gpu in ('cpu',) or r.args.gpu.startswith('-')
                     else 'GPU %s' % r.args.gpu, r.args.num_timing_images)], extra


def fc_outputs(prototxt):
    """fc6's and fc7's output counts (VGG-16's 4096 where a net lacks the layer)."""
    layers = {l.name: l for l in net_surgery.read_net(prototxt).layer}
    return {name: layers[name].inner_product_param.num_output if name in layers else 4096
            for name in ('fc6', 'fc7')}


def table8(r):
    base = base_anchor_scales(os.path.join(
        ROOT, r.models, 'faster_rcnn_alt_opt', 'faster_rcnn_test.pt'))
    small, large = base[0], base[min(1, len(base) - 1)]
    settings = {
        's1_r1_small': ([small], [1.0]), 's1_r1_large': ([large], [1.0]),
        's1_r3_small': ([small], None), 's1_r3_large': ([large], None),
        's3_r1': (list(base), [1.0]), 's3_r3': None,
    }
    rows = {}
    for key, setting in settings.items():
        if setting is None:
            rows[key] = lambda: pct(r.shared()['map'])
            continue
        scales, ratios = setting
        sets = ['ANCHOR_SCALES', str(scales)]
        if ratios:
            sets += ['ANCHOR_RATIOS', str(ratios)]
        rows[key] = (lambda k, s: lambda: pct(r.shared(sets=s, name=k)['map']))(key, sets)
    notes = ['Anchor scales are multiples of the 16-pixel base box; this net is written for '
             'scales %s (the paper\'s 128^2, 256^2, 512^2 are 8, 16, 32).' % (list(base),)]
    return rows, notes


def table9(r):
    rows = {}
    for lam in ('0.1', '1', '10', '100'):
        if lam == '10':
            rows['lambda_10'] = lambda: pct(r.shared()['map'])
        else:
            rows['lambda_' + lam] = (lambda v: lambda: pct(r.shared(
                sets=['TRAIN.RPN_LAMBDA', v], name='lambda_' + v)['map']))(lam)
    return rows, ['lambda weighs the RPN\'s regression loss (cfg.TRAIN.RPN_LAMBDA); 10 is the '
                  'release\'s loss_weight 1.']


def table10(r):
    single = r.test_single_scale()
    pyramid = PYRAMID_600 if single == 600 else toy_scaled(PYRAMID_600, single)
    max_size = int(r.cfg_value('TEST.MAX_SIZE', 400 if r.args.dataset == 'toy' else 1000))
    pyramid_max = PYRAMID_MAX_SIZE_1000 * max_size // 1000

    def one_stage():
        return r.script('dense', 'fast_rcnn.sh', sets=[
            'TRAIN.PROPOSAL_METHOD', 'dense', 'TEST.PROPOSAL_METHOD', 'dense'])

    def five_scales():
        result = r.tool('test_net.py', [
            '--def', r.detector_def(), '--net', one_stage()['model'], '--imdb', r.test_imdb],
            cfg='fast_rcnn', exp_dir=r.exp_dir('dense_5scales'), name='dense_5scales', sets=[
                'TEST.HAS_RPN', 'False', 'TEST.PROPOSAL_METHOD', 'dense',
                'TEST.SCALES', str(list(pyramid)), 'TEST.MAX_SIZE', str(pyramid_max)])
        return pct(result['mean_ap'])

    rows = {'two_stage': lambda: pct(r.unshared()['map']),
            'one_stage_1': lambda: pct(one_stage()['map']),
            'one_stage_5': five_scales}
    return rows, ['One-stage: Fast R-CNN trained and tested on dense windows (3 scales x 3 '
                  'ratios on the stride-16 grid; core/dense_windows.py); 5 scales: %s, max '
                  'size %d.' % (list(pyramid), pyramid_max)]


def table11(r):
    cfgs = ['experiments/cfgs/coco.yml']
    toy_sets = []
    if r.args.dataset != 'coco':
        # COCO's 4 scales are the net's 3 plus one half the smallest (64^2 beside 128^2).
        base = base_anchor_scales(os.path.join(
            ROOT, r.models, 'faster_rcnn_end2end', 'test.prototxt'))
        half = base[0] // 2 if base[0] % 2 == 0 else base[0] / 2.0
        toy_sets = ['ANCHOR_SCALES', str([half] + list(base))]

    def val(run):
        if run['coco'] is not None:
            return [run['coco'][0], run['coco'][1], 'not run: test-dev needs the COCO server',
                    'not run: test-dev needs the COCO server']
        return [pct(run['map']), 'n/a (VOC-style evaluation)',
                'not run: test-dev needs the COCO server', 'not run: test-dev needs the COCO '
                'server']

    def fast_ss():
        r.has_mat('selective_search')
        return val(r.script('coco_ss', 'fast_rcnn.sh', cfgs=cfgs, sets=toy_sets + [
            'TRAIN.PROPOSAL_METHOD', 'selective_search']))

    def faster():
        return val(r.script('coco_rpn', 'faster_rcnn_end2end.sh', cfgs=cfgs, sets=toy_sets + [
            'TEST.RPN_POST_NMS_TOP_N', '300']))

    def faster_resnet():
        # Sec. 4.2's COCO 2015 entry: the same end-to-end training on ResNet-101 (the toy
        # dataset's stand-in: its small ResNet, trained from random weights).
        net = 'TOY_ResNet' if r.args.dataset == 'toy' else 'ResNet-101'
        if r.args.dataset != 'toy':
            weights = os.path.join(r.data_dir(), 'imagenet_models', 'ResNet-101-model.caffemodel')
            if not os.path.isfile(weights):
                raise NotRun('no ResNet-101 ImageNet model (%s; data/README.md)' % weights)
        return val(r.script('coco_rpn_resnet101', 'faster_rcnn_end2end.sh', cfgs=cfgs,
                            sets=toy_sets + ['TEST.RPN_POST_NMS_TOP_N', '300'], net=net))

    rows = {'fast_ss_paper2': not_run('the Fast R-CNN paper\'s own number'),
            'fast_ss': fast_ss, 'faster_train': faster,
            'faster_trainval': not_run('needs COCO trainval and the test-dev server'),
            'faster_resnet101': faster_resnet}
    return rows, ['COCO settings (experiments/cfgs/coco.yml): negatives [0, 0.5), 4 anchor '
                  'scales, iter_size 8 (8-image RPN / 16-image Fast R-CNN batches on one '
                  'device).']


def fig4(r):
    counts = (300, 1000, 2000)

    def recall_rows(source_args, label):
        result = r.tool('eval_recall.py', ['--imdb', r.test_imdb, '--counts',
                                           ','.join(map(str, counts)), '--label', label,
                                           '--out', os.path.join(r.args.results_dir,
                                                                 'fig4_%s.png' % label)]
                        + source_args, name='recall_' + label)
        source = result['sources'][0]
        # IoU 0.5 and 0.7 (thresholds from 0.5 in steps of 0.05), and the average recall.
        return [[source['recalls'][str(n)][0], source['recalls'][str(n)][4],
                 source['average_recall'][str(n)]] for n in counts]

    def method(name):
        def row():
            r.has_mat(name)
            return recall_rows(['--method', name], name)
        return row

    def rpn():
        props = r.rpn_proposals(r.shared()['model'], 'fig4', [
            'TEST.RPN_POST_NMS_TOP_N', '2000'])
        return recall_rows(['--rpn-file', props], 'RPN')
    return {'ss': method('selective_search'), 'eb': method('edge_boxes'), 'rpn': rpn}, [
        'Curves: fig4_<method>.png beside this file.']


# Sec. 3.2: the ways of training the shared net jointly, as arms of one experiment: row id ->
# (the end-to-end script's JOINT mode, cfg pairs). The first three are the paper's modes (the
# default arms; non-approximate training with cfg's default coordinate gradient: foreground RoIs,
# x 0.1); the others are ablations of the coordinate gradient (docs/joint_training.md), the
# loss's exact derivative first.
SEC32_ARMS = {
    'approx_roipool': ('approx', []),
    'approx_warp': ('approx_warp', []),
    'nonapprox': ('nonapprox', []),
    'nonapprox_exact': ('nonapprox', ['TRAIN.COORD_GRADIENT_ROIS', 'all',
                                      'TRAIN.COORD_GRADIENT_SCALE', '1']),
    'nonapprox_fg_x1': ('nonapprox', ['TRAIN.COORD_GRADIENT_ROIS', 'fg',
                                      'TRAIN.COORD_GRADIENT_SCALE', '1']),
    'nonapprox_fg_x0.01': ('nonapprox', ['TRAIN.COORD_GRADIENT_ROIS', 'fg',
                                         'TRAIN.COORD_GRADIENT_SCALE', '0.01']),
}
SEC32_DEFAULT_ARMS = 'approx_roipool,approx_warp,nonapprox,nonapprox_exact'
SEC32_METRICS = ('map50', 'map70', 'recall50', 'recall70')
SEC32_RECALL_COUNT = 300


def sec32_run(r, arm, joint, sets, seed):
    """One training run of an arm, tested: {'status', and for a finished run 'map50', 'map70'
    (the test's detections evaluated again at IoU 0.7, tools/reval.py), 'recall50',
    'recall70' (the RPN's recall of the test set's ground truth with its top 300 proposals,
    tools/rpn_generate.py + eval_recall.py)}; a diverged run says where."""
    name = '%s_seed%d' % (arm, seed)
    summary = r.script_summary(name, 'faster_rcnn_end2end.sh', env={'JOINT': joint},
                               sets=['RNG_SEED', str(seed)] + list(sets))
    status = summary.get('status')
    if status == 'diverged':
        return {'status': 'diverged', 'diverged_at': (summary.get('train') or {}).get(
            'diverged_at'), 'log': summary.get('log')}
    if status != 'done':
        raise RuntimeError('%s: the run %s (log %s)' % (name, status, summary.get('log')))
    test = summary['test']
    reval = r.tool('reval.py', [test['output_dir'], '--imdb', r.test_imdb, '--ovthresh', '0.7'],
                   cfg='faster_rcnn_end2end', exp_dir=r.exp_dir(name), name='map70_' + name)
    pre_nms = r.cfg_value('TEST.RPN_PRE_NMS_TOP_N', 1000 if r.args.dataset == 'toy' else 6000)
    props = r.rpn_proposals(summary['final_model'], name, [
        'TEST.RPN_PRE_NMS_TOP_N', str(pre_nms),
        'TEST.RPN_POST_NMS_TOP_N', str(SEC32_RECALL_COUNT)], prototxt=test['prototxt'])
    recall = r.tool('eval_recall.py', ['--imdb', r.test_imdb, '--rpn-file', props,
                                       '--counts', str(SEC32_RECALL_COUNT), '--label', name,
                                       '--out', os.path.join(r.args.results_dir, 'runs',
                                                             'sec32', 'recall_%s.png' % name)],
                    name='recall_' + name)
    # Thresholds from IoU 0.5 in steps of 0.05: 0.5 and 0.7 are entries 0 and 4.
    recalls = recall['sources'][0]['recalls'][str(SEC32_RECALL_COUNT)]
    return {'status': 'done', 'map50': test['mean_ap'], 'map70': reval['mean_ap'],
            'recall50': recalls[0], 'recall70': recalls[4], 'log': summary.get('log')}


def summarize_runs(runs):
    """An arm's row from its runs: counts ('runs', 'diverged') and, over the finished runs,
    each metric's mean and sample standard deviation (ddof 1; 0 for a single run)."""
    done = [run for run in runs if run['status'] == 'done']
    out = {'runs': len(runs), 'diverged': sum(run['status'] == 'diverged' for run in runs),
           'finished': len(done)}
    for key in SEC32_METRICS:
        values = [run[key] for run in done if run.get(key) is not None]
        if values:
            out[key] = {'mean': float(np.mean(values)),
                        'std': float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                        'values': [float(v) for v in values]}
        else:
            out[key] = None
    return out


def sec32_cells(summary):
    """The table cells of an arm: runs, diverged, then mean +- std of each metric (mAP in %,
    recall as a fraction)."""
    cells = [summary['runs'], summary['diverged']]
    for key in SEC32_METRICS:
        stat = summary[key]
        scale = 100.0 if key.startswith('map') else 1.0
        cells.append('—' if stat is None else '%.*f ± %.*f' % (
            1 if scale > 1 else 3, scale * stat['mean'], 1 if scale > 1 else 3,
            scale * stat['std']))
    return cells


def sec32(r):
    """Sec. 3.2: approximate joint training with RoI pooling (the release's), the same with
    ROIWarping (coordinate gradient off), and non-approximate joint training, each trained
    with every seed of --seeds."""
    try:
        seeds = [int(s) for s in r.args.seeds.split(',')]
    except ValueError:
        raise SystemExit('--seeds expects integers like 1,2,3,4,5, got %r' % r.args.seeds)
    arms = r.args.arms.split(',')
    unknown = [a for a in arms if a not in SEC32_ARMS]
    if unknown:
        raise SystemExit('--arms: unknown arm(s) %s; known: %s'
                         % (', '.join(unknown), ', '.join(SEC32_ARMS)))
    per_arm = {}

    def arm_row(arm, joint, sets):
        def row():
            runs = []
            for seed in seeds:
                print('=== sec32: %s, seed %d' % (arm, seed), flush=True)
                run = sec32_run(r, arm, joint, sets, seed)
                run['seed'] = seed
                runs.append(run)
            per_arm[arm] = {'joint': joint, 'sets': list(sets), 'runs': runs,
                            'summary': summarize_runs(runs)}
            atomic_write(os.path.join(r.args.results_dir, 'sec32.json'),
                         json.dumps(per_arm, indent=1, sort_keys=True) + '\n')
            return sec32_cells(per_arm[arm]['summary'])
        return row

    rows = {arm: arm_row(arm, *SEC32_ARMS[arm]) for arm in arms}
    notes = ['Seeds (RNG_SEED) %s; mean ± sample std over the runs that finished; a diverged '
             'run stopped on a NaN/Inf loss. mAP in %% at IoU 0.5 and 0.7 (tools/reval.py '
             '--ovthresh 0.7 on the same detections); RPN recall of the test set\'s ground truth '
             'by its top %d proposals (tools/rpn_generate.py with TEST.RPN_POST_NMS_TOP_N %d, '
             'tools/eval_recall.py). Per-run values: sec32.json beside this file.'
             % (','.join(map(str, seeds)), SEC32_RECALL_COUNT, SEC32_RECALL_COUNT)]
    return rows, notes


BUILDERS = {'table2': table2, 'table3': table3, 'table5': table5, 'table8': table8,
            'table9': table9, 'table10': table10, 'table11': table11, 'fig4': fig4,
            'sec32': sec32}


# Writing the table -----------------------------------------------------------------------------

def fmt(value):
    if value is None:
        return '—'
    if isinstance(value, float):
        return '%.1f' % value
    return str(value)


def write_markdown(path, spec, table, results, notes, setup):
    lines = ['# %s' % spec['title'], '']
    lines += ['- %s' % s for s in setup] + ['']
    columns = list(spec['columns'])
    is_multi = table in ('table5', 'table11', 'fig4')
    if table == 'sec32':
        # No published numbers (the paper describes the modes): ours only, a value per column.
        lines.append('| ' + ' | '.join(columns) + ' |')
        lines.append('|' + '---|' * len(columns))
        for row in spec['rows']:
            ours = results.get(row['id'])
            values = ours if isinstance(ours, list) else \
                [fmt(ours)] + ['—'] * (len(columns) - len(row['cells']) - 1)
            lines.append('| ' + ' | '.join([fmt(c) for c in row['cells']]
                                            + [fmt(v) for v in values]) + ' |')
        if notes:
            lines += [''] + ['- %s' % n for n in notes]
        atomic_write(path, '\n'.join(lines) + '\n')
        return
    if table == 'fig4':
        head = columns[:2] + ['%s (ours)' % c for c in columns[2:]] + ['paper']
    elif is_multi:
        value_cols = columns[len(spec['rows'][0]['cells']):]
        head = columns[:len(spec['rows'][0]['cells'])] + \
            ['%s (paper)' % c for c in value_cols] + ['%s (ours)' % c for c in value_cols]
    else:
        head = columns[:-1] + ['%s (paper)' % columns[-1], '%s (ours)' % columns[-1]]
    lines.append('| ' + ' | '.join(head) + ' |')
    lines.append('|' + '---|' * len(head))
    for row in spec['rows'] + spec.get('extra_rows_run', []):
        ours = results.get(row['id'])
        cells = [fmt(c) for c in row['cells']]
        if table == 'fig4':
            if isinstance(ours, list):
                for n, vals in zip((300, 1000, 2000), ours):
                    lines.append('| ' + ' | '.join(cells + [str(n)] + ['%.3f' % v for v in vals]
                                                  + [fmt(row['paper'])]) + ' |')
            else:
                lines.append('| ' + ' | '.join(cells + ['—', fmt(ours), '—', '—',
                                                        fmt(row['paper'])]) + ' |')
            continue
        if is_multi:
            n = len(head) - len(cells)
            paper = row['paper'] if isinstance(row['paper'], list) else [None] * (n // 2)
            # A row not run says why once, in its first column of ours.
            ours_list = ours if isinstance(ours, list) else [ours] + [None] * (n // 2 - 1)
            lines.append('| ' + ' | '.join(cells + [fmt(v) for v in paper]
                                           + [fmt(v) for v in ours_list]) + ' |')
        else:
            lines.append('| ' + ' | '.join(cells + [fmt(row['paper']), fmt(ours)]) + ' |')
    if notes:
        lines += [''] + ['- %s' % n for n in notes]
    atomic_write(path, '\n'.join(lines) + '\n')


def main(argv=None):
    args = parse_args(argv)
    spec = load_paper_values()[args.table]
    if args.net is None:
        args.net = 'TOY' if args.dataset == 'toy' else spec.get('net', 'ZF')
    runner = Runner(args)
    built = BUILDERS[args.table](runner)
    rows, notes = built[0], list(built[1])
    spec = dict(spec)
    spec['extra_rows_run'] = built[2] if len(built) > 2 else []
    results = {}
    for row in spec['rows'] + spec['extra_rows_run']:
        make = rows.get(row['id'])
        if make is None:
            continue
        print('=== %s: %s' % (args.table, row['id']), flush=True)
        try:
            results[row['id']] = make()
        except NotRun as e:
            results[row['id']] = 'not run: %s' % e
        except RuntimeError as e:
            results[row['id']] = 'failed: %s' % e
    setup = ['dataset: %s (train %s, test %s)' % (args.dataset, runner.train_imdb,
                                                   runner.test_imdb),
             'net: %s; device: %s' % (args.net, args.gpu),
             'iterations: ITERS=%s, ALT_OPT_ITERS=%s (unset: the scripts\' defaults, the '
             'paper\'s schedules)' % (os.environ.get('ITERS', 'unset'),
                                      os.environ.get('ALT_OPT_ITERS', 'unset')),
             'extra settings: %s' % (' '.join(args.set_cfgs) or 'none'),
             'paper values: experiments/paper_values.yml (arXiv 1506.01497)']
    path = os.path.join(args.results_dir, args.table + '.md')
    write_markdown(path, spec, args.table, results, notes, setup)
    print('Wrote %s' % path, flush=True)
    failed = [k for k, v in results.items() if isinstance(v, str) and v.startswith('failed')]
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
