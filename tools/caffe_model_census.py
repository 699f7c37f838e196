#!/usr/bin/env python3
"""Census of a Caffe release's model files on this runtime: every .prototxt under models/ and
examples/ of the roots given, parsed, and every net built and run on small generated data.

  tools/caffe_model_census.py --caffe-root ~/caffe [--extra-root ~/py-faster-rcnn ...]
                              [--python-path DIR ...] [--result census.json] [--only TEXT]

Each file is a solver (a SolverParameter, upgraded as Caffe upgrades `solver_type`) or a net
(a NetParameter, upgraded as caffe.Net reads it). A net is built in each state its include /
exclude rules tell apart (phases TRAIN and TEST, each with each stage its rules name); a net
without rules once, in TRAIN if it has a loss, else in TEST (a deploy net). Its data layers
read small generated sources of the kind they take, put in a scratch folder:
  Data      an LMDB or LevelDB of 4 raw Datums (labels 0 and 1) of the size the net needs;
  ImageData a list file of 3 PNG images;
  HDF5Data  a list file naming one HDF5 file with a dataset per top;
  WindowData a window file of 2 JPEG images with foreground and background windows;
a mean_file becomes a binaryproto of the images' size, batch sizes drop to 2, and a net's
inputs (Input layers, old `input` fields) get batch 2 at most and random values (`im_info`
holds the image's height, width and scale 1; `rois` valid boxes of image 0). The size of a
Data layer's Datums comes from SIZES (the file's path: MNIST, siamese pairs, CIFAR-10) or from
the crop (ImageNet nets crop 224 or 227 from 256 x 256). The release's Python layers (modules
roi_data_layer.layer and rpn.*) are this project's same-named modules, given in their
param_str the small settings an experiment writes there (fast_rcnn.experiment; RPN training
when the data layer has the three tops of end-to-end training) and a generated roidb; other
Python layers are imported from the net's folder, its layers/ subfolder and --python-path.
A TRAIN state runs forward and backward, a TEST state forward.

Per file it prints and records: parsed, built, forward, backward (None where the step does not
apply), the first error with the step it stopped at, and any output that is not finite; the result file (--result, JSON)
holds the records and the counts.
"""
import argparse
import contextlib
import os
import sys
import tempfile
import time
import traceback
import types

import _common

import numpy as np

DATA_TYPES = ('Data', 'ImageData', 'HDF5Data', 'WindowData')
# Datum size (channels, height, width) of a Data layer, by a word of its file's path, where the
# crop does not tell: the examples' data sets.
SIZES = (('siamese', (2, 28, 28)),     # mnist_siamese: image pairs stacked as 2 channels
         ('mnist', (1, 28, 28)),
         ('cifar', (3, 32, 32)))
DEFAULT_SIZE = (3, 32, 32)
BATCH = 2
# The release's Python layers, whose settings an experiment writes into their param_str.
RELEASE_MODULES = ('roi_data_layer.layer', 'rpn.anchor_target_layer', 'rpn.proposal_layer',
                   'rpn.proposal_target_layer')
# Small settings for them (as tests/test_models.py runs the project's own nets): a 160 x 192
# image, few RoIs and proposals.
IMAGE_H, IMAGE_W = 160, 192
GT_BOXES = ((16, 24, 135, 143), (88, 40, 180, 150))
SMALL = {'TRAIN': {'SCALES': [IMAGE_H], 'MAX_SIZE': IMAGE_W, 'IMS_PER_BATCH': 1,
                   'BATCH_SIZE': 16, 'RPN_BATCHSIZE': 64, 'RPN_PRE_NMS_TOP_N': 300,
                   'RPN_POST_NMS_TOP_N': 32},
         'TEST': {'RPN_PRE_NMS_TOP_N': 300, 'RPN_POST_NMS_TOP_N': 16}}


