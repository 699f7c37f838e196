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
from google.protobuf import text_format

# The release's compressed VGG16: fc6 to rank 1024, fc7 to rank 256.
DEFAULT_RANKS = 'fc6:1024,fc7:256'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Compress fc layers by truncated SVD')
    parser.add_argument('--def', dest='prototxt', required=True, help='test prototxt')
    parser.add_argument('--def-svd', dest='prototxt_svd', default=None,
                        help='compressed prototxt (default: generated from --def)')
    parser.add_argument('--net', dest='caffemodel', required=True, help='model to compress')
    parser.add_argument('--ranks', dest='ranks', default=DEFAULT_RANKS,
                        help='layer:rank pairs (default: %(default)s)')
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


def compressed_net_param(param, ranks):
    """A copy of the NetParameter with each named InnerProduct layer split into _L and _U."""
    from caffe.proto import caffe_pb2
    wanted = dict(ranks)
    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    del out.layer[:]
    for layer in param.layer:
        if layer.name not in wanted:
            out.layer.add().CopyFrom(layer)
            continue
        if layer.type != 'InnerProduct':
            raise ValueError('layer %s is a %s layer; only InnerProduct layers can be '
                             'compressed' % (layer.name, layer.type))
        low = out.layer.add()
        low.CopyFrom(layer)
        low.name = layer.name + '_L'
        del low.top[:]
        low.top.append(layer.name + '_L')
        del low.param[:]
        low.inner_product_param.num_output = wanted[layer.name]
        low.inner_product_param.bias_term = False
        up = out.layer.add()
        up.CopyFrom(layer)
        up.name = layer.name + '_U'
        del up.bottom[:]
        up.bottom.append(layer.name + '_L')
        del up.param[:]
    missing = sorted(set(wanted) - {l.name for l in param.layer})
    if missing:
        raise ValueError('the net has no layer(s) %s to compress' % ', '.join(missing))
    return out


def main(argv=None):
    args = parse_args(argv)
    try:
        ranks = parse_ranks(args.ranks)
    except ValueError as e:
        _common.fail(str(e))
    _common.require_file(args.prototxt, 'net definition')
    _common.require_weights(args.caffemodel)

    import caffe
    from caffe import io
    from caffe.proto import caffe_pb2
    caffe.set_mode_cpu()
    net = caffe.Net(args.prototxt, args.caffemodel, caffe.TEST)

    out = os.path.splitext(os.path.basename(args.caffemodel))[0] + '_svd'
    for name, rank in ranks:
        out += '_%s_%d' % (name, rank)
    out_dir = os.path.dirname(os.path.abspath(args.caffemodel))
    prototxt_svd = args.prototxt_svd
    if prototxt_svd is None:
        param = io.upgrade_net(io.read_prototxt(args.prototxt, caffe_pb2.NetParameter()))
        try:
            param = compressed_net_param(param, ranks)
        except ValueError as e:
            _common.fail('%s: %s' % (args.prototxt, e))
        prototxt_svd = os.path.join(out_dir, out + '.prototxt')
        io.atomic_write(prototxt_svd, text_format.MessageToString(param).encode())
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


if __name__ == '__main__':
    sys.exit(_common.run_tool(main))
