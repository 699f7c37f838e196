#!/usr/bin/env python3
"""Measures the coordinate gradient of non-approximate joint training (paper Sec. 3.2) against
the rest of the gradient, on training images: for each image, the norm of rpn_bbox_pred's
gradient from the RPN's own losses (all approximate joint training gives it) and of what the
detector's loss adds through the proposals' coordinates, and the same over the whole net
(fast_rcnn.joint_gradients). Nothing is updated.

  tools/coord_gradient_norms.py --gpu cpu \
      --solver models/toy/TOY/faster_rcnn_end2end_nonapprox/solver.prototxt --imdb toy_train \
      --weights output/.../toy_faster_rcnn_nonapprox_iter_2000.caffemodel \
      --cfg experiments/cfgs/faster_rcnn_end2end.yml --cfg experiments/cfgs/toy.yml

Prints the medians and writes every image's norms to --result as JSON (default:
coord_gradient_norms.json in output/<EXP_DIR>/<imdb>/).
"""
import os
import sys

import _common

import numpy as np


def parse_args(argv=None):
    parser = _common.ArgumentParser(description='Coordinate gradient of non-approximate joint '
                                                'training against the rest')
    _common.add_device_arg(parser)
    parser.add_argument('--solver', required=True,
                        help='solver of a non-approximate joint training net')
    parser.add_argument('--weights', default=None,
                        help='weights to measure at (a training snapshot, or initial weights); '
                             'default: the net\'s fillers')
    _common.add_imdb_arg(parser, 'voc_2007_trainval', 'training images to measure on')
    parser.add_argument('--images', type=int, default=20,
                        help='training images (minibatches) measured (default: %(default)s)')
    return _common.parse_tool_args(parser, argv, 'coord_gradient_norms.json')


def is_detection_snapshot(path):
    """A snapshot of this project's training saves bbox_pred un-normalized."""
    from caffe import io
    from caffe.proto import caffe_pb2
    return any(l.name == 'bbox_pred' and l.blobs
               for l in io.read_binary(path, caffe_pb2.NetParameter()).layer)


def main(argv=None):
    args = parse_args(argv)
    experiment = _common.start(args)
    _common.require_file(args.solver, 'solver file')
    _common.require_weights(args.weights)
    if args.images < 1:
        _common.fail('--images should be at least 1')
    _common.setup_caffe(args.gpu)
    from fast_rcnn import joint_gradients
    from fast_rcnn.experiment import train_experiment
    training = train_experiment(experiment, args.solver, args.imdb_name, args.weights)
    solver, output_dir, imdb = training.solver_file, training.output_dir, training.imdb
    sw = training.solver_wrapper()
    net = sw.solver.net
    if args.weights and sw.normalization and is_detection_snapshot(args.weights):
        sw.normalization.unfold(net.params['bbox_pred'])
    try:
        joint_gradients.proposal_layer(net)
    except ValueError as e:
        _common.fail('%s: %s' % (solver, e))
    rows = []
    for i in range(args.images):
        parts = joint_gradients.gradient_parts(net)
        rows.append({'rpn_bbox_pred_approx': parts['rpn_bbox_pred'][0],
                     'rpn_bbox_pred_coord': parts['rpn_bbox_pred'][1],
                     'net_approx': parts[None][0], 'net_coord': parts[None][1]})
    medians = {key: float(np.median([r[key] for r in rows])) for key in rows[0]}
    ratios = [r['rpn_bbox_pred_coord'] / max(r['rpn_bbox_pred_approx'], 1e-30) for r in rows]
    medians['rpn_bbox_pred_ratio'] = float(np.median(ratios))
    print('median over %d images: rpn_bbox_pred: RPN losses %.4g, coordinate part %.4g '
          '(ratio %.3g); whole net: approximate %.4g, coordinate part %.4g'
          % (args.images, medians['rpn_bbox_pred_approx'], medians['rpn_bbox_pred_coord'],
             medians['rpn_bbox_pred_ratio'], medians['net_approx'], medians['net_coord']),
          flush=True)
    _common.write_result(args.result or os.path.join(output_dir, 'coord_gradient_norms.json'),
                         solver=solver, weights=args.weights, imdb=imdb.name,
                         images=args.images, medians=medians, per_image=rows)


if __name__ == '__main__':
    sys.exit(_common.run_tool(main))
