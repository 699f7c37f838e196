#!/usr/bin/env python3
"""Writes a Caffe test net and its weights as one ONNX graph (docs/export.md): the whole Faster
R-CNN detector, its proposal layer included, in standard operators, for ONNX Runtime, TensorRT,
OpenVINO and the like; or any plain Caffe net (a classifier) whose layers have ONNX forms.

  tools/export_onnx.py --def models/pascal_voc/VGG16/faster_rcnn_end2end/test.prototxt \
      --net output/faster_rcnn_end2end/voc_2007_trainval/vgg16_faster_rcnn_iter_70000.caffemodel \
      --out vgg16_faster_rcnn.onnx --cfg experiments/cfgs/faster_rcnn_end2end.yml

The net is exported as the runtime tests it: the copy of the prototxt with the experiment's
settings (--cfg, --set) written in (fast_rcnn.experiment), whose proposal layer's param_str and
test settings go into the graph and its metadata. tools/test_net.py --onnx and
tools/demo.py --onnx run the file. --check IMAGE ... runs the written file in ONNX Runtime and
the net in the runtime on those images, prepared as im_detect prepares them, and reports how far
apart their outputs are (a net with a proposal layer). Results (the file, its inputs and
outputs, the settings, the check) go to --result as JSON (default: beside --out).
"""
import json
import os
import sys
import tempfile

import _common


def parse_args(argv=None):
    parser = _common.ArgumentParser(description='Export a Caffe test net to ONNX')
    _common.add_model_args(parser, 'test prototxt', 'weights (.caffemodel)')
    parser.add_argument('--out', dest='out', required=True, help='the ONNX file to write')
    parser.add_argument('--check', dest='check_images', nargs='+', default=[], metavar='IMAGE',
                        help='compare the written graph with the runtime on these images')
    return _common.parse_tool_args(parser, argv, '<out>_result.json')


def main(argv=None):
    args = parse_args(argv)
    experiment = _common.start(args)
    _common.require_model(args)
    import caffe
    from fast_rcnn.onnx_model import export_detector, proposal_tops, write_model
    from utils.image_file import check_image_file
    caffe.set_mode_cpu()
    with tempfile.TemporaryDirectory() as scratch:
        # The net as the runtime tests it: the experiment's settings and edits in a copy.
        prototxt = experiment.net_file(args.prototxt, None, scratch, caffe.TEST)
        net = caffe.Net(prototxt, args.caffemodel, caffe.TEST)
    if args.check_images and not proposal_tops(net):
        _common.fail('--check runs im_detect, which needs a net with a proposal layer')
    for image in args.check_images:  # before the slow export
        check_image_file(image)
    model = export_detector(net, sources=(args.prototxt, args.caffemodel))
    write_model(model, args.out)
    graph = model.graph
    metadata = {p.key: p.value for p in model.metadata_props}
    print('Wrote %s (%d nodes, %d weights, opset %d)'
          % (args.out, len(graph.node), len(graph.initializer), model.opset_import[0].version),
          flush=True)
    checks = []
    if args.check_images:
        from caffe.onnx_export.runner import OnnxNet
        onnx_net = OnnxNet(args.out)
        checks = [check(net, onnx_net, image) for image in args.check_images]
    _common.write_result(
        args.result or os.path.splitext(args.out)[0] + '_result.json',
        onnx=args.out, prototxt=args.prototxt, model=args.caffemodel,
        inputs=[i.name for i in graph.input], outputs=[o.name for o in graph.output],
        opset=model.opset_import[0].version,
        metadata={k: json.loads(v) for k, v in metadata.items()}, check=checks)


def check(net, onnx_net, image_path):
    """The runtime net and the exported graph (an OnnxNet) on one image as im_detect feeds it:
    the differences of their outputs (fast_rcnn.onnx_model.compare)."""
    import cv2
    import numpy as np
    from fast_rcnn.onnx_model import compare
    from fast_rcnn import test_settings
    from fast_rcnn.test import image_blob
    data, scales = image_blob(cv2.imread(image_path), test_settings.of_net(net))
    im_info = np.array([[data.shape[2], data.shape[3], scales[0]]], dtype=np.float32)
    report = compare(net, onnx_net, {'data': data, 'im_info': im_info})
    print('%s (%dx%d): %s' % (image_path, data.shape[2], data.shape[3], '; '.join(
        '%s %s' % (name, _describe(name, r)) for name, r in sorted(report.items()))),
        flush=True)
    return {'image': image_path, 'blob': list(data.shape), 'outputs': report}


def _describe(name, r):
    if not r['same_shape']:
        return 'shape %s differs' % (r['shape'],)
    if name == 'rois':
        text = '%d rows, max diff %.2g px' % (r['shape'][0], r['max_abs_diff'])
        if r['reordered'] or r['unmatched']:
            text += ' (%d in another order, %d not in the graph\'s: tied scores)' % (
                r['reordered'], r['unmatched'])
        return text
    return 'max diff %.2g of its largest magnitude' % r['max_rel_diff']


if __name__ == '__main__':
    sys.exit(_common.run_tool(main))
