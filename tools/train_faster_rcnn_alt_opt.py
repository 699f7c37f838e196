#!/usr/bin/env python3
"""Trains Faster R-CNN by 4-step alternating training (paper Sec. 3.2):

  1. RPN, initialized from an ImageNet model; then its proposals for the training set.
  2. Fast R-CNN on those proposals, also initialized from the ImageNet model.
  3. RPN again, initialized from the step-2 detector with the shared conv layers fixed
     (their lr_mult is 0 in the stage-2 prototxts): from here the two nets share convolutions.
     Then its proposals.
  4. Fast R-CNN again, from the step-3 model, shared conv layers fixed.

Each step runs in a fresh process, as in the release, so no state (weights, GPU memory, a
step's settings) leaks into the next; it gets the run's experiment with the step's settings
(STEP_CFG) merged, as a config file would be (fast_rcnn.experiment). The final detector is copied to
<net_name>_faster_rcnn_final.caffemodel beside the step-4 snapshot. The results (final model,
final RPN, every step's model and proposals) go to --result as JSON (default:
<net_name>_alt_opt_result.json in the output folder).

  tools/train_faster_rcnn_alt_opt.py --gpu 0 --net_name ZF \
      --weights data/imagenet_models/ZF.v2.caffemodel --imdb voc_2007_trainval \
      --cfg experiments/cfgs/faster_rcnn_alt_opt.yml

With a GPU list (--gpu 0,1,2,3) each training step runs data-parallel, one process per GPU joined
by NCCL (docs/parallel.md); proposals are generated on the first GPU.
"""
import argparse
import concurrent.futures
import glob
import json
import multiprocessing
import os
import pprint
import shutil
import signal
import sys

import _common

from caffe import parallel
from datasets.splits import models_folder
from fast_rcnn.experiment import Experiment
from fast_rcnn.train_state import TRAIN_STATE_EXT
from fast_rcnn.training_errors import TrainingInterrupted

# The release's iterations for PASCAL VOC: 80k RPN, 40k Fast R-CNN, per stage.
DEFAULT_ITERS = (80000, 40000, 80000, 40000)
STAGES = ('stage1_rpn', 'stage1_fast_rcnn', 'stage2_rpn', 'stage2_fast_rcnn')

# What each kind of step sets on top of the run's config (the release's alt-opt settings).
STEP_CFG = {
    # The RPN trains on ground truth, one image at a time; BBOX_REG is the detector's box
    # regression, not the RPN's.
    'rpn': {'TRAIN': {'HAS_RPN': True, 'BBOX_REG': False, 'PROPOSAL_METHOD': 'gt',
                      'IMS_PER_BATCH': 1}},
    'fast_rcnn': {'TRAIN': {'HAS_RPN': False, 'PROPOSAL_METHOD': 'rpn', 'IMS_PER_BATCH': 2}},
    # Proposals for training the detector: no top-N cut before NMS, the best 2000 after it.
    'generate': {'TEST': {'RPN_PRE_NMS_TOP_N': -1, 'RPN_POST_NMS_TOP_N': 2000}},
}


def parse_args(argv=None):
    parser = _common.ArgumentParser(description='Train Faster R-CNN by alternating '
                                                 'optimization (4 steps)')
    _common.add_devices_arg(parser)
    parser.add_argument('--net_name', dest='net_name', required=True,
                        help='network name (ZF, VGG_CNN_M_1024, VGG16, TOY)')
    parser.add_argument('--weights', dest='pretrained_model', default=None,
                        help='ImageNet model to initialize steps 1 and 2 (none: random init)')
    parser.add_argument('--imdb', dest='imdb_name', default='voc_2007_trainval',
                        help='dataset to train on (default: %(default)s)')
    parser.add_argument('--models', dest='models_dir', default=None,
                        help='folder with the stage prototxts (default: '
                             'models/<pascal_voc|coco|toy>/<net_name>/faster_rcnn_alt_opt)')
    parser.add_argument('--iters', dest='iters', default=None,
                        help='iterations of the 4 steps, "rpn1,frcn1,rpn2,frcn2" '
                             '(default: %s)' % ','.join(map(str, DEFAULT_ITERS)))
    parser.add_argument('--unshared', dest='unshared', action='store_true',
                        help='stop after step 2: an RPN and a detector that share no features '
                             "(the paper's 'unshared' rows of Tables 2, 3)")
    parser.add_argument('--rand', dest='randomize', action='store_true',
                        help='do not seed the random number generators')
    parser.add_argument('--restore', dest='restore', default=None, metavar='STEP:SOLVERSTATE',
                        help='resume step STEP (1-4) from this .solverstate; the earlier steps '
                             "are taken from the run's progress file in the output folder")
    return _common.parse_tool_args(parser, argv, '<net_name>_alt_opt_result.json')


