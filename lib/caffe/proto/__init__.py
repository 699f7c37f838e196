"""caffe.proto compiled by `make` (grpc_tools.protoc) into caffe_pb2."""
try:
    from . import caffe_pb2  # noqa: F401
except ImportError as e:  # pragma: no cover - only before the first `make`
    raise ImportError('lib/caffe/proto/caffe_pb2.py is missing: run `make` in the project root '
                      'to generate it from caffe.proto') from e
