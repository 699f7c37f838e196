"""What the command-line tools share: running a tool's main with one-line errors, the device,
config loading, input-file checks, and result files.

Tools read `cfg` here and at their top only: the config is loaded once (files, then the tool's
own defaults, then --set) into one fast_rcnn.experiment.Experiment before any library code runs,
and library code gets that value, or the prototxt copies it writes. Tools hand results to each
other and to the experiment scripts as JSON files (--result), never as printed lines.
"""
import argparse
import json
import os
import pprint
import sys
import time

import _init_paths  # noqa: F401  (puts lib/ on sys.path)

import numpy as np

from fast_rcnn.config import (ConfigError, cfg, cfg_from_file, cfg_from_list,
                              check_consistency, merge_into_cfg)


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
    from fast_rcnn.training_errors import TrainingError
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
    from fast_rcnn.training_errors import TrainingInterrupted
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


# Caffe's command-line flags ----------------------------------------------------------------------

def add_caffe_flag(parser, flag, default, help):
    """A flag ('--name') spelled as Caffe's tools (gflags) take it: -name or --name, its value
    as -name=VALUE or -name VALUE; a boolean flag alone means true, -noname false, and
    -name=true|false says which (parse_caffe_flags reads that form). The flag's type is its
    default's (bool, int or str)."""
    name = flag.lstrip('-')
    spellings = ['-' + name, '--' + name]
    if isinstance(default, bool):
        parser.set_defaults(**{name: default})
        parser.add_argument(*spellings, dest=name, action='store_true', help=help)
        parser.add_argument('-no' + name, '--no' + name, dest=name, action='store_false',
                            help=argparse.SUPPRESS)
        parser.caffe_bools = getattr(parser, 'caffe_bools', set()) | {name}
        return
    parser.add_argument(*spellings, dest=name, type=type(default), default=default, help=help)


def parse_caffe_flags(parser, argv):
    """parser.parse_args(argv) after turning -flag=true / -flag=false of its boolean Caffe flags
    into -flag / -noflag (gflags' spellings)."""
    bools = getattr(parser, 'caffe_bools', set())
    words = []
    for word in argv:
        name, eq, value = word.lstrip('-').partition('=')
        if word.startswith('-') and eq and name in bools:
            if value.lower() in ('true', 't', 'yes', 'y', '1'):
                word = '--' + name
            elif value.lower() in ('false', 'f', 'no', 'n', '0'):
                word = '--no' + name
            else:
                fail('%s: -%s expects true or false, got %r' % (parser.prog, name, value))
        words.append(word)
    return parser.parse_args(words)


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


def _arg_type(parse):
    """An argparse type from a parser that raises ValueError (argparse then names the option)."""
    def parsed(text):
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parsed


def add_device_arg(parser, default='0'):
    """--gpu: args.gpu is a device id, or None for the CPU."""
    parser.add_argument('--gpu', dest='gpu', default=default, type=_arg_type(parse_device),
                        help="GPU device id to use; a negative number or 'cpu' runs on the CPU "
                             '(default: %(default)s)')


def parse_devices(text):
    """--gpu value of the training tools: one device id, a comma-separated list of them (one
    data-parallel rank per GPU), or CPU for a negative number or 'cpu'. Returns None for the CPU,
    else the list of ids."""
    parts = [p.strip() for p in str(text).split(',')]
    if len(parts) == 1:
        device = parse_device(parts[0])
        return None if device is None else [device]
    try:
        devices = [int(p) for p in parts]
    except ValueError:
        raise ValueError('--gpu expects a device id, a list such as 0,1,2,3, or \'cpu\'; got %r'
                         % text) from None
    if min(devices) < 0 or len(set(devices)) != len(devices):
        raise ValueError('--gpu %s: a GPU list holds distinct device ids >= 0' % text)
    return devices


def add_devices_arg(parser, default='0'):
    """--gpu for the training tools: args.gpus is a list of device ids (several: one
    data-parallel rank per GPU), or None for the CPU."""
    parser.add_argument('--gpu', dest='gpus', default=default, type=_arg_type(parse_devices),
                        help="GPU device id, or several (0,1,2,3) to train data-parallel with "
                             "one process per GPU; a negative number or 'cpu' runs on the CPU "
                             '(several CPU processes: mpiexec -n N python -m mpi4py ...; see '
                             'docs/parallel.md) (default: %(default)s)')


def mpi_rank_device(gpus):
    """The device of this MPI rank: gpus[its rank on this host] (None on the CPU)."""
    from caffe import parallel
    if gpus is None:
        return None
    local = parallel.local_rank()
    if local >= len(gpus):
        fail('MPI rank %d is process %d on its host, but --gpu lists only %d GPU(s): start at '
             'most one process per listed GPU on each host' % (parallel.world()[0], local,
                                                                len(gpus)))
    return gpus[local]


