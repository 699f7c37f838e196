#!/usr/bin/env python3
"""Tests a Fast R-CNN or Faster R-CNN network on a dataset: detections, their evaluation
(per-class AP and mAP for PASCAL VOC style datasets, AP@[.5,.95] and AP@.5 for COCO) and the
per-class precision/recall curves (pr_curves.png beside detections.npz).

  tools/test_net.py --gpu 0 --def models/pascal_voc/VGG16/faster_rcnn_end2end/test.prototxt \
      --net output/faster_rcnn_end2end/voc_2007_trainval/vgg16_faster_rcnn_iter_70000.caffemodel \
      --imdb voc_2007_test --cfg experiments/cfgs/faster_rcnn_end2end.yml

The results (mAP, per-class AP, files, time per image, and the prototxt the run used) go to
--result as JSON (default: test_net_result.json in the output folder,
output/<EXP_DIR>/<imdb>/<model name>/). That prototxt, a copy of --def written there with the
run's settings (its layers' param_str and the test settings layer), reproduces the detections
with --net and no --cfg:

  tools/test_net.py --def output/.../test_run.prototxt --net MODEL --imdb voc_2007_test

--onnx MODEL.onnx (tools/export_onnx.py) tests the exported graph in ONNX Runtime instead, with the
test settings it was exported with (its metadata) and the same pre- and post-processing.
"""
import os
import sys

import _common

from fast_rcnn.experiment import test_experiment


def parse_args(argv=None):
    parser = _common.ArgumentParser(description='Test a Fast R-CNN / Faster R-CNN network')
    _common.add_device_arg(parser)
    _common.add_model_args(parser, 'test prototxt', 'model to test', wait=True, required=False)
    parser.add_argument('--onnx', dest='onnx', default=None, metavar='MODEL.onnx',
                        help='test this ONNX export (tools/export_onnx.py) in ONNX Runtime '
                             'instead of --def/--net in the runtime (docs/export.md)')
    _common.add_imdb_arg(parser, 'voc_2007_test', 'dataset to test')
    parser.add_argument('--comp', dest='comp_mode', action='store_true',
                        help='competition mode (keep the result files under fixed names)')
    parser.add_argument('--vis', dest='vis', action='store_true',
                        help='write a PNG of each image with its detections')
    parser.add_argument('--num_dets', dest='max_per_image', type=int, default=None,
                        help='at most this many detections per image '
                             '(default: the test settings\', cfg.TEST.MAX_PER_IMAGE)')
    parser.add_argument('--proposals', dest='proposals', default=None,
                        help='test the detector on these proposals instead of its RPN: '
                             'per-image boxes from tools/rpn_generate.py (.npz, or the '
                             "release's .pkl); for .mat "
                             'files (selective search, EdgeBoxes) use --set '
                             'TEST.HAS_RPN False TEST.PROPOSAL_METHOD selective_search|edge_boxes')
    return _common.parse_tool_args(parser, argv, 'test_net_result.json')


def main(argv=None):
    args = parse_args(argv)
    experiment = _common.start(args)
    if args.onnx:
        _common.require_file(args.onnx, 'ONNX model')
    elif not (args.prototxt and args.caffemodel):
        _common.fail('give --def and --net, or --onnx')
    else:
        _common.require_model(args)
    if args.proposals:
        _common.require_file(args.proposals, 'proposals file')
    if not args.onnx:
        _common.setup_caffe(args.gpu)
    testing = test_experiment(experiment, args.prototxt, args.caffemodel, args.imdb_name,
                              args.proposals, args.max_per_image, onnx=args.onnx)
    testing.imdb.competition_mode(args.comp_mode)
    result = testing.run(args.vis)
    evaluation = result.evaluation or {}
    _common.write_result(args.result or os.path.join(testing.output_dir, 'test_net_result.json'),
                         model=testing.caffemodel, prototxt=testing.prototxt, onnx=args.onnx,
                         imdb=testing.imdb.name, num_images=testing.imdb.num_images,
                         proposals=args.proposals, mean_ap=evaluation.get('mean_ap'),
                         evaluation=evaluation, detections=result.detections_file,
                         pr_curves=result.pr_curves_png, output_dir=testing.output_dir,
                         seconds_per_image=result.seconds_per_image)


if __name__ == '__main__':
    sys.exit(_common.run_tool(main))
