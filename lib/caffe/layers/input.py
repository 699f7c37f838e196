"""Input: tops the caller fills (net.blobs[...].data); input_param.shape gives their shapes."""
from ..layer import PasslessLayer, register
from ._checks import layer_error


@register('Input')
class InputLayer(PasslessLayer):
    exact_num_bottom_blobs = 0
    min_top_blobs = 1

    def setup(self, bottom, top):
        shapes = self.layer_param.input_param.shape
        if len(shapes) not in (0, 1, len(top)):
            raise layer_error(self, 'give input_param.shape once, once per top (%d) or not at '
                              'all, got %d' % (len(top), len(shapes)))
        for i, t in enumerate(top):
            if shapes:
                t.reshape(tuple(int(d) for d in shapes[i if len(shapes) > 1 else 0].dim))

    def reshape(self, bottom, top):
        pass

