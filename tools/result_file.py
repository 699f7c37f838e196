#!/usr/bin/env python3
"""Reads and writes the JSON result files the tools and experiment scripts hand to each other,
for shell scripts that cannot read JSON themselves.

  tools/result_file.py get FILE KEY[.SUBKEY...]     prints the value (text as is, else JSON;
                                                    nothing for null)
  tools/result_file.py write FILE KEY=VALUE ...     writes {KEY: VALUE, ...} atomically;
                                                    KEY=@PATH embeds the JSON file at PATH,
                                                    KEY=@PATH? embeds it when it exists (else null)
"""
import argparse
import json
import os
import sys

import _common


def parse_args(argv=None):
    parser = _common.ArgumentParser(description='Read or write a JSON result file')
    sub = parser.add_subparsers(dest='command', required=True)
    get = sub.add_parser('get', help='print one value')
    get.add_argument('file')
    get.add_argument('key', help='a key, or dotted keys into nested objects')
    write = sub.add_parser('write', help='write KEY=VALUE pairs as a JSON object')
    write.add_argument('file')
    write.add_argument('pairs', nargs='*', metavar='KEY=VALUE')
    return parser.parse_args(argv)


def lookup(result, dotted, path):
    value = result
    for key in dotted.split('.'):
        if not isinstance(value, dict) or key not in value:
            raise _common.ToolError('%s has no %s' % (path, dotted))
        value = value[key]
    return value


def parse_pairs(pairs):
    fields = {}
    for pair in pairs:
        key, sep, value = pair.partition('=')
        if not sep or not key:
            raise _common.ToolError('expected KEY=VALUE, got %r' % pair)
        if value.startswith('@'):
            path, optional = value[1:], value.endswith('?')
            path = path[:-1] if optional else path
            value = _common.read_result(path) if not optional or os.path.isfile(path) else None
        fields[key] = value
    return fields


def main(argv=None):
    args = parse_args(argv)
    if args.command == 'get':
        value = lookup(_common.read_result(args.file), args.key, args.file)
        if value is not None:
            print(value if isinstance(value, str) else json.dumps(value))
        return 0
    from caffe.io import atomic_write
    atomic_write(args.file, json.dumps(parse_pairs(args.pairs), indent=1, sort_keys=True) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(_common.run_tool(main))
