"""Parameter: a learnable blob as a top (parameter_param.shape). The top shares the parameter's
data and diff, as Caffe's ParameterLayer does in its forward: a gradient written into the top's
diff is the parameter's gradient (written, not accumulated, as in Caffe). The blob starts at 0
(Caffe fills it with nothing)."""
from ..layer import NoBackwardLayer, register
from ._checks import layer_error


@register('Parameter')
class ParameterLayer(NoBackwardLayer):
    exact_num_bottom_blobs = 0
    exact_num_top_blobs = 1

    def setup(self, bottom, top):
        shape = tuple(int(d) for d in self.layer_param.parameter_param.shape.dim)
        if any(d < 0 for d in shape):
            raise layer_error(self, 'parameter_param.shape %s has a negative dimension' % (shape,))
        if len(self.blobs):
            if len(self.blobs) != 1:
                raise layer_error(self, 'has %d parameter blobs; expected 1' % len(self.blobs))
        else:
            self.blobs.add_blob(*shape)
        top[0].reshape(self.blobs[0].shape)

    def reshape(self, bottom, top):
        pass

    def _share(self, top):
        # Caffe shares in Forward: the Net may replace blobs[0] (a shared ParamSpec name, weights
        # loaded from a file) after setup.
        top[0].reshape(self.blobs[0].shape)
        top[0].share_data(self.blobs[0])
        top[0].share_diff(self.blobs[0])

    def forward_cpu(self, bottom, top):
        self._share(top)

    def forward_gpu(self, bottom, top):
        self._share(top)
