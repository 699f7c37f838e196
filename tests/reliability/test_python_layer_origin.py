"""Loading a prototxt runs no code but Python layers from lib/ and the user's PYTHONPATH: a module
of the same name in the working directory (or the standard library) is refused, not imported."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NET = '''name: "py"
input: "data" input_shape { dim: 1 dim: 2 }
layer { name: "py" type: "Python" bottom: "data" top: "out"
        python_param { module: "%s" layer: "Layer" } }
'''
# Importing this module leaves a marker file: the proof that it ran.
EVIL = '''open(%r, "w").write("ran")
import caffe
class Layer(caffe.Layer):
    def setup(self, bottom, top): pass
    def reshape(self, bottom, top): top[0].reshape(*bottom[0].shape)
    def forward(self, bottom, top): top[0].data[...] = bottom[0].data
'''
LOAD = 'import caffe; caffe.Net("net.prototxt", caffe.TEST); print("loaded")'


def _load(cwd, pythonpath, script=None):
    # `python -c` puts the working directory first on sys.path, as an interactive session does;
    # `python script.py` puts the script's folder there instead.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(pythonpath))
    command = [sys.executable, script] if script else [sys.executable, '-c', LOAD]
    return subprocess.run(command, cwd=str(cwd), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)


def _setup(tmp_path, module):
    marker = tmp_path / 'marker'
    (tmp_path / ('%s.py' % module)).write_text(EVIL % str(marker))
    (tmp_path / 'net.prototxt').write_text(NET % module)
    return marker


def test_a_module_in_the_working_directory_is_not_imported(tmp_path):
    marker = _setup(tmp_path, 'cwd_layer_module')
    proc = _load(tmp_path, [os.path.join(ROOT, 'lib')])
    assert proc.returncode != 0
    assert 'cwd_layer_module' in proc.stderr and 'through the working directory' in proc.stderr
    # The error says how to allow it: the folder to put on PYTHONPATH.
    assert 'PYTHONPATH=%s:$PYTHONPATH' % os.path.realpath(str(tmp_path)) in proc.stderr
    assert not marker.exists()


def test_the_same_module_on_pythonpath_is_imported(tmp_path):
    marker = _setup(tmp_path, 'cwd_layer_module')
    proc = _load(tmp_path, [os.path.join(ROOT, 'lib'), str(tmp_path)])
    assert proc.returncode == 0, proc.stderr
    assert 'loaded' in proc.stdout and marker.exists()


def test_a_standard_library_module_is_not_imported(tmp_path):
    (tmp_path / 'net.prototxt').write_text(NET % 'antigravity')  # would open a web browser
    proc = _load(tmp_path, [os.path.join(ROOT, 'lib')])
    assert proc.returncode != 0 and 'through the standard library' in proc.stderr


def test_a_submodule_of_an_imported_package_in_the_working_directory_is_not_imported(tmp_path):
    # `google` is imported (protobuf) and is a namespace package, whose path also takes in
    # ./google/ of the working directory: google.evil would run from there.
    (tmp_path / 'google').mkdir()
    marker = tmp_path / 'marker'
    (tmp_path / 'google' / 'evil.py').write_text(EVIL % str(marker))
    (tmp_path / 'net.prototxt').write_text(NET % 'google.evil')
    proc = _load(tmp_path, [os.path.join(ROOT, 'lib')])
    assert proc.returncode != 0
    assert 'through the working directory' in proc.stderr and 'google.evil' in proc.stderr
    assert not marker.exists()


def test_a_submodule_of_a_package_on_pythonpath_is_imported(tmp_path):
    package = tmp_path / 'trusted' / 'mylayers'
    package.mkdir(parents=True)
    (package / '__init__.py').write_text('')
    marker = tmp_path / 'marker'
    (package / 'layer.py').write_text(EVIL % str(marker))
    (tmp_path / 'net.prototxt').write_text(NET % 'mylayers.layer')
    proc = _load(tmp_path, [os.path.join(ROOT, 'lib'), str(tmp_path / 'trusted')])
    assert proc.returncode == 0, proc.stderr
    assert marker.exists()


def test_a_module_beside_the_running_script_is_imported(tmp_path):
    # pycaffe users keep their layer module beside their script and run it from that folder:
    # the module is found through the script's folder (sys.path[0]), not only the working
    # directory's place on sys.path.
    marker = _setup(tmp_path, 'cwd_layer_module')
    (tmp_path / 'run.py').write_text(LOAD.replace('; ', '\n'))
    proc = _load(tmp_path, [os.path.join(ROOT, 'lib')], script='run.py')
    assert proc.returncode == 0, proc.stderr
    assert marker.exists()


def test_a_script_elsewhere_does_not_look_in_the_working_directory(tmp_path):
    # As in Python: the working directory is not on sys.path when a script runs from elsewhere.
    marker = _setup(tmp_path, 'cwd_layer_module')
    scripts = tmp_path / 'scripts'
    scripts.mkdir()
    (scripts / 'run.py').write_text(LOAD.replace('; ', '\n'))
    proc = _load(tmp_path, [os.path.join(ROOT, 'lib')], script=str(scripts / 'run.py'))
    assert proc.returncode != 0 and "No module named 'cwd_layer_module'" in proc.stderr
    assert not marker.exists()
