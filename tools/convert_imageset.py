#!/usr/bin/env python3
"""Converts a list of images to an LMDB or LevelDB database of Datum records, as Caffe's
convert_imageset does, for a Data layer to read.

  tools/convert_imageset.py [FLAGS] ROOTFOLDER/ LISTFILE DB_NAME

LISTFILE holds "<file> <label>" per line; each file is read from ROOTFOLDER + file (joined as
strings, so ROOTFOLDER usually ends in "/"). Records are keyed "%08d_<file>" by list position, so
the database keeps the list's order. An image that cannot be read is skipped with a message, as
Caffe skips it. The database is built in a temporary folder beside DB_NAME and renamed into place
when complete; an existing DB_NAME is refused.

Flags (Caffe's): --gray, --shuffle, --backend=lmdb|leveldb, --resize_width, --resize_height,
--check_size, --encoded, --encode_type=png|jpg|...
"""
import os
import sys

import _common

COMMIT_EVERY = 1000


def parse_args(argv=None):
    parser = _common.ArgumentParser(
        description='Convert a set of images to the leveldb/lmdb format used as input for Caffe.',
        usage='%(prog)s [FLAGS] ROOTFOLDER/ LISTFILE DB_NAME')
    parser.add_argument('root_folder', metavar='ROOTFOLDER/', help='the folder the images are in')
    parser.add_argument('list_file', metavar='LISTFILE', help='"<file> <label>" per line')
    parser.add_argument('db_name', metavar='DB_NAME', help='the database folder to create')
    flag = _common.add_caffe_flag
    flag(parser, '--gray', False, 'When this option is on, treat images as grayscale ones')
    flag(parser, '--shuffle', False, 'Randomly shuffle the order of images and their labels')
    flag(parser, '--backend', 'lmdb', 'The backend {lmdb, leveldb} for storing the result')
    flag(parser, '--resize_width', 0, 'Width images are resized to')
    flag(parser, '--resize_height', 0, 'Height images are resized to')
    flag(parser, '--check_size', False,
         'When this option is on, check that all the datum have the same size')
    flag(parser, '--encoded', False, 'When this option is on, the encoded image will be save in '
                                   'datum')
    flag(parser, '--encode_type', '', "Optional: What type should we encode the image as "
                                     "('png','jpg',...).")
    return _common.parse_caffe_flags(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    import caffe
    from caffe.db import Writer, backend_name
    from caffe.rng import CaffeRNG, caffe_rng_rand

    backend = backend_name(args.backend)
    lines = caffe.io.read_image_list(args.list_file)
    if args.shuffle:
        print('Shuffling data', flush=True)
        CaffeRNG(caffe_rng_rand()).shuffle(lines)
    print('A total of %d images.' % len(lines), flush=True)
    if args.encode_type and not args.encoded:
        print('encode_type specified, assuming encoded=true.', flush=True)
    encoded = args.encoded or bool(args.encode_type)
    if encoded and args.check_size:
        _common.fail('--check_size compares decoded pixel counts; it cannot be used with '
                     '--encoded or --encode_type')
    height, width = max(0, args.resize_height), max(0, args.resize_width)

    count = skipped = 0
    data_size = None
    with Writer(args.db_name, backend) as db:
        for line_id, (name, label, number) in enumerate(lines):
            path = args.root_folder + name
            encoding = args.encode_type
            if args.encoded and not encoding:
                # Guess the encoding from the file name, as Caffe does.
                encoding = os.path.splitext(name)[1][1:].lower()
                if not encoding:
                    print('Failed to guess the encoding of %r' % name, file=sys.stderr)
            try:
                datum = caffe.io.read_image_to_datum(path, label, height, width, not args.gray,
                                                     encoding)
            except caffe.CaffeError as e:
                print('skipping line %d of %s: %s' % (number, args.list_file, e),
                      file=sys.stderr, flush=True)
                skipped += 1
                continue
            if args.check_size:
                size = datum.channels * datum.height * datum.width
                if data_size is None:
                    data_size = size
                elif len(datum.data) != data_size:
                    _common.fail('%s (line %d of %s) has %d values, the first image %d '
                                 '(--check_size); nothing was written'
                                 % (path, number, args.list_file, len(datum.data), data_size))
            db.put(b'%08d_%s' % (line_id, name.encode()), datum.SerializeToString())
            count += 1
            if count % COMMIT_EVERY == 0:
                db.commit()
                print('Processed %d files.' % count, flush=True)
    if count % COMMIT_EVERY:
        print('Processed %d files.' % count, flush=True)
    if skipped:
        print('Skipped %d of %d images that could not be read.' % (skipped, len(lines)),
              flush=True)
    print('Wrote %s (%s)' % (args.db_name, backend), flush=True)


if __name__ == '__main__':
    sys.exit(_common.run_tool(main))
