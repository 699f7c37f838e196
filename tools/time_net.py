#!/usr/bin/env python3
"""Time per image of a Faster R-CNN test net, split as the paper's Table 5: shared convolutional
layers, proposals (the RPN's own layers and the proposal layer), and region-wise work (RoI
pooling, fully-connected layers, softmax, per-class NMS). Prints one line per part and

  Timing (ms/image): conv X proposal Y region-wise Z total T rate F fps

  tools/time_net.py --gpu 0 --def models/pascal_voc/ZF/faster_rcnn_alt_opt/faster_rcnn_test.pt \
      --net output/.../ZF_faster_rcnn_final.caffemodel --imdb voc_2007_test --num-images 100

A net compressed by tools/compress_net.py (truncated SVD of fc6/fc7) is timed the same way.
The first image is a warm-up and not counted. The times go to --result as JSON (default:
time_net_result.json in output/<EXP_DIR>/<imdb>/timing/).
"""
import argparse
import os
import sys
import time

import _common

import cv2
import numpy as np



def parse_args(argv=None):
    parser = _common.ArgumentParser(description='Time a Faster R-CNN test net (Table 5)')
    _common.add_device_arg(parser)
    _common.add_model_args(parser, 'test prototxt (with RPN)', 'model to time')
    _common.add_imdb_arg(parser, 'voc_2007_test', 'images to time on')
    parser.add_argument('--num-images', dest='num_images', type=int, default=100,
                        help='images timed, after one warm-up (default: %(default)s)')
    return _common.parse_tool_args(parser, argv, 'time_net_result.json')


def split_layers(net):
    """(conv_end, proposal_end) layer names: layers up to conv_end are the shared convolutions,
    those after it up to proposal_end the RPN, the rest region-wise."""
    names = list(net._layer_names)
    proposal = [i for i, n in enumerate(names) if 'rois' in net.top_names[n]]
    rpn = [i for i, n in enumerate(names) if n.startswith('rpn')]
    if not proposal or not rpn:
        raise ValueError('the net has no RPN (no rpn_* layers or no layer making rois)')
    first_rpn, last_proposal = min(rpn), max(proposal)
    return names[first_rpn - 1], names[last_proposal]


def time_image(net, im, conv_end, proposal_end, num_classes, settings):
    """Seconds spent in the three parts for one image (settings: the net's
    fast_rcnn.test_settings.TestSettings)."""
    from fast_rcnn.test import detections_for_class, image_blob
    blob, scales = image_blob(im, settings)
    im_info = np.array([[blob.shape[2], blob.shape[3], scales[0]]], dtype=np.float32)
    net.blobs['data'].reshape(*blob.shape)
    net.blobs['im_info'].reshape(*im_info.shape)
    t0 = time.perf_counter()
    net.forward(data=blob.astype(np.float32), im_info=im_info, end=conv_end)
    t1 = time.perf_counter()
    names = list(net._layer_names)
    net.forward(start=names[names.index(conv_end) + 1], end=proposal_end)
    t2 = time.perf_counter()
    out = net.forward(start=names[names.index(proposal_end) + 1])
    scores = np.asarray(out['cls_prob']).reshape(-1, num_classes)
    boxes = np.tile(net.blobs['rois'].data[:, 1:5] / scales[0], (1, num_classes))
    nms_function = settings.nms_function()
    for j in range(1, num_classes):
        detections_for_class(scores, boxes, j, settings.score_thresh, settings.nms,
                             nms_function)
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2


def main(argv=None):
    args = parse_args(argv)
    experiment = _common.start(args)
    _common.require_model(args)
    import caffe
    from fast_rcnn import test_settings
    _common.setup_caffe(args.gpu)
    imdb = experiment.imdb(args.imdb_name)
    output_dir = experiment.output_dir(imdb, 'timing')
    prototxt = experiment.net_file(args.prototxt, imdb.num_classes, output_dir, caffe.TEST)
    net = caffe.Net(prototxt, args.caffemodel, caffe.TEST)
    settings = test_settings.of_net(net)
    try:
        conv_end, proposal_end = split_layers(net)
    except ValueError as e:
        _common.fail('%s: %s' % (args.prototxt, e))
    count = min(args.num_images, imdb.num_images - 1) if imdb.num_images > 1 else 1
    totals = np.zeros(3)
    for i in range(count + 1):
        im = cv2.imread(imdb.image_path_at(i % imdb.num_images))
        parts = time_image(net, im, conv_end, proposal_end, imdb.num_classes, settings)
        if i > 0 or count == 0:
            totals += parts
    ms = 1000.0 * totals / max(count, 1)
    for name, value in zip(('conv', 'proposal', 'region-wise'), ms):
        print('%s: %.1f ms/image' % (name, value), flush=True)
    total = ms.sum()
    fps = 1000.0 / total if total > 0 else float('inf')
    print('Timing (ms/image): conv %.1f proposal %.1f region-wise %.1f total %.1f rate %.2f fps'
          % (ms[0], ms[1], ms[2], total, fps), flush=True)
    _common.write_result(args.result or os.path.join(output_dir, 'time_net_result.json'),
                         conv_ms=ms[0], proposal_ms=ms[1], region_ms=ms[2], total_ms=total,
                         fps=fps, images=count, model=args.caffemodel, prototxt=prototxt,
                         device='cpu' if args.gpu is None else 'gpu %d' % args.gpu)


if __name__ == '__main__':
    sys.exit(_common.run_tool(main))
