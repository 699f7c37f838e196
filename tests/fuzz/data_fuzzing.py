"""What the data-layer fuzz harnesses share (tests/fuzz/fuzz_datum_db.py, fuzz_image_list.py,
fuzz_hdf5_list.py, fuzz_window_file.py, fuzz_mean_file.py). Each harness is a standalone atheris
script:

    python3 tests/fuzz/fuzz_window_file.py -max_total_time=600 -timeout=20 WORK_CORPUS SEEDS

(libFuzzer's flags and corpus folders; the seeds are tests/fuzz/corpus/<harness>/). Each defines
TestOneInput(data), which builds the files a data layer reads from the bytes (a database of
records, a list file, a window file, a mean file) in a scratch folder with fixed images and HDF5
files beside them, runs the layer's setup and a few forwards, and holds it to the rule: whatever
the bytes, the layer works or raises the project's own clear error, a caffe.CaffeError that names
the file it read (its path is under the scratch folder). Anything else (IndexError, a numpy error,
a crash, a hang past libFuzzer's -timeout) is a finding. tests/fuzz/test_data_fuzz.py replays the
seeds and runs every harness briefly in CI.
"""
import atexit
import os
import resource
import shutil
import sys
import tempfile

FUZZ_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(FUZZ_DIR))
CORPUS_DIR = os.path.join(FUZZ_DIR, 'corpus')
if os.path.join(ROOT, 'lib') not in sys.path:
    sys.path.insert(0, os.path.join(ROOT, 'lib'))

# A fuzzed input may not make the process use more than this (a MemoryError is a finding: the
# inputs are small and so must be what the readers make of them).
MEMORY_LIMIT = 3 << 30
# OpenCV decodes images up to 2^30 pixels by default; a fuzzed PNG header asking for that much
# would spend the memory limit in OpenCV, not in our code. The harnesses lower the limit.
OPENCV_MAX_PIXELS = 1 << 22


def prepare():
    """One thread per library, OpenCV's decoding limit and the memory cap; call before numpy
    and cv2 are imported."""
    for key in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
        os.environ.setdefault(key, '1')
    os.environ.setdefault('OPENCV_IO_MAX_IMAGE_PIXELS', str(OPENCV_MAX_PIXELS))
    os.environ.setdefault('OPENCV_LOG_LEVEL', 'OFF')   # its decoders' complaints about inputs
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or hard > MEMORY_LIMIT:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, hard))


def scratch(name):
    """A folder private to this process (in memory where /dev/shm is writable), removed at
    exit."""
    base = '/dev/shm' if os.access('/dev/shm', os.W_OK) else None
    folder = tempfile.mkdtemp(prefix='caffe-fuzz-%s-' % name, dir=base)
    atexit.register(shutil.rmtree, folder, True)
    return folder


_FOLDERS = {}


def fixture_folder(name, *writers):
    """The harness's scratch folder, made on first use, with what each writer(folder) puts in
    it (write_images, a harness's own files)."""
    if name not in _FOLDERS:
        _FOLDERS[name] = scratch(name)
        for write in writers:
            write(_FOLDERS[name])
    return _FOLDERS[name]


def fresh(path):
    """Removes what a previous input left at path."""
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
    return path


def write_images(folder):
    """Small fixture images the list and window files can name: colour and gray PNGs of two
    sizes, a JPEG, a file that is not an image, and an empty one."""
    import cv2
    import numpy as np
    rs = np.random.RandomState(0)
    cv2.imwrite(os.path.join(folder, 'a.png'), rs.randint(0, 256, (12, 10, 3)).astype(np.uint8))
    cv2.imwrite(os.path.join(folder, 'b.jpg'), rs.randint(0, 256, (16, 14, 3)).astype(np.uint8))
    cv2.imwrite(os.path.join(folder, 'g.png'), rs.randint(0, 256, (12, 10)).astype(np.uint8))
    with open(os.path.join(folder, 'junk.png'), 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n not really')
    open(os.path.join(folder, 'empty.png'), 'wb').close()
    return ['a.png', 'b.jpg', 'g.png', 'junk.png', 'empty.png', 'missing.png']


class Header:
    """The parameters a harness fuzzes besides the file, from the input's first bytes: each
    pick() takes the next byte and chooses among the given values (a missing byte, or one past
    the header, is 0). The
    rest of the input is the file's content, so a seed is a few parameter bytes and a valid
    file."""

    def __init__(self, data, size):
        self.bytes, self.rest = data[:size].ljust(size, b'\0'), data[size:]
        self.used = 0

    def pick(self, *choices):
        byte = self.bytes[self.used] if self.used < len(self.bytes) else 0
        self.used += 1
        return choices[byte % len(choices)]


def records(data, limit):
    """Up to `limit` records from data: each a 2-byte big-endian length, then that many bytes
    (cut short at the end of the data)."""
    out = []
    while data and len(out) < limit:
        size = int.from_bytes(data[:2], 'big')
        out.append(data[2:2 + size])
        data = data[2 + size:]
    return out


def pack_records(values):
    """The inverse of records(), for making seeds."""
    return b''.join(len(v).to_bytes(2, 'big') + v for v in values)


class Finding(AssertionError):
    """An outcome the rule does not allow."""


def check(run, folder):
    """Runs run(); a CaffeError must name a file under folder (the input's files all live
    there). Returns 'ok' or 'error'."""
    from caffe.common import CaffeError
    try:
        run()
    except CaffeError as e:
        if folder not in str(e):
            raise Finding('a CaffeError that names no input file: %s' % e) from e
        return 'error'
    return 'ok'


def layer_run(text, phase=0, forwards=3, cwd=None):
    """A function that builds the layer of LayerParameter text (setup) and runs `forwards`
    forward passes, in folder cwd when given, then stops its prefetch thread."""
    def run():
        from caffe.testing import build_layer
        here = os.getcwd()
        if cwd is not None:
            os.chdir(cwd)
        try:
            layer, bottom, top = build_layer(text, [], phase=phase)
            try:
                for _ in range(forwards):
                    layer.forward(bottom, top)
            finally:
                layer._prefetcher.stop()
        finally:
            os.chdir(here)
    return run


def main(test_one_input):
    """A harness script's entry: the runtime imported under atheris's coverage instrumentation,
    then test_one_input fuzzed with the command line's libFuzzer flags."""
    prepare()
    import atheris
    with atheris.instrument_imports(include=['caffe']):
        import caffe.data_transformer  # noqa: F401
        import caffe.layers  # noqa: F401
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


def seeds(name):
    folder = os.path.join(CORPUS_DIR, name)
    return sorted(os.path.join(folder, f) for f in os.listdir(folder)) \
        if os.path.isdir(folder) else []
