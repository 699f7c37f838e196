#!/usr/bin/env bash
# Prepares, on this CPU machine, what tests/gpu/run_on_gpu_machine.sh needs on a GPU machine that
# has no network (see /work/shared/GPU_SETUP.md): the Python 3.12 wheels it lacks and PyCUDA's
# source in .whl/ (ignored by git), and the generated lib/caffe/proto/caffe_pb2.py; then checks
# them (one version of each package, the size the device tool carries) and prints the call.
set -eu
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .gitignore || { echo "/.whl/ must be in .gitignore" >&2; exit 1; }
# Pure-Python or cp312 wheels: PyCUDA's needs, and what the tests import that the machine's
# Python lacks (its list: GPU_SETUP.md).
WHEELS="pytools==2026.1.1 platformdirs==4.14.8 siphash24==1.9 mako==1.4.3 easydict==1.14
pycocotools==2.0.11 pydot==4.0.1 pyparsing==3.3.3"
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $WHEELS
# PyCUDA ships only as source; it is built there (about 2 minutes).
python3 -m pip download -q --no-deps --no-binary=:all: --no-build-isolation -d .whl pycuda==2026.1
make proto

python3 - <<'EOF'
import collections, os, re, sys
files = os.listdir('.whl')
names = collections.Counter(re.split(r'-\d', f, 1)[0].lower().replace('_', '-') for f in files)
twice = [n for n, c in names.items() if c > 1]
if twice:
    sys.exit('.whl holds several versions of %s: keep one' % ', '.join(twice))
wanted = {'pytools', 'platformdirs', 'siphash24', 'mako', 'easydict', 'pycocotools', 'pydot',
          'pyparsing', 'pycuda'}
missing = wanted - set(names)
if missing:
    sys.exit('.whl lacks %s' % ', '.join(sorted(missing)))
size = sum(os.path.getsize(os.path.join('.whl', f)) for f in files)
size += os.path.getsize('lib/caffe/proto/caffe_pb2.py')
if size > 32 << 20:
    sys.exit('.whl and caffe_pb2.py are %.1f MiB; the device tool carries 64 MiB with the tree'
             % (size / 2 ** 20))
print('ready: %d files in .whl, %.1f MiB with caffe_pb2.py' % (len(files), size / 2 ** 20))
EOF
cat <<'EOF'
Device call: run(command="tests/gpu/run_on_gpu_machine.sh", timeout_s=540,
                 carry=[".whl", "lib/caffe/proto/caffe_pb2.py"]); logs come back from $OUT.
EOF
