"""DummyData: tops of a given shape filled by data_filler (constant 0 by default).

As in Caffe, a constant filler fills its tops once at setup; any other filler refills them
on every forward pass."""
from ..fillers import fill
from ..layer import NoBackwardLayer, register
from ..proto import caffe_pb2
from ._checks import layer_error


@register('DummyData')
class DummyDataLayer(NoBackwardLayer):
    exact_num_bottom_blobs = 0
    min_top_blobs = 1

    def setup(self, bottom, top):
        p = self.layer_param.dummy_data_param
        n = len(top)
        if len(p.data_filler) not in (0, 1, n):
            raise layer_error(self, 'give 0, 1 or one data_filler per top (%d), got %d'
                              % (n, len(p.data_filler)))
        if p.data_filler:
            fillers = list(p.data_filler)
        else:
            fillers = [caffe_pb2.FillerParameter(type='constant', value=0)]
        self.fillers = [fillers[i if len(fillers) > 1 else 0] for i in range(n)]
        for t, shape in zip(top, self._shapes(p, n)):
            t.reshape(shape)
        for t, f in zip(top, self.fillers):
            if f.type == 'constant':
                fill(t, f)

    def _shapes(self, p, n):
        legacy = [p.num, p.channels, p.height, p.width]
        if any(len(f) for f in legacy):
            if p.shape:
                raise layer_error(self, 'give dummy_data_param.shape or num/channels/height/'
                                  'width, not both')
            for name, f in zip(('num', 'channels', 'height', 'width'), legacy):
                if len(f) not in (1, n):
                    raise layer_error(self, 'give %s once or once per top (%d), got %d'
                                      % (name, n, len(f)))
            return [tuple(int(f[i if len(f) > 1 else 0]) for f in legacy) for i in range(n)]
        if len(p.shape) not in (1, n):
            raise layer_error(self, 'give dummy_data_param.shape once or once per top (%d), '
                              'got %d' % (n, len(p.shape)))
        return [tuple(int(d) for d in p.shape[i if len(p.shape) > 1 else 0].dim)
                for i in range(n)]

    def reshape(self, bottom, top):
        pass

    def forward_cpu(self, bottom, top):
        for t, f in zip(top, self.fillers):
            if f.type != 'constant':
                fill(t, f)

    # Fillers draw from the runtime's host RNG (as on the CPU, so seeded runs agree); the tops
    # move to the device when a layer reads them.
    def forward_gpu(self, bottom, top):
        self.forward_cpu(bottom, top)
