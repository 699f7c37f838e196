"""The only Python layers a fuzzed prototxt may load (fuzz_harness.check_python_layers): they
let the fuzzer reach the Python-layer paths of the net reader without importing arbitrary
modules."""
import caffe


class Identity(caffe.Layer):
    """Each top a copy of the same-numbered bottom; param_str is ignored."""

    def reshape(self, bottom, top):
        for b, t in zip(bottom, top):
            t.reshape(*b.shape)

    def forward(self, bottom, top):
        for b, t in zip(bottom, top):
            t.data[...] = b.data