def parse_iters(text):
    if text is None:
        return DEFAULT_ITERS
    try:
        iters = tuple(int(v) for v in text.split(','))
    except ValueError:
        iters = ()
    if len(iters) != 4 or min(iters) <= 0:
        raise ValueError('--iters expects 4 positive integers "rpn1,frcn1,rpn2,frcn2", got %r'
                         % text)
    return iters


def find_stage_files(models_dir):
    """The four stage solvers and the RPN test net in models_dir (the release's names:
    stage1_rpn_solver60k80k.pt, ..., rpn_test.pt)."""
    solvers = []
    for stage in STAGES:
        found = sorted(glob.glob(os.path.join(models_dir, stage + '_solver*')))
        if not found:
            raise FileNotFoundError('%s: no %s_solver*.pt file' % (models_dir, stage))
        solvers.append(found[0])
    rpn_test = os.path.join(models_dir, 'rpn_test.pt')
    if not os.path.isfile(rpn_test):
        raise FileNotFoundError('%s: no rpn_test.pt' % models_dir)
    return solvers, rpn_test


# The steps: each runs in its own process ---------------------------------------------------------

def step_experiment(kind, infix=None):
    """The run's experiment (cfg) with the settings of a step of this kind (STEP_CFG) and, for
    a training step, its snapshot infix."""
    overrides = STEP_CFG[kind]
    if infix is not None:
        overrides = dict(overrides, TRAIN=dict(overrides['TRAIN'], SNAPSHOT_INFIX=infix))
    return Experiment.from_cfg_with(overrides, 'alt-opt step settings')


def _train(experiment, device, imdb_name, init_model, solver, max_iters, randomize,
           rpn_file=None, restore=None, uid=None):
    """A training step (step_experiment('rpn' or 'fast_rcnn')), in its own process."""
    from fast_rcnn.experiment import train_experiment
    _common.setup_caffe(device)
    print('Init model: %s' % init_model, flush=True)
    print('Using the experiment:\n%s' % pprint.pformat(experiment), flush=True)
    training = train_experiment(experiment, solver, imdb_name, init_model, rpn_file)
    result = training.run(max_iters, restore, randomize, uid=uid)
    # Only each step's last snapshot is used.
    for path in result.model_paths[:-1]:
        stem = os.path.splitext(path)[0]
        for stale in (path, stem + '.solverstate', stem + TRAIN_STATE_EXT):
            if os.path.exists(stale):
                os.remove(stale)
    return {'model_path': result.final_model, 'training_log': result.training_log}


def rpn_generate(experiment, device, imdb_name, rpn_model_path, rpn_test_prototxt):
    """Proposals of the step's RPN for every dataset of imdb_name, in its own process
    (experiment: step_experiment('generate'))."""
    import caffe
    from datasets.proposals_file import save_proposals
    from rpn.generate import imdb_proposals
    _common.setup_caffe(device)
    paths = []
    for name in imdb_name.split('+'):  # one proposals file per dataset of a joined '+' name
        imdb = experiment.imdb(name)
        output_dir = experiment.output_dir(imdb)
        prototxt = experiment.net_file(rpn_test_prototxt, imdb.num_classes, output_dir,
                                       caffe.TEST)
        net = caffe.Net(prototxt, rpn_model_path, caffe.TEST)
        print('Generating proposals for %s with %s' % (imdb.name, rpn_model_path), flush=True)
        proposals = imdb_proposals(net, imdb)
        stem = os.path.splitext(os.path.basename(rpn_model_path))[0]
        path = os.path.join(output_dir, stem + '_proposals.npz')
        save_proposals(path, proposals)
        print('Wrote RPN proposals to %s' % path, flush=True)
        paths.append(path)
    return {'proposal_path': paths if len(paths) > 1 else paths[0]}


def run_in_process(title, target, **kwargs):
    """Runs target(**kwargs) in a fresh process and returns its result; an exception there is
    raised here."""
    print('\n' + '~' * 70 + '\n' + title + '\n' + '~' * 70, flush=True)
    context = multiprocessing.get_context('spawn')
    # Ctrl-C reaches the whole process group: the step's process snapshots and stops (see
    # fast_rcnn.train); this one waits for it instead of dying first. A Python-level handler,
    # not SIG_IGN: the child must not inherit an ignored SIGINT.
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            return pool.submit(target, **kwargs).result()
    finally:
        signal.signal(signal.SIGINT, previous)


