"""What the command-line tools share: device choice, config loading, input-file checks, and
fitting a network definition to a dataset's number of classes."""
import argparse
import os
import re
import sys

import _init_paths  # noqa: F401  (puts lib/ on sys.path)

from google.protobuf import text_format

from fast_rcnn.config import ConfigError, cfg, cfg_from_file, cfg_from_list


def fail(message):
    """Prints an error and exits with status 1 (no traceback: the message is the whole story)."""
    print('error: %s' % message, file=sys.stderr, flush=True)
    sys.exit(1)


def user_errors():
    """Exception types whose message says all a user needs (bad file, key, dataset, setup).
    OSError and ValueError are what the dataset readers and the runtime raise for a file that
    is missing or malformed; their messages name the file."""
    from caffe import CaffeError
    from datasets.factory import UnknownDatasetError
    from fast_rcnn.train import TrainingError
    return (CaffeError, ConfigError, TrainingError, UnknownDatasetError, OSError, ValueError)


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
        fail(error_message(e))


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors (unknown option, missing or malformed value) end the tool like
    any other bad input: one 'error:' line and status 1, where argparse prints the usage and
    exits with 2."""

    def error(self, message):
        fail('%s: %s (see --help)' % (self.prog, message))


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


def add_cfg_args(parser):
    parser.add_argument('--cfg', dest='cfg_files', action='append', default=[],
                        help='optional config file(s), merged in order (repeatable)')
    # Read by run_tool (which takes it off the command line); listed here for --help.
    parser.add_argument('--debug', action='store_true',
                        help='show the Python traceback of an error')
    parser.add_argument('--set', dest='set_cfgs', nargs=argparse.REMAINDER, default=None,
                        help='set config keys (last option): --set KEY VALUE [KEY VALUE ...]')


def load_cfg(cfg_files, set_cfgs):
    """Merges the config files and --set pairs into cfg; exits with the config error if any."""
    try:
        for path in cfg_files or []:
            cfg_from_file(path)
        if set_cfgs:
            cfg_from_list(set_cfgs)
    except ConfigError as e:
        fail(str(e))


def setup_caffe(device):
    """Puts the runtime on the CPU (device None) or on GPU `device`; records it in cfg.GPU_ID."""
    import caffe
    if device is None:
        caffe.set_mode_cpu()
        print('Using the CPU', flush=True)
        return
    cfg.GPU_ID = device
    try:
        caffe.set_device(device)
        caffe.set_mode_gpu()
    except Exception as e:  # no pycuda, no driver, no such device: say how to run on the CPU
        fail('cannot use GPU %d (%s: %s); pass --gpu -1 to run on the CPU'
             % (device, type(e).__name__, e))
    print('Using GPU %d' % device, flush=True)


def require_weights(path):
    """Exits with a pointer to data/README.md when a weights file is missing."""
    if path is not None and not os.path.isfile(path):
        fail('weights file %s not found; see data/README.md' % path)


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


def require_file(path, what):
    if not os.path.isfile(path):
        fail('%s %s not found' % (what, path))


# Fitting a network to a dataset's classes -------------------------------------------------------
#
# The released prototxts are written for a dataset (21 classes for PASCAL VOC, 81 for COCO). A
# custom dataset reuses the pascal_voc nets: cls_score gets K outputs, bbox_pred 4K, and every
# Python layer's param_str 'num_classes' becomes K. The adapted copy is written beside the
# outputs; the original files are never changed.

_NUM_CLASSES_RE = re.compile(r"""(['"]?num_classes['"]?\s*:\s*)(\d+)""")


def _read_net(path):
    from caffe.proto import caffe_pb2
    from caffe import io
    return io.read_prototxt(path, caffe_pb2.NetParameter())


def net_num_classes(param):
    """The number of classes a NetParameter is written for (from cls_score or a param_str), or
    None when it names none."""
    for layer in list(param.layer) + list(param.layers):
        if layer.name == 'cls_score' and layer.HasField('inner_product_param'):
            return layer.inner_product_param.num_output
    for layer in param.layer:
        if layer.HasField('python_param'):
            m = _NUM_CLASSES_RE.search(layer.python_param.param_str)
            if m:
                return int(m.group(2))
    return None


def _patch_net(param, num_classes):
    for layer in param.layer:
        if layer.name == 'cls_score' and layer.HasField('inner_product_param'):
            layer.inner_product_param.num_output = num_classes
        elif layer.name == 'bbox_pred' and layer.HasField('inner_product_param'):
            layer.inner_product_param.num_output = 4 * num_classes
        if layer.HasField('python_param'):
            layer.python_param.param_str = _NUM_CLASSES_RE.sub(
                lambda m: m.group(1) + str(num_classes), layer.python_param.param_str)


def _write_text(path, message):
    from caffe import io
    io.atomic_write(path, text_format.MessageToString(message).encode())


def _anchor_param_str(text, scales, ratios):
    # The RPN layers' param_str with scales/ratios replaced (feat_stride and the rest kept).
    import yaml
    from rpn.layer_io import _ParamLoader
    params = yaml.load(text, Loader=_ParamLoader) if text.strip() else {}
    params = dict(params or {})
    params['scales'] = [float(v) if v != int(v) else int(v) for v in scales]
    params['ratios'] = [float(v) for v in ratios]
    return repr(params)


def net_fitting(param, num_classes):
    """What the adapted copy of a NetParameter must change: a list of (tag, patch function),
    empty when the net is used as written. Covers the dataset's classes, the RPN anchors of
    cfg.RPN_ANCHOR_SCALES / RPN_ANCHOR_RATIOS (paper Table 8) and lambda of Eq. (1)
    (cfg.TRAIN.RPN_LAMBDA, Table 9)."""
    changes = []
    current = net_num_classes(param)
    if current is not None and current != num_classes:
        changes.append(('%dcls' % num_classes, lambda p: _patch_net(p, num_classes)))
    layers = list(param.layer)
    rpn_layers = [l for l in layers if l.name in ('rpn_cls_score', 'rpn_bbox_pred')]
    if (cfg.RPN_ANCHOR_SCALES or cfg.RPN_ANCHOR_RATIOS) and rpn_layers:
        scales = tuple(cfg.RPN_ANCHOR_SCALES) or None
        ratios = tuple(cfg.RPN_ANCHOR_RATIOS) or tuple(cfg.ANCHOR_RATIOS)
        changes.append(('anchors_s%s_r%s' % ('-'.join('%g' % v for v in scales or ('def',)),
                                             '-'.join('%g' % v for v in ratios)),
                        lambda p: _patch_anchors(p, scales, ratios)))
    if cfg.TRAIN.RPN_LAMBDA != 10.0 and any(l.name == 'rpn_loss_bbox' for l in layers):
        changes.append(('lambda%g' % cfg.TRAIN.RPN_LAMBDA, _patch_lambda))
    return changes


def _patch_anchors(param, scales, ratios):
    from rpn.layer_io import _ParamLoader
    import yaml
    num_anchors = None
    for layer in param.layer:
        if layer.HasField('python_param') and 'feat_stride' in layer.python_param.param_str:
            text = layer.python_param.param_str
            old = yaml.load(text, Loader=_ParamLoader) or {}
            layer_scales = scales or tuple(old.get('scales', cfg.ANCHOR_SCALES))
            layer.python_param.param_str = _anchor_param_str(text, layer_scales, ratios)
            num_anchors = len(layer_scales) * len(ratios)
    if num_anchors is None:
        num_anchors = len(scales or cfg.ANCHOR_SCALES) * len(ratios)
    for layer in param.layer:
        if layer.name == 'rpn_cls_score':
            layer.convolution_param.num_output = 2 * num_anchors
        elif layer.name == 'rpn_bbox_pred':
            layer.convolution_param.num_output = 4 * num_anchors
        elif (layer.name.startswith('rpn') and layer.type == 'Reshape'
              and len(layer.reshape_param.shape.dim) > 1
              and layer.reshape_param.shape.dim[1] not in (0, -1, 2)):
            # rpn_cls_prob_reshape: (1, 2, A*H, W) back to (1, 2A, H, W)
            layer.reshape_param.shape.dim[1] = 2 * num_anchors


def _patch_lambda(param):
    for layer in param.layer:
        if layer.name == 'rpn_loss_bbox':
            weights = list(layer.loss_weight) or [1.0]
            del layer.loss_weight[:]
            layer.loss_weight.extend(w * cfg.TRAIN.RPN_LAMBDA / 10.0 for w in weights)


def fit_net_to_classes(prototxt, num_classes, out_dir):
    """prototxt itself when it needs no change (see net_fitting); else the path of an adapted
    copy in out_dir."""
    param = _read_net(prototxt)
    changes = net_fitting(param, num_classes)
    if not changes:
        return prototxt
    for _, patch in changes:
        patch(param)
    tag = '_'.join(t for t, _ in changes)
    name = os.path.basename(prototxt)
    stem, ext = os.path.splitext(name)
    path = os.path.join(out_dir, '%s_%s%s' % (stem, tag, ext or '.prototxt'))
    os.makedirs(out_dir, exist_ok=True)
    _write_text(path, param)
    print('%s adapted (%s): using the copy %s' % (prototxt, tag.replace('_', ', '), path),
          flush=True)
    return path


def detector_net(prototxt, out_dir):
    """A Faster R-CNN test net without its RPN: the same detector reading a 'rois' input, for
    testing it on external or dense proposals (paper Tables 2, 10). prototxt itself when it has
    no proposal layer."""
    param = _read_net(prototxt)
    rpn = [l for l in param.layer if 'rois' in l.top and l.HasField('python_param')]
    if not rpn:
        return prototxt
    # Everything the proposal layer reads only for itself (rpn_* layers) goes with it.
    keep = [l for l in param.layer if l not in rpn and not l.name.startswith('rpn')]
    del param.layer[:]
    param.layer.extend(keep)
    names = list(param.input)
    shapes = [list(s.dim) for s in param.input_shape]
    del param.input[:]
    del param.input_shape[:]
    for name, dims in zip(names, shapes):
        if name == 'im_info':
            name, dims = 'rois', [1, 5]
        param.input.append(name)
        param.input_shape.add().dim.extend(dims)
    stem, ext = os.path.splitext(os.path.basename(prototxt))
    path = os.path.join(out_dir, '%s_detector%s' % (stem, ext or '.prototxt'))
    os.makedirs(out_dir, exist_ok=True)
    _write_text(path, param)
    print('%s: testing the detector alone on given proposals with %s' % (prototxt, path),
          flush=True)
    return path


def _resolve_beside(path, reference):
    # Net paths in a solver are relative to the working directory (Caffe), else to the solver.
    if os.path.isabs(path) or os.path.exists(path):
        return path
    beside = os.path.join(os.path.dirname(os.path.abspath(reference)), path)
    return beside if os.path.exists(beside) else path


def fit_solver_to_classes(solver_prototxt, num_classes, out_dir):
    """The solver file to train with: solver_prototxt itself, or an adapted copy in out_dir
    whose train net is fitted to num_classes (see fit_net_to_classes)."""
    from caffe.proto import caffe_pb2
    from caffe import io
    param = io.read_prototxt(solver_prototxt, caffe_pb2.SolverParameter())
    field = 'train_net' if param.train_net else 'net' if param.net else None
    if field is None:
        return solver_prototxt
    net_path = _resolve_beside(getattr(param, field), solver_prototxt)
    if not os.path.isfile(net_path):
        fail('%s: net file %s not found' % (solver_prototxt, net_path))
    fitted = fit_net_to_classes(net_path, num_classes, out_dir)
    iter_size = cfg.TRAIN.ITER_SIZE
    if fitted == net_path and iter_size <= 0:
        return solver_prototxt
    setattr(param, field, os.path.abspath(fitted))
    tag = 'fitted'
    if iter_size > 0:
        # cfg.TRAIN.ITER_SIZE: the paper's multi-GPU batches accumulated on one device.
        param.iter_size = iter_size
        tag += '_iter%d' % iter_size
    stem, ext = os.path.splitext(os.path.basename(solver_prototxt))
    path = os.path.join(out_dir, '%s_%s%s' % (stem, tag, ext or '.prototxt'))
    _write_text(path, param)
    return path


def models_subdir(imdb_name):
    """models/<dir> holding the nets for a dataset: pascal_voc, coco, toy; custom datasets use
    the pascal_voc nets (fitted to their classes at run time)."""
    if imdb_name.startswith('coco_'):
        return 'coco'
    if imdb_name.startswith('toy_'):
        return 'toy'
    return 'pascal_voc'