def parse_args(argv=None):
    parser = _common.ArgumentParser(
        description="Parse, build and run every prototxt of a Caffe release's models/ and "
                    "examples/ on generated data",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--caffe-root', required=True,
                        help='a BVLC Caffe checkout (its models/ and examples/)')
    parser.add_argument('--extra-root', action='append', default=[],
                        help='another release to census (e.g. py-faster-rcnn), repeatable')
    parser.add_argument('--python-path', action='append', default=[],
                        help="a folder with the nets' Python layer modules, repeatable")
    parser.add_argument('--result', default='', help='write the records and counts as JSON')
    parser.add_argument('--only', default='', help='only files whose path contains this text')
    return parser.parse_args(argv)


def find_files(roots, only=''):
    """(root, path relative to it) of every .prototxt under the roots' models/ and examples/,
    sorted."""
    files = []
    for root in roots:
        if not os.path.isdir(root):
            _common.fail('%s: no such folder' % root)
        for top in ('models', 'examples'):
            for folder, _, names in os.walk(os.path.join(root, top)):
                for name in names:
                    if name.endswith('.prototxt'):
                        rel = os.path.relpath(os.path.join(folder, name), root)
                        if only in rel:
                            files.append((root, rel))
    return sorted(set(files))


# Parsing -----------------------------------------------------------------------------------------

SOLVER_WORDS = ('base_lr', 'lr_policy', 'max_iter', 'train_net', 'test_iter')


class ParseFailure(Exception):
    def __init__(self, kind, error):
        super().__init__(str(error))
        self.kind = kind
        self.error = error


def read_file(path):
    """('net', upgraded NetParameter) or ('solver', SolverParameter); ParseFailure if neither
    parses, with the kind the text looks like and that kind's error."""
    from caffe import io
    from caffe.proto import caffe_pb2
    from caffe.solver import read_solver_param
    with open(path, encoding='utf-8', errors='replace') as f:
        text = f.read()
    looks_like_solver = any(word in text for word in SOLVER_WORDS)
    try:
        return 'solver', read_solver_param(path)
    except Exception as solver_error:
        try:
            return 'net', io.upgrade_net(io.read_prototxt(path, caffe_pb2.NetParameter()))
        except Exception as net_error:
            if looks_like_solver:
                raise ParseFailure('solver', solver_error) from None
            raise ParseFailure('net', net_error) from None


def states(param):
    """The NetStates (phase, stages) to build: each phase, with each stage that rules naming that
    phase (or none) mention (a solver's test_state, as mnist_autoencoder's), else no stage; where
    two states keep the same layers, the first. A net without rules: one state, TRAIN if it has
    a loss, else TEST (a deploy net)."""
    import caffe
    from caffe.net import filter_net
    from caffe.proto import caffe_pb2
    rules = [r for l in param.layer for r in list(l.include) + list(l.exclude)]
    if not rules:
        has_loss = any(l.type.endswith('Loss') or len(l.loss_weight) for l in param.layer)
        return [(caffe.TRAIN if has_loss else caffe.TEST, [])]
    out, seen = [], set()
    for phase in (caffe.TRAIN, caffe.TEST):
        stages = sorted({s for r in rules if not r.HasField('phase') or r.phase == phase
                         for s in list(r.stage) + list(r.not_stage)})
        for stage in ([[s] for s in stages] or [[]]):
            state = caffe_pb2.NetState(phase=int(phase), stage=stage)
            key = tuple(l.SerializeToString() for l in filter_net(param, state).layer)
            if key not in seen:
                seen.add(key)
                out.append((phase, stage))
    return out


# Generated data sources --------------------------------------------------------------------------

def image_size(crop):
    """Height = width of generated images: 256 for ImageNet-style crops (227, 224), else a little
    more than the crop."""
    return 256 if crop > 64 else crop + 4


def datum_size(rel, layer):
    crop = layer.transform_param.crop_size
    for word, size in SIZES:
        if word in rel.lower():
            return size
    if crop:
        return (3, image_size(crop), image_size(crop))
    return DEFAULT_SIZE


