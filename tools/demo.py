#!/usr/bin/env python3
"""Detects objects in a few images with a trained Faster R-CNN and writes each image with its
detections drawn on it as a PNG.

  tools/demo.py --cpu                        the toy model trained by `make demo`, on toy test
                                             images, PNGs to output/demo/
  tools/demo.py --net vgg16 --gpu 0          the released VGG16 model (data/faster_rcnn_models)
                                             on data/demo/*.jpg
  tools/demo.py --def test.prototxt --model my.caffemodel --classes classes.txt --images a.jpg

The net's settings are those its prototxt holds: the prototxt a test run wrote
(tools/test_net.py's result names it) and the run's weights are all the demo needs. --cfg and
--set change them; a released prototxt with none of its own is shown with the release's test
settings, or, for --net toy, those of experiments/cfgs/toy.yml.
"""
import glob
import os
import re
import sys

import _common

import cv2
import numpy as np

from fast_rcnn import test_settings
from fast_rcnn.test import detections_for_class, im_detect
from fast_rcnn.vis import save_detections_image
from utils import paths
from utils.timer import Timer

VOC_CLASSES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair',
               'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant',
               'sheep', 'sofa', 'train', 'tvmonitor')
# The demo nets: (folder under models/pascal_voc, model file in data/faster_rcnn_models). The
# release made the VGG16 and ZF files; the ResNets have none released: a model trained here
# (docs/resnet.md) goes there under that name, or is given with --model.
RELEASED_NETS = {'vgg16': ('VGG16', 'VGG16_faster_rcnn_final.caffemodel'),
                 'zf': ('ZF', 'ZF_faster_rcnn_final.caffemodel'),
                 'resnet50': ('ResNet-50', 'ResNet-50_faster_rcnn_final.caffemodel'),
                 'resnet101': ('ResNet-101', 'ResNet-101_faster_rcnn_final.caffemodel')}
RELEASED_DEMO_IMAGES = ('000456.jpg', '000542.jpg', '001150.jpg', '001763.jpg', '004545.jpg')
CONF_THRESH = 0.8
NMS_THRESH = 0.3


def parse_args(argv=None):
    parser = _common.ArgumentParser(description='Faster R-CNN demo')
    _common.add_device_arg(parser, default='0')
    parser.add_argument('--cpu', dest='cpu_mode', action='store_true',
                        help='run on the CPU (same as --gpu -1)')
    parser.add_argument('--net', dest='demo_net', default='toy',
                        choices=['toy'] + sorted(RELEASED_NETS),
                        help='which model (default: %(default)s)')
    parser.add_argument('--def', dest='prototxt', default=None,
                        help='test prototxt (overrides --net)')
    parser.add_argument('--model', dest='caffemodel', default=None,
                        help='.caffemodel (overrides --net)')
    parser.add_argument('--onnx', dest='onnx', default=None, metavar='MODEL.onnx',
                        help='run this ONNX export (tools/export_onnx.py) in ONNX Runtime '
                             'instead of the net in the runtime (docs/export.md)')
    parser.add_argument('--classes', dest='classes', default=None,
                        help='class names: a file with one per line, or a comma-separated list '
                             '(default: those of --net)')
    parser.add_argument('--images', dest='images', nargs='+', default=None,
                        help='images to run on (default: a few test images of the dataset)')
    parser.add_argument('--num_images', dest='num_images', type=int, default=4,
                        help='how many default images (default: %(default)s)')
    parser.add_argument('--out', dest='out_dir', default=None,
                        help='folder for the PNGs (default: output/demo)')
    parser.add_argument('--thresh', dest='thresh', type=float, default=CONF_THRESH,
                        help='draw detections scoring at least this (default: %(default)s)')
    return _common.parse_tool_args(parser, argv, 'demo_result.json')


def _iteration(path):
    m = re.search(r'_iter_(\d+)\.caffemodel$', path)
    return int(m.group(1)) if m else -1


def find_toy_model():
    """The newest toy detector under output/: an end-to-end snapshot (what `make demo` trains) or
    the alternating training's final model (the stages' RPN-only snapshots are not detectors)."""
    out = os.path.join(paths.ROOT_DIR, 'output', '*', 'toy_train')
    found = (glob.glob(os.path.join(out, 'toy_faster_rcnn_iter_*.caffemodel'))
             + glob.glob(os.path.join(out, 'TOY_faster_rcnn_final.caffemodel')))
    if not found:
        return None
    return max(found, key=lambda p: (os.path.getmtime(p), _iteration(p)))


def read_classes(spec):
    if os.path.isfile(spec):
        with open(spec) as f:
            names = [line.strip() for line in f]
        return tuple(n for n in names if n and not n.startswith('#'))
    return tuple(n.strip() for n in spec.split(',') if n.strip())


