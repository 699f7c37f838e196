"""What the command-line tools share: running a tool's main with one-line errors, the device,
config loading, input-file checks, the experiment's net adaptations read from cfg, and result
files.

Tools read `cfg` here and at their top only: the config is loaded once (files, then the tool's
own defaults, then --set) before any library code runs, and library code gets plain values.
Tools hand results to each other and to the experiment scripts as JSON files (--result), never
as printed lines.
"""
import argparse
import json
import os
import pprint
import sys
import time

import _init_paths  # noqa: F401  (puts lib/ on sys.path)

import numpy as np

from fast_rcnn.config import ConfigError, cfg, cfg_from_file, cfg_from_list, merge_into_cfg


class ToolError(Exception):
    """A problem the user can fix (a missing file, a bad option); the message says all."""


def fail(message):
    """Ends the tool with one 'error: message' line and status 1 (through run_tool)."""
    raise ToolError(message)


def user_errors():
    """Exception types whose message says all a user needs (bad file, key, dataset, setup).
    OSError and ValueError are what the dataset readers and the runtime raise for a file that
    is missing or malformed; their messages name the file."""
    from caffe import CaffeError
    from datasets.factory import UnknownDatasetError
    from fast_rcnn.train import TrainingError
    return (ToolError, CaffeError, ConfigError, TrainingError, UnknownDatasetError, OSError,
            ValueError)


def error_message(e):
    """One line for an exception: an OSError with a file name says which file."""
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        text = '%s: %s' % (e.filename, e.strerror)
    elif isinstance(e, KeyError) and len(e.args) == 1:
        text = str(e.args[0])  # str(KeyError) would quote the message
    else:
        text = str(e) or type(e).__name__
    return ' '.join(text.split('\n'))