class Sources:
    """Writes the generated sources into a scratch folder, each once."""

    def __init__(self, folder, seed=0):
        self.folder = folder
        self.rng = np.random.RandomState(seed)
        self.count = 0

    def path(self, name):
        self.count += 1
        return os.path.join(self.folder, '%03d_%s' % (self.count, name))

    def images(self, count, height, width, channels=3, ext='.png'):
        import cv2
        paths = []
        for _ in range(count):
            path = self.path('image' + ext)
            pixels = self.rng.randint(0, 256, size=(height, width, channels)).astype(np.uint8)
            if not cv2.imwrite(path, pixels if channels == 3 else pixels[:, :, 0]):
                raise OSError('could not write %s' % path)
            paths.append(path)
        return paths

    def mean_file(self, shape):
        import caffe
        path = self.path('mean.binaryproto')
        mean = np.full((1,) + tuple(shape), 127.5, dtype=np.float32)
        caffe.io.write_binary(path, caffe.io.array_to_blobproto(mean))
        return path

    def datum_db(self, shape, backend):
        import caffe
        from caffe.db import Writer
        path = self.path('db')
        with Writer(path, backend) as db:
            for i in range(4):
                pixels = self.rng.randint(0, 256, size=shape).astype(np.uint8)
                db.put(b'%08d' % i, caffe.io.array_to_datum(pixels, i % 2).SerializeToString())
        return path

    def image_list(self, height, width, channels):
        paths = self.images(3, height, width, channels)
        path = self.path('list.txt')
        with open(path, 'w') as f:
            for i, image in enumerate(paths):
                f.write('%s %d\n' % (os.path.basename(image), i % 2))
        return path

    def hdf5_list(self, tops, shapes):
        import h5py
        h5 = self.path('data.h5')
        with h5py.File(h5, 'w') as f:
            for top in tops:
                shape = shapes.get(top, (4,))
                if 'label' in top:
                    f[top] = (np.arange(4) % 2).astype(np.float32)
                else:
                    f[top] = self.rng.uniform(-1, 1, size=(4,) + shape).astype(np.float32)
        path = self.path('hdf5_list.txt')
        with open(path, 'w') as f:
            f.write(h5 + '\n')
        return path

    def window_file(self, num_classes):
        height, width = 200, 250
        images = self.images(2, height, width, ext='.jpg')
        path = self.path('windows.txt')
        with open(path, 'w') as f:
            for i, image in enumerate(images):
                # label overlap x1 y1 x2 y2: two foreground windows, two background ones
                windows = [(1, 1.0, 20, 30, 120, 150), (max(num_classes - 1, 1), 0.7, 100, 40,
                                                        230, 180),
                           (0, 0.1, 0, 0, 60, 50), (0, 0.3, 150, 120, 249, 199)]
                f.write('# %d\n%s\n3\n%d\n%d\n%d\n' % (i, image, height, width, len(windows)))
                for w in windows:
                    f.write('%d %g %d %d %d %d\n' % w)
        return path


def consumers(param, top):
    return [l for l in param.layer if top in l.bottom]


def hdf5_shapes(param, layer):
    """Per-row shape of each HDF5 top: an image where a convolution reads it, else a 4-vector."""
    shapes = {}
    for top in layer.top:
        if any(l.type == 'Convolution' for l in consumers(param, top)):
            shapes[top] = (3, 32, 32)
    return shapes


def num_outputs(param):
    """The smallest class count among the net's last InnerProducts (for window labels)."""
    counts = [l.inner_product_param.num_output for l in param.layer if l.type == 'InnerProduct']
    return min(counts[-1:] or [2])


