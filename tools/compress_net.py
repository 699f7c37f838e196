#!/usr/bin/env python3
"""Compresses fully connected layers by truncated SVD (Fast R-CNN, Sec. 3.1): a layer with
weights W (out x in) becomes two, <name>_L with weights diag(s_l) V_l^T (l x in, no bias) and
<name>_U with weights U_l (out x l) and the original bias, where W = U diag(s) V^T and l is the
kept rank. The second layer keeps the original top, so the rest of the net is unchanged.

Writes <model>_svd_fc6_<l6>_fc7_<l7>.caffemodel beside the model and, unless --def-svd names an
existing one, the matching prototxt generated from --def (same name, .prototxt).

  tools/compress_net.py --def models/pascal_voc/VGG16/fast_rcnn/test.prototxt \
      --net output/fast_rcnn/voc_2007_trainval/vgg16_fast_rcnn_iter_40000.caffemodel
"""
import argparse
import os
import sys

import _common

import numpy as np

from fast_rcnn import net_surgery

# The release's compressed VGG16: fc6 to rank 1024, fc7 to rank 256.
DEFAULT_RANKS = 'fc6:1024,fc7:256'


def parse_args(argv=None):
    parser = _common.ArgumentParser(description='Compress fc layers by truncated SVD')
    parser.add_argument('--def', dest='prototxt', required=True, help='test prototxt')
    parser.add_argument('--def-svd', dest='prototxt_svd', default=None,
                        help='compressed prototxt (default: generated from --def)')
    parser.add_argument('--net', dest='caffemodel', required=True, help='model to compress')
    parser.add_argument('--ranks', dest='ranks', default=DEFAULT_RANKS,
                        help='layer:rank pairs (default: %(default)s)')
    _common.add_result_arg(parser, '<compressed model>_result.json')
    return parser.parse_args(argv)


def parse_ranks(text):
    ranks = []
    for item in text.split(','):
        name, _, rank = item.partition(':')
        try:
            ranks.append((name.strip(), int(rank)))
        except ValueError:
            raise ValueError('--ranks expects layer:rank pairs like %s, got %r'
                             % (DEFAULT_RANKS, text)) from None
    return ranks


def compress_weights(W, rank):
    """(U_l, L) with U_l (out x rank) and L = diag(s_l) V_l^T (rank x in), U_l L ~= W."""
    U, s, Vt = np.linalg.svd(np.asarray(W, dtype=np.float64), full_matrices=False)
    return U[:, :rank], s[:rank, np.newaxis] * Vt[:rank, :]


def main(argv=None):
    args = parse_args(argv)
    ranks = parse_ranks(args.ranks)
    _common.require_file(args.prototxt, 'net definition')
    _common.require_weights(args.caffemodel)

    import caffe
    from caffe import io
    caffe.set_mode_cpu()
    net = caffe.Net(args.prototxt, args.caffemodel, caffe.TEST)

    out = os.path.splitext(os.path.basename(args.caffemodel))[0] + '_svd'
    for name, rank in ranks:
        out += '_%s_%d' % (name, rank)
    out_dir = os.path.dirname(os.path.abspath(args.caffemodel))
    prototxt_svd = args.prototxt_svd
    if prototxt_svd is None:
        param = io.upgrade_net(net_surgery.read_net(args.prototxt))
        try:
            param = net_surgery.with_svd_fc(param, ranks)
        except net_surgery.NetSurgeryError as e:
            _common.fail('%s: %s' % (args.prototxt, e))
        prototxt_svd = os.path.join(out_dir, out + '.prototxt')
        net_surgery.write_text(prototxt_svd, param)
        print('Wrote compressed net definition %s' % prototxt_svd, flush=True)
    _common.require_file(prototxt_svd, 'compressed net definition')
    net_svd = caffe.Net(prototxt_svd, args.caffemodel, caffe.TEST)
    print('Uncompressed network %s : %s' % (args.prototxt, args.caffemodel), flush=True)
    print('Compressed network prototxt %s' % prototxt_svd, flush=True)

    for name, rank in ranks:
        if name not in net.params:
            _common.fail('%s has no parameter layer %s' % (args.prototxt, name))
        if name + '_L' not in net_svd.params or name + '_U' not in net_svd.params:
            _common.fail('%s has no %s_L / %s_U layers' % (prototxt_svd, name, name))
        W, b = net.params[name][0].data, net.params[name][1].data
        if net_svd.params[name + '_L'][0].data.shape[0] != rank:
            _common.fail('%s: %s_L has %d outputs, not rank %d' % (
                prototxt_svd, name, net_svd.params[name + '_L'][0].data.shape[0], rank))
        if not 0 < rank <= min(W.shape):
            _common.fail('rank %d for %s: must be between 1 and %d' % (rank, name, min(W.shape)))
        print('  %s: %s -> %s_L %s + %s_U %s' % (
            name, W.shape, name, (rank, W.shape[1]), name, (W.shape[0], rank)), flush=True)
        U, L = compress_weights(W, rank)
        net_svd.params[name + '_L'][0].data[...] = L
        net_svd.params[name + '_U'][0].data[...] = U
        net_svd.params[name + '_U'][1].data[...] = b
        before, after = W.size, U.size + L.size
        print('    weights %d -> %d (%.1f%%), relative error %.4f' % (
            before, after, 100.0 * after / before,
            np.linalg.norm(U @ L - W) / max(np.linalg.norm(W), 1e-12)), flush=True)

    filename = os.path.join(out_dir, out + '.caffemodel')
    net_svd.save(filename)
    print('Wrote svd model to: %s' % filename, flush=True)
    _common.write_result(args.result or os.path.join(out_dir, out + '_result.json'),
                         prototxt=prototxt_svd, model=filename, ranks=dict(ranks),
                         source_prototxt=args.prototxt, source_model=args.caffemodel)


if __name__ == '__main__':
    sys.exit(_common.run_tool(main))
