"""The fuzzing framework: a registry of harnesses, each a reader of one kind of Caffe file driven
by bytes, with the rule every harness enforces. tests/fuzz/fuzz.py runs one under atheris
(coverage-guided); tests/fuzz/test_fuzz.py replays the committed corpora and runs each harness
for a few seconds in CI.

The rule: whatever the bytes, a reader either succeeds or raises the project's own clear error,
a caffe.CaffeError whose message names the file it read (or the error types a harness lists,
with its reason). Anything else (IndexError, KeyError, a numpy error, a bare ValueError, a
crash, a hang) is a bug in the reader.

Adding a harness: a module tests/fuzz/targets_<topic>.py (imported by load_targets) defines

    @harness('datum_lmdb', suffix='.mdb', mutator=BinaryProto(caffe_pb2.Datum))
    def datum_lmdb(path, scratch):
        ...read `path` the way the runtime does...

`path` is a file holding the input (named with `suffix`) in `scratch`, a folder private to the
process that is also the working directory, so relative names in the input resolve there; put
fixed files the reader needs there from a `setup(scratch)` function (given to @harness; its
result comes back as harness.context). Seeds go in tests/fuzz/corpus/<name>/ (small files)."""
import atexit
import glob
import importlib
import os
import resource
import shutil
import sys
import tempfile

FUZZ_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(FUZZ_DIR))
CORPUS_DIR = os.path.join(FUZZ_DIR, 'corpus')
for _path in (os.path.join(ROOT, 'lib'), FUZZ_DIR):
    if _path not in sys.path:
        sys.path.insert(0, _path)

HARNESSES = {}

# Address space a fuzzed reader may use: a file that asks for a net larger than this gets a
# MemoryError (allowed where a harness builds nets), not the machine's memory.
MEMORY_LIMIT = 3 << 30


class SkipInput(Exception):
    """Raised by a harness for inputs it declines to run (they would reach outside the scratch
    folder, or run code the fuzzer must not run); not a finding."""


class UnexpectedError(AssertionError):
    """A reader failed in a way the rule does not allow."""


class Harness:
    def __init__(self, name, target, suffix, mutator, allowed, setup, names_file):
        self.name, self.target, self.suffix, self.mutator = name, target, suffix, mutator
        self.allowed, self.setup, self.names_file = tuple(allowed), setup, names_file
        self.context = None
        self.last_error = None   # the allowed error of the last 'error' outcome
        self._scratch = None

    @property
    def corpus(self):
        return os.path.join(CORPUS_DIR, self.name)

    def seeds(self):
        return sorted(glob.glob(os.path.join(self.corpus, '*')))

    def scratch(self):
        """The process's folder for this harness (made, and set up, on first use)."""
        if self._scratch is None:
            base = '/dev/shm' if os.path.isdir('/dev/shm') and os.access('/dev/shm', os.W_OK) \
                else None
            self._scratch = tempfile.mkdtemp(prefix='caffe-fuzz-%s-' % self.name, dir=base)
            atexit.register(shutil.rmtree, self._scratch, True)
            if self.setup is not None:
                cwd = os.getcwd()
                os.chdir(self._scratch)
                try:
                    self.context = self.setup(self._scratch)
                finally:
                    os.chdir(cwd)
        return self._scratch

    def run(self, data):
        """Runs the target on `data`; returns 'ok', 'error' (an allowed error) or 'skipped', and
        raises UnexpectedError for anything the rule does not allow."""
        from caffe.common import CaffeError
        scratch = self.scratch()
        path = os.path.join(scratch, 'input' + self.suffix)
        with open(path, 'wb') as f:
            f.write(data)
        cwd = os.getcwd()
        os.chdir(scratch)
        try:
            self.target(path, self)
        except SkipInput:
            return 'skipped'
        except CaffeError as e:
            if self.names_file and path not in str(e) and os.path.basename(path) not in str(e):
                raise UnexpectedError('%s: the error does not name the file %s: %s'
                                      % (self.name, path, e)) from e
            self.last_error = e
            return 'error'
        except self.allowed as e:
            self.last_error = e
            return 'error'
        except Exception as e:
            raise UnexpectedError('%s: %s: %s' % (self.name, type(e).__name__, e)) from e
        finally:
            os.chdir(cwd)
        return 'ok'


def harness(name, suffix, mutator=None, allowed=(), setup=None, names_file=True):
    """Registers a harness. allowed: error types accepted besides CaffeError (say why where you
    list one); names_file: whether a CaffeError must name the input file."""
    def wrap(target):
        if name in HARNESSES:
            raise ValueError('fuzz harness %r registered twice' % name)
        HARNESSES[name] = Harness(name, target, suffix, mutator, allowed, setup, names_file)
        return target
    return wrap


def load_targets():
    """Imports every tests/fuzz/targets_*.py (each registers its harnesses)."""
    for path in sorted(glob.glob(os.path.join(FUZZ_DIR, 'targets_*.py'))):
        importlib.import_module(os.path.splitext(os.path.basename(path))[0])
    return HARNESSES


def limit_resources(memory=MEMORY_LIMIT):
    """Caps the process's address space (a huge allocation fails at once instead of swapping)
    and keeps the numeric libraries to one thread each (fuzzing runs one input at a time)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or hard > memory:
        resource.setrlimit(resource.RLIMIT_AS, (memory, hard))


def single_threaded_environment():
    """The variables that keep OpenMP and BLAS to one thread; set them before numpy loads."""
    for key in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
        os.environ.setdefault(key, '1')


def string_values(message):
    """Every string field value in a protobuf message, recursively (for checks on paths)."""
    from google.protobuf.descriptor import FieldDescriptor
    for field, value in message.ListFields():
        values = value if field.is_repeated else [value]
        for v in values:
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                yield from string_values(v)
            elif field.type == FieldDescriptor.TYPE_STRING:
                yield field.name, v


def check_paths_stay_inside(message):
    """SkipInput when a string field of the message could name a file outside the scratch
    folder (an absolute path, '..', a device): the fuzzer must not read /dev/zero or write
    snapshots over the machine."""
    for name, value in string_values(message):
        if not isinstance(value, str) or '\0' in value:
            continue  # not UTF-8 text, or no file has such a name: the reader's own error
        if value.startswith(('/', '~')) or '..' in value or value.startswith('\\'):
            raise SkipInput('%s names a path outside the scratch folder' % name)


def check_python_layers(message, allowed_modules=('fuzz_layers', '')):
    """SkipInput when a python_param names a module other than the harness's own layers:
    importing whatever module a fuzzed prototxt names would run arbitrary code."""
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        values = value if field.is_repeated else [value]
        for v in values:
            if field.name == 'python_param' and v.module not in allowed_modules:
                raise SkipInput('Python layer module %r' % v.module)
            check_python_layers(v, allowed_modules)