def with_generated_sources(param, rel, sources):
    """A copy of param whose data layers read generated sources, inputs and batches small."""
    from caffe.proto import caffe_pb2
    param = caffe_pb2.NetParameter.FromString(param.SerializeToString())
    for layer in param.layer:
        t = layer.transform_param
        if layer.type == 'Data':
            shape = datum_size(rel, layer)
            layer.data_param.source = sources.datum_db(shape, layer.data_param.backend)
            layer.data_param.batch_size = BATCH
            if t.HasField('mean_file'):
                t.mean_file = sources.mean_file(shape)
        elif layer.type == 'ImageData':
            p = layer.image_data_param
            size = image_size(t.crop_size) if t.crop_size else 32
            height, width = p.new_height or size, p.new_width or size
            channels = 3 if p.is_color else 1
            p.source = sources.image_list(height, width, channels)
            p.root_folder = sources.folder + os.sep
            p.batch_size = BATCH
            if t.HasField('mean_file'):
                t.mean_file = sources.mean_file((channels, height, width))
        elif layer.type == 'HDF5Data':
            p = layer.hdf5_data_param
            p.source = sources.hdf5_list(list(layer.top), hdf5_shapes(param, layer))
            p.batch_size = BATCH
        elif layer.type == 'WindowData':
            p = layer.window_data_param
            p.source = sources.window_file(num_outputs(param))
            p.root_folder = ''
            p.batch_size = BATCH
            if t.HasField('mean_file'):
                crop = t.crop_size or p.crop_size
                t.mean_file = sources.mean_file((3, image_size(crop), image_size(crop)))
        elif layer.type == 'Input':
            for shape in layer.input_param.shape:
                if len(shape.dim):
                    shape.dim[0] = min(shape.dim[0], BATCH)
    return param


# The release's Python layers ---------------------------------------------------------------------

def release_settings(param, phase):
    """The release's Python layers with an experiment's small settings in their param_str."""
    from fast_rcnn import net_surgery
    from fast_rcnn.experiment import Experiment
    modules = {l.python_param.module for l in param.layer if l.type == 'Python'}
    if not modules & set(RELEASE_MODULES):
        return param
    data = [l for l in param.layer if l.python_param.module == 'roi_data_layer.layer']
    has_rpn = bool(data) and 'gt_boxes' in data[0].top
    train = dict(SMALL['TRAIN'], HAS_RPN=has_rpn, BBOX_NORMALIZE_TARGETS_PRECOMPUTED=has_rpn)
    experiment = Experiment.from_files([], dict(SMALL, TRAIN=train))
    return net_surgery.with_layer_settings(param, experiment.layer_settings(phase))


def generated_roidb(sources, num_classes, with_proposals):
    """One PNG image with two ground-truth boxes; with_proposals adds boxes around them
    (foreground) and beside them (background) and the regression targets, for a Fast R-CNN net."""
    from core.roi_targets import BoxTargets
    from roi_data_layer import roidb as rdl_roidb
    from utils.cython_bbox import bbox_overlaps
    import scipy.sparse
    paths = sources.images(1, IMAGE_H, IMAGE_W)
    gt = np.array(GT_BOXES, dtype=np.float64)
    gt_classes = np.array([1, num_classes - 1], dtype=np.int32)
    boxes, classes = gt, gt_classes
    if with_proposals:
        width = gt[:, 2] - gt[:, 0] + 1
        props = np.vstack([gt + 4, gt - 3] + [gt + np.outer(width * f, [1, 0, 1, 0])
                                               for f in (0.6, -0.6)])
        props[:, 0::2] = np.clip(props[:, 0::2], 0, IMAGE_W - 1)
        props[:, 1::2] = np.clip(props[:, 1::2], 0, IMAGE_H - 1)
        boxes = np.vstack([gt, props])
        classes = np.concatenate([gt_classes, np.zeros(len(props), np.int32)])
    iou = bbox_overlaps(boxes.astype(np.float64), gt)
    overlaps = np.zeros((len(boxes), num_classes), dtype=np.float32)
    best = iou.argmax(axis=1)
    rows = np.arange(len(boxes))
    overlaps[rows, gt_classes[best]] = iou[rows, best]
    roidb = [{'boxes': boxes.astype(np.uint16), 'gt_classes': classes, 'flipped': False,
              'gt_overlaps': scipy.sparse.csr_matrix(overlaps)}]
    # prepare_roidb reads an imdb's name, roidb and image_path_at(i)
    rdl_roidb.prepare_roidb(types.SimpleNamespace(name='census', roidb=roidb,
                                                  image_path_at=paths.__getitem__))
    if with_proposals:
        rdl_roidb.add_bbox_regression_targets(roidb, BoxTargets())
    return roidb


