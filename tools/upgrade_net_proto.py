#!/usr/bin/env python3
"""Writes an old Caffe file in the current format, as Caffe's upgrade_net_proto_text,
upgrade_net_proto_binary and upgrade_solver_proto_text do: V0 and V1 nets, old data-layer
transformation fields, net inputs and BatchNorm param specs (caffe/upgrade.py), or a solver's
`solver_type` enum. The file kind follows the input: a binary net (.caffemodel, .binaryproto
or --binary) is written binary; a text file holding a solver (--solver) is upgraded as one.

  tools/upgrade_net_proto.py old_deploy.prototxt deploy.prototxt
  tools/upgrade_net_proto.py old.caffemodel new.caffemodel
  tools/upgrade_net_proto.py --solver old_solver.prototxt solver.prototxt
"""
import argparse
import sys

import _common

BINARY_SUFFIXES = ('.caffemodel', '.binaryproto')


def parse_args(argv=None):
    parser = _common.ArgumentParser(
        description='Upgrade an old Caffe net (text or binary) or solver file to the current '
                    'format', formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('input', help='the old file')
    parser.add_argument('output', help='where to write the upgraded file (may be the input)')
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument('--binary', action='store_true',
                      help='the input is a binary NetParameter whatever its name')
    kind.add_argument('--solver', action='store_true', help='the input is a solver prototxt')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from google.protobuf import text_format

    import caffe
    from caffe.proto import caffe_pb2
    from caffe.solver import upgrade_solver_param
    from caffe.upgrade import net_needs_upgrade, upgrade_net, upgrade_weights

    if args.solver:
        param = caffe.io.read_prototxt(args.input, caffe_pb2.SolverParameter())
        changed = param.HasField('solver_type')
        upgrade_solver_param(param, args.input)
        binary = False
    else:
        binary = args.binary or args.input.endswith(BINARY_SUFFIXES)
        read = caffe.io.read_binary if binary else caffe.io.read_prototxt
        param = read(args.input, caffe_pb2.NetParameter())
        changed = net_needs_upgrade(param)
        # a binary net is a weights file: its bare `input` names are dropped, not an error
        param = (upgrade_weights if binary else upgrade_net)(param)
    if binary:
        caffe.io.write_binary(args.output, param)
    else:
        caffe.io.atomic_write(args.output, text_format.MessageToString(param))
    print('%s %s to %s' % ('Upgraded' if changed else 'Already current; copied', args.input,
                           args.output), flush=True)


if __name__ == '__main__':
    sys.exit(_common.run_tool(main))