def _step_rank(rank, uid, target, kwargs, gpus, result_path):
    """One GPU's process of a data-parallel training step (_common.run_gpu_ranks); rank 0 hands
    the step's result (or its interruption) to the parent through result_path."""
    _common.join_ranks(rank, len(gpus))
    kwargs = dict(kwargs, device=gpus[rank], uid=uid)
    try:
        outcome = {'result': target(**kwargs)}
    except TrainingInterrupted as e:
        outcome = {'interrupted': [e.signum, e.iteration, e.model_path, e.state_path]}
        code = e.exit_code
    except _common.user_errors() as e:
        print('error: rank %d: %s' % (rank, _common.error_message(e)), file=sys.stderr,
              flush=True)
        sys.exit(1)
    else:
        code = 0
    if rank == 0:
        from caffe.io import atomic_write
        atomic_write(result_path, json.dumps(outcome))
    sys.exit(code)


def run_on_gpus(title, target, gpus, result_dir, **kwargs):
    """run_in_process for a training step on several GPUs: one process per GPU (NCCL)."""
    print('\n' + '~' * 70 + '\n' + title + ' (%d GPUs)\n' % len(gpus) + '~' * 70, flush=True)
    result_path = os.path.join(result_dir, '.alt_opt_step_result.json')
    if os.path.exists(result_path):
        os.remove(result_path)
    code = _common.run_gpu_ranks(_step_rank, gpus, target, kwargs, gpus, result_path)
    outcome = {}
    if os.path.isfile(result_path):
        outcome = _common.read_result(result_path)
        os.remove(result_path)
    if 'interrupted' in outcome:
        raise TrainingInterrupted(*outcome['interrupted'])
    if code or 'result' not in outcome:
        _common.fail('%s failed on its GPUs (exit status %d; see the errors above)'
                     % (title, code))
    return outcome['result']


# Resuming: each finished step is recorded in a progress file, so that a run resumed at step k
# (--restore k:SOLVERSTATE) takes steps 1..k-1 from it. ------------------------------------------

def parse_restore(text):
    """--restore 'STEP:SOLVERSTATE' -> (step 1-4, path); None -> (None, None)."""
    if text is None:
        return None, None
    step, sep, path = text.partition(':')
    if not sep or step not in ('1', '2', '3', '4') or not path:
        raise ValueError('--restore expects STEP:SOLVERSTATE with STEP 1-4 (1: stage 1 RPN, '
                         '2: stage 1 Fast R-CNN, 3: stage 2 RPN, 4: stage 2 Fast R-CNN), got %r'
                         % text)
    return int(step), path


class Progress:
    """<output dir>/<net_name>_alt_opt_progress.json: what each finished step produced, for the
    run of this net, dataset and initial weights."""

    def __init__(self, output_dir, net_name, imdb_name, pretrained_model):
        self.path = os.path.join(output_dir, '%s_alt_opt_progress.json' % net_name)
        self.key = {'net_name': net_name, 'imdb': imdb_name,
                    'weights': os.path.abspath(pretrained_model) if pretrained_model else None}
        self.steps = {}

    def load(self, upto):
        """Reads the results of steps 1..upto-1; a missing or foreign record is an error."""
        if upto <= 1:
            return self.steps  # step 1 needs nothing from earlier steps
        if not os.path.isfile(self.path):
            raise FileNotFoundError('cannot resume at step %d: no progress file %s (was the '
                                    'run made with the same --net_name, --imdb and EXP_DIR?)'
                                    % (upto, self.path))
        try:
            with open(self.path) as f:
                record = json.load(f)
        except ValueError as e:
            raise ValueError('%s: malformed progress file: %s' % (self.path, e)) from None
        if record.get('key') != self.key:
            raise ValueError('%s records a run of %s; this one is %s'
                             % (self.path, record.get('key'), self.key))
        for step in range(1, upto):
            result = record.get('steps', {}).get(str(step))
            if result is None:
                raise ValueError('%s: step %d did not finish; resume at step %d or earlier'
                                 % (self.path, step, step))
            for path in result.values():
                if not os.path.isfile(path):
                    raise FileNotFoundError('%s: step %d produced %s, which no longer exists'
                                            % (self.path, step, path))
            self.steps[step] = result
        return self.steps

    def done(self, step, result):
        from caffe import io
        self.steps[step] = result
        record = {'key': self.key, 'steps': {str(k): v for k, v in sorted(self.steps.items())}}
        io.atomic_write(self.path, json.dumps(record, indent=1).encode())