def feed_roidbs(net, sources):
    """A generated roidb for each layer that takes one (the release's RoIDataLayer)."""
    from utils.param_str import load_param_str
    names = list(net._layer_names)
    for i, layer in enumerate(net.layers):
        if hasattr(layer, 'set_roidb'):
            num_classes = int(load_param_str(layer.param_str)['num_classes'])
            with_proposals = 'gt_boxes' not in net.top_names[names[i]]
            layer.set_roidb(generated_roidb(sources, num_classes, with_proposals))


# Inputs ------------------------------------------------------------------------------------------

def fill_inputs(net, rng):
    """Random inputs; im_info and rois hold what detection nets need to make sense of them."""
    data = net.blobs[net.inputs[0]].data if net.inputs else None
    height, width = (data.shape[2], data.shape[3]) if data is not None and data.ndim == 4 \
        else (IMAGE_H, IMAGE_W)
    for name in net.inputs:
        blob = net.blobs[name].data
        if name == 'im_info':
            blob[...] = (height, width, 1.0)
        elif name == 'rois':
            n = blob.shape[0]
            x1 = rng.uniform(0, width / 2, n)
            y1 = rng.uniform(0, height / 2, n)
            blob[...] = np.stack([np.zeros(n), x1, y1, x1 + rng.uniform(8, width / 2, n),
                                  y1 + rng.uniform(8, height / 2, n)], axis=1).reshape(blob.shape)
        else:
            blob[...] = rng.uniform(-1, 1, size=blob.shape)


# The census --------------------------------------------------------------------------------------

