#!/usr/bin/env python3
"""Draws a network definition as a picture (pycaffe's draw_net.py): layers as boxes, blobs as
octagons. The output format follows the file name: .png, .pdf, .svg, ... need Graphviz's `dot`
program; .dot (or .gv, .raw) writes the graph's text and needs only pydot.

  tools/draw_net.py models/pascal_voc/ZF/faster_rcnn_end2end/train.prototxt zf.png --phase TRAIN
"""
import argparse
import sys

import _common


def parse_args(argv=None):
    parser = _common.ArgumentParser(
        description='Draw a network definition (needs pydot, and Graphviz for pictures)',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('input_net_proto_file', help='network definition (.prototxt)')
    parser.add_argument('output_image_file', help='picture to write (.png, .pdf, .svg, .dot, ...)')
    parser.add_argument('--rankdir', default='LR',
                        help='graph direction: LR (left to right), TB (top to bottom), RL, BT')
    parser.add_argument('--phase', default='ALL', choices=('TRAIN', 'TEST', 'ALL'),
                        help='draw the layers of one phase, or ALL regardless of phase')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import caffe
    import caffe.draw
    from caffe.proto import caffe_pb2
    net = caffe.io.read_prototxt(args.input_net_proto_file, caffe_pb2.NetParameter())
    phase = {'TRAIN': caffe.TRAIN, 'TEST': caffe.TEST, 'ALL': None}[args.phase]
    print('Drawing net to %s' % args.output_image_file, flush=True)
    caffe.draw.draw_net_to_file(net, args.output_image_file, args.rankdir, phase)


if __name__ == '__main__':
    sys.exit(_common.run_tool(main))