def main(argv=None):
    args = parse_args(argv)
    experiment = _common.start(args)
    iters = parse_iters(args.iters)
    _common.require_weights(args.pretrained_model)
    models_dir = args.models_dir or os.path.join(
        experiment.models_dir, models_folder(args.imdb_name), args.net_name,
        'faster_rcnn_alt_opt')
    solvers, rpn_test = find_stage_files(models_dir)
    print('Stage solvers:\n  %s\nRPN test net: %s' % ('\n  '.join(solvers), rpn_test),
          flush=True)

    restore_step, restore_state = parse_restore(args.restore)
    if restore_state is not None:
        _common.require_file(restore_state, 'solver state')
    progress = Progress(experiment.output_dir(args.imdb_name), args.net_name, args.imdb_name,
                        args.pretrained_model)
    done = progress.load(restore_step) if restore_step else {}

    gpus = args.gpus
    multi_gpu = len(gpus or ()) > 1
    if multi_gpu and not parallel.has_nccl():
        _common.fail('alternating training on several GPUs needs NCCL (pip install '
                     'nvidia-nccl-cu13); without it, use one GPU or faster_rcnn_end2end.sh, '
                     'whose training runs over MPI (docs/parallel.md)')
    if parallel.launched_by_mpi():
        _common.fail('alternating training runs each step in processes of its own and cannot '
                     'be one rank of an mpiexec job; give it a GPU list (--gpu 0,1,2,3)')
    common = {'device': gpus[0] if gpus else None, 'imdb_name': args.imdb_name}

    def step(number, title, kind, infix, generate=False, **kwargs):
        """Runs step `number` (train, then for an RPN its proposals) unless a resumed run
        already has it; records its results."""
        if number in done:
            print('Step %d (%s) done earlier: %s' % (number, title, done[number]), flush=True)
            return done[number]
        if number == restore_step:
            kwargs['restore'] = restore_state
        kwargs['experiment'] = step_experiment(kind, infix)
        try:
            if multi_gpu:
                result = run_on_gpus(title, _train, gpus, os.path.dirname(progress.path),
                                     **kwargs, **common)
            else:
                result = run_in_process(title, _train, **kwargs, **common)
        except TrainingInterrupted as e:
            # The step's own message names its solverstate; say how to resume this command.
            raise TrainingInterrupted(e.signum, e.iteration, e.model_path,
                                      '%d:%s' % (number, e.state_path)) from None
        if generate:
            result.update(run_in_process(
                title.split(',')[0] + ', generate proposals', rpn_generate,
                experiment=step_experiment('generate'), rpn_model_path=result['model_path'],
                rpn_test_prototxt=rpn_test, **common))
        progress.done(number, result)
        return result

    rpn1 = step(1, 'Stage 1 RPN, init from ImageNet model', 'rpn', 'stage1', generate=True,
                init_model=args.pretrained_model, solver=solvers[0], max_iters=iters[0],
                randomize=args.randomize)
    frcn1 = step(2, 'Stage 1 Fast R-CNN using RPN proposals, init from ImageNet model',
                 'fast_rcnn', 'stage1', init_model=args.pretrained_model, solver=solvers[1],
                 max_iters=iters[1], randomize=args.randomize, rpn_file=rpn1['proposal_path'])
    result_path = args.result or os.path.join(experiment.output_dir(args.imdb_name),
                                              '%s_alt_opt_result.json' % args.net_name)
    if args.unshared:
        # Test with the stage-1 RPN's proposals: tools/rpn_generate.py, then tools/test_net.py
        # --proposals (experiments/scripts/faster_rcnn_alt_opt.sh does both with UNSHARED=1).
        print('Final RPN model: %s' % rpn1['model_path'], flush=True)
        print('Final model: %s' % frcn1['model_path'], flush=True)
        _common.write_result(result_path, final_model=frcn1['model_path'],
                             final_rpn_model=rpn1['model_path'], unshared=True,
                             steps=progress.steps, rpn_test_prototxt=rpn_test,
                             imdb=args.imdb_name)
        return
    rpn2 = step(3, 'Stage 2 RPN, init from stage 1 Fast R-CNN model', 'rpn', 'stage2',
                generate=True, init_model=frcn1['model_path'], solver=solvers[2],
                max_iters=iters[2], randomize=args.randomize)
    frcn2 = step(4, 'Stage 2 Fast R-CNN, init from stage 2 RPN R-CNN model', 'fast_rcnn',
                 'stage2', init_model=rpn2['model_path'], solver=solvers[3],
                 max_iters=iters[3], randomize=args.randomize, rpn_file=rpn2['proposal_path'])

    # The final model is the stage-2 detector; its convs are those the stage-2 RPN shares.
    final_path = os.path.join(os.path.dirname(frcn2['model_path']),
                              args.net_name + '_faster_rcnn_final.caffemodel')
    print('cp %s -> %s' % (frcn2['model_path'], final_path), flush=True)
    from caffe.io import atomic_write
    atomic_write(final_path, lambda f: _copy_into(frcn2['model_path'], f))
    print('Final model: %s' % final_path, flush=True)
    _common.write_result(result_path, final_model=final_path,
                         final_rpn_model=rpn2['model_path'], unshared=False,
                         steps=progress.steps, rpn_test_prototxt=rpn_test, imdb=args.imdb_name)


def _copy_into(path, f):
    with open(path, 'rb') as source:
        shutil.copyfileobj(source, f)


if __name__ == '__main__':
    sys.exit(_common.run_tool(main))