@contextlib.contextmanager
def python_path(folders):
    added = [f for f in folders if os.path.isdir(f) and f not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for f in added:
            sys.path.remove(f)


def run_net(param, rel, phase, stages, sources, rng):
    """Builds the net in one state on generated sources and runs it: forward, and backward in
    TRAIN. Returns the outputs that hold a value that is not finite (a note, not a failure).
    Raises Failure(the step, the error)."""
    import caffe
    step = 'build'
    try:
        state_param = release_settings(with_generated_sources(param, rel, sources), phase)
        net = caffe.Net(state_param, phase, stages=stages)
        step = 'forward'
        fill_inputs(net, rng)
        feed_roidbs(net, sources)
        outputs = net.forward()
        nonfinite = sorted(name for name, value in outputs.items()
                           if not np.all(np.isfinite(value)))
        if phase == caffe.TRAIN:
            step = 'backward'
            net.backward()
    except Exception as e:
        raise Failure(step, e) from e
    return nonfinite


class Failure(Exception):
    """A net's failure at one step: 'build', 'forward' or 'backward'."""

    def __init__(self, step, error):
        super().__init__(step)
        self.step = step
        self.error = error


def census_file(root, rel, scratch, python_folders, verbose=False):
    """The record of one file: what it is, how far it got, the first error."""
    import caffe
    path = os.path.join(root, rel)
    record = {'root': root, 'file': rel, 'kind': None, 'parsed': False, 'built': None,
              'forward': None, 'backward': None, 'states': [], 'error': None, 'step': None,
              'nonfinite_outputs': []}
    try:
        kind, param = read_file(path)
    except ParseFailure as f:
        record.update(kind=f.kind, step='parse', error=_common.error_message(f.error))
        return record
    record.update(kind=kind, parsed=True)
    if kind == 'solver':
        return record
    folder = os.path.dirname(path)
    sources = Sources(tempfile.mkdtemp(dir=scratch))
    rng = np.random.RandomState(0)
    record.update(built=True, forward=True)
    phase = None
    try:
        with python_path([folder, os.path.join(folder, 'layers')] + python_folders):
            for phase, stages in states(param):
                name = str(caffe.Phase(phase)) + ''.join(' stage ' + s for s in stages)
                record['states'].append(name)
                if phase == caffe.TRAIN:
                    record['backward'] = True
                record['nonfinite_outputs'] += ['%s: %s' % (name, output) for output in
                                                run_net(param, rel, phase, stages, sources, rng)]
    except Failure as f:
        # The TRAIN states come first: a failure in a TEST state leaves backward as it was.
        record.update(step=f.step, error='%s: %s' % (name, _common.error_message(f.error)))
        if verbose:
            traceback.print_exception(f.error)
        if f.step == 'build':
            record['built'] = False
        record['forward'] = record['forward'] and f.step == 'backward'
        if phase == caffe.TRAIN:
            record['backward'] = False
    return record


def counts(records):
    nets = [r for r in records if r['kind'] == 'net']
    solvers = [r for r in records if r['kind'] == 'solver']
    return {'files': len(records), 'parsed': sum(r['parsed'] for r in records),
            'solvers': len(solvers), 'solvers_parsed': sum(r['parsed'] for r in solvers),
            'nets': len(nets), 'nets_parsed': sum(r['parsed'] for r in nets),
            'built': sum(bool(r['built']) for r in nets),
            'forward': sum(bool(r['forward']) for r in nets),
            'train_nets': sum(r['backward'] is not None for r in nets),
            'backward': sum(bool(r['backward']) for r in nets)}


def mark(value):
    return {True: 'yes', False: 'NO', None: '-'}[value]


def main(argv=None):
    args = parse_args(argv)
    import caffe
    caffe.set_mode_cpu()
    roots = [os.path.abspath(args.caffe_root)] + [os.path.abspath(r) for r in args.extra_root]
    files = find_files(roots, args.only)
    if not files:
        _common.fail('no .prototxt under models/ or examples/ of %s' % ', '.join(roots))
    python_folders = [os.path.abspath(p) for p in args.python_path]
    records = []
    start = time.time()
    print('%-70s %-6s %-6s %-5s %-7s %-8s' % ('file', 'kind', 'parsed', 'built', 'forward',
                                              'backward'), flush=True)
    with tempfile.TemporaryDirectory(prefix='census_') as scratch:
        for root, rel in files:
            tic = time.time()
            with contextlib.redirect_stdout(sys.stderr):   # the layers' own prints
                record = census_file(root, rel, scratch, python_folders,
                                     verbose='--debug' in sys.argv)
            record['seconds'] = round(time.time() - tic, 2)
            records.append(record)
            shown = os.path.join(os.path.basename(root), rel)
            print('%-70s %-6s %-6s %-5s %-7s %-8s' % (
                shown, record['kind'], mark(record['parsed']), mark(record['built']),
                mark(record['forward']), mark(record['backward'])), flush=True)
            if record['error']:
                print('    %s failed: %s' % (record['step'], record['error']), flush=True)
            if record['nonfinite_outputs']:
                print('    outputs not finite: %s' % ', '.join(record['nonfinite_outputs']),
                      flush=True)
    total = counts(records)
    print('%(files)d files: %(parsed)d parsed (%(solvers_parsed)d/%(solvers)d solvers, '
          '%(nets_parsed)d/%(nets)d nets); nets built %(built)d/%(nets)d, ran forward '
          '%(forward)d/%(nets)d, backward %(backward)d/%(train_nets)d train nets' % total)
    print('%.0f s' % (time.time() - start), flush=True)
    if args.result:
        _common.write_result(args.result, roots=roots, counts=total, files=records)
    failed = total['parsed'] < total['files'] or total['forward'] < total['nets'] or \
        total['backward'] < total['train_nets'] or total['built'] < total['nets']
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(_common.run_tool(main))