def resolve_inputs(args, experiment):
    """(prototxt, caffemodel, class names without background, images) for the arguments."""
    if args.demo_net == 'toy':
        from datasets.toy import CLASSES as TOY_CLASSES
        prototxt = os.path.join(experiment.models_dir, 'toy', 'TOY', 'faster_rcnn_end2end',
                                'test.prototxt')
        caffemodel = args.caffemodel or find_toy_model()
        if caffemodel is None and not args.onnx:
            _common.fail('no trained toy model under output/*/toy_train/; train one with '
                         '`make demo` or pass --model')
        classes = TOY_CLASSES
        images = args.images or _toy_test_images(experiment, args.num_images)
    else:
        folder, model_file = RELEASED_NETS[args.demo_net]
        prototxt = os.path.join(experiment.models_dir, 'pascal_voc', folder,
                                'faster_rcnn_alt_opt', 'faster_rcnn_test.pt')
        caffemodel = os.path.join(experiment.data_dir, 'faster_rcnn_models', model_file)
        classes = VOC_CLASSES
        images = args.images or [os.path.join(experiment.data_dir, 'demo', n)
                                 for n in RELEASED_DEMO_IMAGES]
    prototxt = args.prototxt or prototxt
    caffemodel = args.caffemodel or caffemodel
    if args.classes:
        classes = read_classes(args.classes)
    return prototxt, caffemodel, classes, images


def _toy_test_images(experiment, count):
    imdb = experiment.imdb('toy_test')
    return [imdb.image_path_at(i) for i in range(min(count, imdb.num_images))]


def demo(net, image_path, classes, out_dir, thresh, settings):
    """Detects, prints and draws the objects of one image; returns the PNG's path and the
    number of detections >= thresh."""
    im = cv2.imread(image_path)
    if im is None:
        _common.fail('cannot read image %s' % image_path)
    timer = Timer()
    timer.tic()
    scores, boxes = im_detect(net, im, settings=settings)
    timer.toc()
    if scores.shape[1] != len(classes) + 1:
        _common.fail('the net scores %d classes but %d class names (+ background) were given'
                     % (scores.shape[1], len(classes)))
    nms_function = settings.nms_function()
    dets = [detections_for_class(scores, boxes, j, 0.0, NMS_THRESH, nms_function)
            for j in range(1, scores.shape[1])]
    found = sum(int((d[:, -1] >= thresh).sum()) for d in dets)
    print('%s: %d object proposals, %d detections >= %.2f in %.3fs'
          % (image_path, boxes.shape[0], found, thresh, timer.total_time), flush=True)
    for name, d in zip(classes, dets):
        for det in d[d[:, -1] >= thresh]:
            print('    %-12s %.3f  [%.0f, %.0f, %.0f, %.0f]'
                  % (name, det[4], det[0], det[1], det[2], det[3]), flush=True)
    stem = os.path.splitext(os.path.basename(image_path))[0]
    path = os.path.join(out_dir, stem + '_detections.png')
    save_detections_image(im, classes, dets, path, thresh=thresh,
                          title='%d detections >= %.2f' % (found, thresh))
    return path, found


def main(argv=None):
    args = parse_args(argv)
    cfg_files = list(args.cfg_files)
    if args.demo_net == 'toy' and not cfg_files and not args.prototxt:
        # The toy net's own prototxt holds none of the toy's settings.
        cfg_files = [os.path.join(paths.ROOT_DIR, 'experiments', 'cfgs', 'toy.yml')]
    experiment = _common.load_cfg(cfg_files, args.set_cfgs)
    prototxt, caffemodel, classes, images = resolve_inputs(args, experiment)
    if args.onnx:
        _common.require_file(args.onnx, 'ONNX model')
        prototxt = caffemodel = args.onnx
    _common.require_file(prototxt, 'net definition')
    _common.require_weights(caffemodel)
    from utils.image_file import check_image_file
    for image_path in images:  # before the slow net set-up
        check_image_file(image_path)

    out_dir = args.out_dir or os.path.join(paths.ROOT_DIR, 'output', 'demo')
    if args.onnx:
        # The graph carries the test settings it was exported with.
        from caffe.onnx_export.runner import OnnxNet
        from fast_rcnn.onnx_model import settings_of
        net = OnnxNet(args.onnx)
        settings = settings_of(net)
    else:
        import caffe
        _common.setup_caffe(None if args.cpu_mode else args.gpu)
        # The net with the settings of --cfg and --set, if any, where its prototxt has none.
        prototxt = experiment.net_file(prototxt, len(classes) + 1,
                                       os.path.join(out_dir, 'nets'), caffe.TEST)
        net = caffe.Net(prototxt, caffemodel, caffe.TEST)
        settings = test_settings.of_net(net)
    print('Loaded network %s' % caffemodel, flush=True)
    if not settings.has_rpn:
        _common.fail('%s takes given proposals (a rois input); the demo runs nets with an RPN'
                     % prototxt)
    # The first forward passes set up buffers; keep them out of the timings.
    for _ in range(2):
        im_detect(net, (128 * np.ones((300, 500, 3))).astype(np.uint8), settings=settings)
    os.makedirs(out_dir, exist_ok=True)
    pictures = []
    for image_path in images:
        path, found = demo(net, image_path, classes, out_dir, args.thresh, settings)
        print('Wrote %s' % path, flush=True)
        pictures.append({'image': image_path, 'png': path, 'detections': found})
    _common.write_result(args.result or os.path.join(out_dir, 'demo_result.json'),
                         model=caffemodel, prototxt=prototxt, threshold=args.thresh,
                         pictures=pictures)


if __name__ == '__main__':
    sys.exit(_common.run_tool(main))
