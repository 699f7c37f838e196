#!/usr/bin/env python3
"""Computes the mean image of an LMDB or LevelDB database of Datum records and writes it as a
BlobProto (.binaryproto) for transform_param { mean_file }, as Caffe's compute_image_mean does.

  tools/compute_image_mean.py [FLAGS] INPUT_DB [OUTPUT_FILE]

As Caffe: encoded records are decoded as stored; every record must hold as many values as the
first; the sum is taken in float32, record after record, then divided by the count; the mean is
written as a 1 x C x H x W blob (legacy num/channels/height/width) and each channel's mean value
is printed. The output file is written atomically.

Flags (Caffe's): --backend=lmdb|leveldb
"""
import sys

import _common

PROGRESS_EVERY = 10000


def parse_args(argv=None):
    parser = _common.ArgumentParser(
        description='Compute the mean_image of a set of images given by a leveldb/lmdb',
        usage='%(prog)s [FLAGS] INPUT_DB [OUTPUT_FILE]')
    parser.add_argument('input_db', metavar='INPUT_DB', help='the database folder')
    parser.add_argument('output_file', metavar='OUTPUT_FILE', nargs='?',
                        help='where to write the mean (.binaryproto)')
    _common.add_caffe_flag(parser, '--backend', 'lmdb',
                           'The backend {leveldb, lmdb} containing the images')
    return _common.parse_caffe_flags(parser, argv)


def image_mean(source, backend):
    """(mean as a float32 (C, H, W) array, number of records) of the database at source."""
    import numpy as np

    from google.protobuf.message import DecodeError

    import caffe
    from caffe.db import open_db
    from caffe.proto import caffe_pb2

    db = open_db(source, backend)
    cursor = db.cursor()
    try:
        if not cursor.valid:
            raise caffe.CaffeError('database %s is empty' % source)
        total = None
        count = 0
        while cursor.valid:
            where = 'record %d (key %r) of %s' % (
                count, cursor.key().decode('utf-8', 'replace')[:100], source)
            try:
                datum = caffe_pb2.Datum.FromString(cursor.value())
                image = caffe.io.decode_datum(datum)
            except (DecodeError, ValueError) as e:
                raise caffe.CaffeError('%s: %s' % (where, e)) from None
            if total is None:
                total = np.zeros(image.shape, dtype=np.float32)
            elif image.size != total.size:
                raise caffe.CaffeError('%s holds %d values, the first record %d (every record '
                                       'must hold as many)' % (where, image.size, total.size))
            # Caffe adds each value to its float sum in turn: float32 additions, in order.
            total += image.reshape(total.shape)
            count += 1
            if count % PROGRESS_EVERY == 0:
                print('Processed %d files.' % count, flush=True)
            cursor.next()
    finally:
        cursor.close()
        db.close()
    if count % PROGRESS_EVERY:
        print('Processed %d files.' % count, flush=True)
    return total / np.float32(count), count


def main(argv=None):
    args = parse_args(argv)
    import numpy as np

    import caffe
    from caffe.proto import caffe_pb2

    mean, _ = image_mean(args.input_db, args.backend)
    channels, height, width = mean.shape
    if args.output_file:
        blob = caffe_pb2.BlobProto(num=1, channels=channels, height=height, width=width)
        blob.data.extend(mean.ravel().tolist())
        print('Write to %s' % args.output_file, flush=True)
        caffe.io.write_binary(args.output_file, blob)
    print('Number of channels: %d' % channels)
    for c in range(channels):
        # Caffe sums a channel's values into a float, in order, then divides by their count.
        channel_sum = np.cumsum(mean[c].ravel(), dtype=np.float32)[-1]
        print('mean_value channel [%d]: %s' % (c, channel_sum / np.float32(height * width)),
              flush=True)


if __name__ == '__main__':
    sys.exit(_common.run_tool(main))
