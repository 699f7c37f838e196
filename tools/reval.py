#!/usr/bin/env python3
"""Re-evaluates the detections a test run saved (<output dir>/detections.npz, or the release's
detections.pkl, read without running code), optionally re-applying per-class NMS, without
running the network again. The evaluation goes to --result as JSON (default: reval_result.json
in that folder).

  tools/reval.py output/faster_rcnn_end2end/voc_2007_test/vgg16_faster_rcnn_iter_70000 \
      --imdb voc_2007_test [--ovthresh 0.7]
"""
import argparse
import os
import sys

import _common

from fast_rcnn import detection_cache
from fast_rcnn.test import apply_nms


def parse_args(argv=None):
    parser = _common.ArgumentParser(description='Re-evaluate saved detections')
    parser.add_argument('output_dir', help="folder holding detections.npz (or the release's "
                                           'detections.pkl)')
    _common.add_imdb_arg(parser, 'voc_2007_test', 'dataset the detections are of')
    parser.add_argument('--matlab', dest='matlab_eval', action='store_true',
                        help="use the VOC devkit's MATLAB code for evaluation")
    parser.add_argument('--comp', dest='comp_mode', action='store_true',
                        help='competition mode')
    parser.add_argument('--nms', dest='apply_nms', action='store_true',
                        help='apply per-class NMS (cfg.TEST.NMS) to the detections first')
    parser.add_argument('--ovthresh', dest='ovthresh', type=float, default=None,
                        help='IoU a detection needs with a ground-truth box to count (VOC-style '
                             'datasets; default: the dataset\'s, 0.5), e.g. 0.7')
    return _common.parse_tool_args(parser, argv, 'reval_result.json')


def _check_image_set(det_file, imdb):
    """Detections saved with a key (fast_rcnn.detection_cache) must be of this image set."""
    key = detection_cache.read_key(det_file)
    if key is None:
        return  # written without a key: the size check below is all there is
    if key.get('imdb') != imdb.name or \
            key.get('images_sha1') != detection_cache.image_set_digest(imdb):
        _common.fail('%s holds detections for the image set %s as it was then; --imdb %s '
                     'differs (pass the same --imdb, or test again)'
                     % (det_file, key.get('imdb'), imdb.name))


def main(argv=None):
    args = parse_args(argv)
    experiment = _common.load_cfg(args.cfg_files, args.set_cfgs)
    det_file = detection_cache.detections_file(args.output_dir)
    _common.require_file(det_file, 'detections file')
    imdb = experiment.imdb(args.imdb_name)
    imdb.competition_mode(args.comp_mode)
    if args.matlab_eval:
        if 'matlab_eval' not in imdb.config:
            _common.fail('%s has no MATLAB evaluation' % imdb.name)
        imdb.config['matlab_eval'] = True
    if args.ovthresh is not None:
        if 'ovthresh' not in imdb.config:
            _common.fail('%s has no IoU threshold to set (--ovthresh is for VOC-style '
                         'evaluation)' % imdb.name)
        if not 0 < args.ovthresh < 1:
            _common.fail('--ovthresh should be between 0 and 1, got %g' % args.ovthresh)
        imdb.config['ovthresh'] = args.ovthresh
    _check_image_set(det_file, imdb)
    dets = detection_cache.load_detections(det_file, imdb.num_classes, imdb.num_images)
    if args.apply_nms:
        nms = experiment.test.nms
        print('Applying NMS (%.2f) to all detections' % nms, flush=True)
        dets = apply_nms(dets, nms)
    print('Evaluating detections', flush=True)
    evaluation = imdb.evaluate(dets, args.output_dir) or {}
    evaluation.pop('pr_curves', None)
    _common.write_result(args.result or os.path.join(args.output_dir, 'reval_result.json'),
                         detections=det_file, imdb=imdb.name, nms=bool(args.apply_nms),
                         ovthresh=imdb.config.get('ovthresh'),
                         mean_ap=evaluation.get('mean_ap'), evaluation=evaluation)


if __name__ == '__main__':
    sys.exit(_common.run_tool(main))
