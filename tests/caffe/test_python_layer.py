import textwrap

import numpy as np
import pytest

from caffe.common import CaffeError
from caffe.layer import TEST
from caffe.testing import build_layer, check_gradient

MODULE = '''
import numpy as np
import caffe


class Scale(caffe.Layer):
    def setup(self, bottom, top):
        self.factor = float(self.param_str)

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.factor * bottom[0].data + self.phase

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = self.factor * top[0].diff


class NotALayer:
    pass
'''

PY = '''name: "scale" type: "Python" bottom: "x" top: "y"
python_param { module: "%s" layer: "%s" param_str: "2.5" }'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / 'user_layers_for_test.py').write_text(textwrap.dedent(MODULE))
    (tmp_path / 'broken_layers_for_test.py').write_text('import no_such_module_anywhere\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    return 'user_layers_for_test'


def test_python_layer_runs_with_param_str_and_phase(user_module):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    layer, bottom, top = build_layer(PY % (user_module, 'Scale'), [x], phase=TEST)
    assert layer.param_str == '2.5' and layer.phase == TEST
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, 2.5 * x + 1)
    check_gradient(layer, bottom, top)


@pytest.mark.parametrize('module,cls,match', [
    ('broken_layers_for_test', 'Scale', "'scale'.*broken_layers_for_test.*no_such_module"),
    ('user_layers_for_test', 'Missing', "'scale'.*user_layers_for_test.*no attribute 'Missing'"),
    ('user_layers_for_test', 'NotALayer', "'scale'.*not a subclass of caffe.Layer"),
    ('', 'Scale', 'needs both module and layer'),
])
def test_errors_name_the_layer_module_and_reason(user_module, module, cls, match):
    with pytest.raises(CaffeError, match=match):
        build_layer(PY % (module, cls), [np.zeros(2, np.float32)])


def test_python_is_registered_like_any_other_type(user_module):
    # Its creator sits in the registry (no special case in layer_class); the classes registered
    # for the built-in types stay classes of the built-in types.
    import caffe
    from caffe.layer import LAYERS, _CREATORS
    assert 'Python' in _CREATORS and 'Python' not in LAYERS
    assert 'Python' in caffe.layer_type_list()
    layer, _, _ = build_layer(PY % (user_module, 'Scale'), [np.zeros(2, np.float32)])
    assert layer.type == 'Python'