def join_ranks(rank, count):
    """Makes this process rank `rank` of `count` data-parallel solvers (pycaffe's settings);
    only rank 0 keeps printing to the terminal (every rank still reports errors)."""
    import caffe
    caffe.set_solver_count(count)
    caffe.set_solver_rank(rank)
    caffe.set_multiprocess(count > 1)
    if rank > 0:
        sys.stdout = open(os.devnull, 'w')


def run_gpu_ranks(target, gpus, *args):
    """Caffe's python/train.py: one spawned process per GPU running target(rank, uid, *args),
    with one NCCL unique id made here. Waits for all; when one fails, ends the others (they
    would wait for it forever). Returns the largest exit status."""
    import multiprocessing
    import signal
    from multiprocessing.connection import wait
    import caffe
    uid = caffe.NCCL.new_uid()
    context = multiprocessing.get_context('spawn')
    procs = [context.Process(target=target, args=(rank, uid) + args) for rank in range(len(gpus))]
    # Ctrl-C reaches every rank (one process group): they agree to stop, snapshot and exit;
    # this process waits for them.
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        for p in procs:
            p.start()
        running = list(procs)
        while running:
            wait([p.sentinel for p in running])
            running = [p for p in running if p.exitcode is None]
            if any(p.exitcode for p in procs):
                for p in running:
                    p.terminate()
                for p in running:
                    p.join()
                running = []
    finally:
        signal.signal(signal.SIGINT, previous)
    return max(abs(p.exitcode or 0) for p in procs)


def relaunch_under_mpi(count, argv):
    """Runs this tool again as `mpiexec -n count python -m mpi4py tool argv` (replacing this
    process): several GPUs without NCCL exchange gradients over MPI."""
    from caffe import parallel
    mpiexec = parallel.mpiexec_path()
    if mpiexec is None:
        fail('training on %d GPUs needs NCCL (pip install nvidia-nccl-cu13) or MPI (pip install '
             'mpi4py==4.1.2 mpich==5.0.2); neither was found' % count)
    print('NCCL not found: training over MPI with host copies of the gradients', flush=True)
    command = [mpiexec, '-n', str(count), sys.executable, '-m', 'mpi4py',
               os.path.abspath(sys.argv[0])] + list(argv)
    os.execv(mpiexec, command)


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

def add_model_args(parser, net_help, model_help, wait=False, required=True):
    """--def (the net definition) and --net (its weights); with wait, --wait for the weights.
    required False: the tool checks for them itself (another option may stand for them)."""
    parser.add_argument('--def', dest='prototxt', required=required, help=net_help)
    parser.add_argument('--net', dest='caffemodel', required=required, help=model_help)
    if wait:
        parser.add_argument('--wait', dest='wait', action='store_true',
                            help='wait until the model file exists (e.g. while training runs)')


def add_imdb_arg(parser, default, help):
    parser.add_argument('--imdb', dest='imdb_name', default=default,
                        help='%s (default: %%(default)s)' % help)


def start(args, defaults=None):
    """A tool's first steps: shows its arguments, loads the config (load_cfg) and returns the
    run's experiment (fast_rcnn.experiment.Experiment)."""
    print('Called with args:\n%s' % pprint.pformat(vars(args)), flush=True)
    return load_cfg(args.cfg_files, args.set_cfgs, defaults)


def require_model(args):
    """Checks --def and --net (waiting for --net with --wait), then shows the config."""
    require_file(args.prototxt, 'net definition')
    while getattr(args, 'wait', False) and not os.path.exists(args.caffemodel):
        print('Waiting for %s to exist...' % args.caffemodel, flush=True)
        time.sleep(10)
    require_weights(args.caffemodel)
    print('Using config:\n%s' % pprint.pformat(cfg), flush=True)


def parse_tool_args(parser, argv, result_name):
    """Adds the options every tool that writes results has (--result, --cfg, --set, --debug)
    and parses argv."""
    add_result_arg(parser, result_name)
    add_cfg_args(parser)
    return parser.parse_args(argv)


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
    defaults (a nested dict, e.g. rpn_generate's proposal counts), then the --set pairs.
    Returns the run's experiment (fast_rcnn.experiment.Experiment)."""
    from fast_rcnn.experiment import Experiment
    for path in cfg_files or []:
        cfg_from_file(path)
    if defaults:
        merge_into_cfg(defaults, source='the tool\'s defaults')
    if set_cfgs:
        cfg_from_list(set_cfgs)
    check_consistency()
    try:
        return Experiment.from_cfg()
    except ValueError as e:
        raise ConfigError(str(e)) from None


# Input files -------------------------------------------------------------------------------------

def require_weights(path):
    """A missing weights file ends the tool with a pointer to data/README.md."""
    if path is not None and not os.path.isfile(path):
        fail('weights file %s not found; see data/README.md' % path)


def require_file(path, what):
    if not os.path.isfile(path):
        fail('%s %s not found' % (what, path))


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