def run_tool(main, argv=None):
    """Runs a tool's main; user errors end it with one 'error: ...' line and status 1, not a
    traceback. --debug (anywhere on the command line, or FRCN_DEBUG=1) shows the traceback.
    An interrupted training run (SIGINT/SIGTERM, see fast_rcnn.train) exits 130/143 after its
    snapshot."""
    from fast_rcnn.train import TrainingInterrupted
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = '--debug' in argv or os.environ.get('FRCN_DEBUG', '') not in ('', '0')
    argv = [a for a in argv if a != '--debug']
    errors = user_errors()
    try:
        return main(argv)
    except TrainingInterrupted as e:
        print(str(e), file=sys.stderr, flush=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        if debug:
            raise
        print('interrupted', file=sys.stderr, flush=True)
        sys.exit(130)
    except errors as e:
        if debug:
            raise
        print('error: %s' % error_message(e), file=sys.stderr, flush=True)
        sys.exit(1)


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors (unknown option, missing or malformed value) end the tool like
    any other bad input: one 'error:' line and status 1, where argparse prints the usage and
    exits with 2."""

    def error(self, message):
        fail('%s: %s (see --help)' % (self.prog, message))


# Device ------------------------------------------------------------------------------------------

def parse_device(text):
    """--gpu value: a device id, or CPU for a negative number or 'cpu'. Returns None for CPU."""
    text = str(text).strip().lower()
    if text == 'cpu':
        return None
    try:
        device = int(text)
    except ValueError:
        raise ValueError("--gpu expects a device id or 'cpu', got %r" % text) from None
    return None if device < 0 else device


def _device_arg(text):
    try:
        return parse_device(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_device_arg(parser, default='0'):
    """--gpu: args.gpu is a device id, or None for the CPU."""
    parser.add_argument('--gpu', dest='gpu', default=default, type=_device_arg,
                        help="GPU device id to use; a negative number or 'cpu' runs on the CPU "
                             '(default: %(default)s)')


def setup_caffe(device):
    """Puts the runtime on the CPU (device None) or on GPU `device`."""
    import caffe
    if device is None:
        caffe.set_mode_cpu()
        print('Using the CPU', flush=True)
        return
    try:
        caffe.set_device(device)
        caffe.set_mode_gpu()
    except Exception as e:  # no pycuda, no driver, no such device: say how to run on the CPU
        fail('cannot use GPU %d (%s: %s); pass --gpu -1 to run on the CPU'
             % (device, type(e).__name__, e))
    print('Using GPU %d' % device, flush=True)


# Config ------------------------------------------------------------------------------------------

def add_model_args(parser, net_help, model_help, wait=False):
    """--def (the net definition) and --net (its weights); with wait, --wait for the weights."""
    parser.add_argument('--def', dest='prototxt', required=True, help=net_help)
    parser.add_argument('--net', dest='caffemodel', required=True, help=model_help)
    if wait:
        parser.add_argument('--wait', dest='wait', action='store_true',
                            help='wait until the model file exists (e.g. while training runs)')


def add_imdb_arg(parser, default, help):
    parser.add_argument('--imdb', dest='imdb_name', default=default,
                        help='%s (default: %%(default)s)' % help)


def start(args, defaults=None):
    """A tool's first steps: shows its arguments and loads the config (load_cfg)."""
    print('Called with args:\n%s' % pprint.pformat(vars(args)), flush=True)
    load_cfg(args.cfg_files, args.set_cfgs, defaults)


def require_model(args):
    """Checks --def and --net (waiting for --net with --wait), then shows the config."""
    require_file(args.prototxt, 'net definition')
    while getattr(args, 'wait', False) and not os.path.exists(args.caffemodel):
        print('Waiting for %s to exist...' % args.caffemodel, flush=True)
        time.sleep(10)
    require_weights(args.caffemodel)
    print('Using config:\n%s' % pprint.pformat(cfg), flush=True)


def add_cfg_args(parser):
    parser.add_argument('--cfg', dest='cfg_files', action='append', default=[],
                        help='optional config file(s), merged in order (repeatable)')
    # Read by run_tool (which takes it off the command line); listed here for --help.
    parser.add_argument('--debug', action='store_true',
                        help='show the Python traceback of an error')
    parser.add_argument('--set', dest='set_cfgs', nargs=argparse.REMAINDER, default=None,
                        help='set config keys (last option): --set KEY VALUE [KEY VALUE ...]')


def load_cfg(cfg_files, set_cfgs, defaults=None):
    """Loads the config once, at a tool's start: the files in order, then the tool's own
    defaults (a nested dict, e.g. rpn_generate's proposal counts), then the --set pairs."""
    for path in cfg_files or []:
        cfg_from_file(path)
    if defaults:
        merge_into_cfg(defaults, source='the tool\'s defaults')
    if set_cfgs:
        cfg_from_list(set_cfgs)


def experiment_net_args(num_classes=None):
    """The net adaptations cfg asks for (fast_rcnn.net_surgery.net_changes keywords): the
    dataset's class count, the RPN anchors of cfg.RPN_ANCHOR_SCALES / RPN_ANCHOR_RATIOS
    (paper Table 8), lambda of Eq. (1) (cfg.TRAIN.RPN_LAMBDA, Table 9) and the proposals'
    coordinate gradient (cfg.TRAIN.COORD_GRADIENT, _SCALE, _ROIS; Sec. 3.2)."""
    return {'classes': num_classes,
            'anchor_scales': tuple(cfg.RPN_ANCHOR_SCALES),
            'anchor_ratios': tuple(cfg.RPN_ANCHOR_RATIOS),
            'default_scales': tuple(cfg.ANCHOR_SCALES),
            'default_ratios': tuple(cfg.ANCHOR_RATIOS),
            'rpn_lambda': float(cfg.TRAIN.RPN_LAMBDA),
            'coord_gradient': bool(cfg.TRAIN.COORD_GRADIENT),
            'coord_gradient_scale': float(cfg.TRAIN.COORD_GRADIENT_SCALE),
            'coord_gradient_rois': str(cfg.TRAIN.COORD_GRADIENT_ROIS)}


def adapted_net(prototxt, num_classes, out_dir):
    """prototxt, or an adapted copy of it in out_dir, fitted to the dataset's classes and cfg's
    anchors and lambda (fast_rcnn.net_surgery)."""
    from fast_rcnn import net_surgery
    return net_surgery.adapted_net_file(prototxt, out_dir, **experiment_net_args(num_classes))


def adapted_solver(solver_prototxt, num_classes, out_dir):
    """The solver file to train with: solver_prototxt, or an adapted copy whose train net is
    adapted_net's and whose iter_size is cfg.TRAIN.ITER_SIZE when > 0."""
    from fast_rcnn import net_surgery
    return net_surgery.adapted_solver_file(solver_prototxt, out_dir,
                                           iter_size=cfg.TRAIN.ITER_SIZE,
                                           **experiment_net_args(num_classes))


# Input files -------------------------------------------------------------------------------------

def require_weights(path):
    """A missing weights file ends the tool with a pointer to data/README.md."""
    if path is not None and not os.path.isfile(path):
        fail('weights file %s not found; see data/README.md' % path)


def require_file(path, what):
    if not os.path.isfile(path):
        fail('%s %s not found' % (what, path))


def read_pickle(path, what):
    """The object pickled in path; a missing, empty, truncated or foreign file ends the tool
    with one error line naming it."""
    import pickle
    require_file(path, what)
    try:
        with open(path, 'rb') as f:
            return pickle.load(f)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError,
            TypeError, ValueError) as e:
        fail('%s %s is not a readable pickle (empty, truncated or another format?): %s: %s'
             % (what, path, type(e).__name__, e))


# Result files ------------------------------------------------------------------------------------

def add_result_arg(parser, default_name):
    """--result FILE: where the tool writes its results as JSON (default: default_name in the
    tool's output folder)."""
    parser.add_argument('--result', dest='result', default=None, metavar='FILE',
                        help='write the results as JSON to FILE (default: %s in the output '
                             'folder)' % default_name)


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None  # JSON has no NaN; a value that could not be computed
    return value


def write_result(path, **fields):
    """Writes the fields as one JSON object to path (atomically) and says where."""
    from caffe.io import atomic_write
    atomic_write(path, json.dumps(_plain(fields), indent=1, sort_keys=True) + '\n')
    print('Wrote results to %s' % path, flush=True)
    return path


def read_result(path, what='result file'):
    """A result file written by write_result."""
    require_file(path, what)
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as e:
        fail('%s %s is not valid JSON: %s' % (what, path, e))
