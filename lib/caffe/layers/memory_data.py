"""MemoryData: emits batches of arrays the caller hands over with pycaffe's
net.set_input_arrays(data, labels): top 0 the data (batch_size, channels, height, width), top 1
the labels (batch_size,). Each forward takes the next batch_size items, wrapping around."""
import numpy as np

from ..layer import NoBackwardLayer, register
from ._checks import layer_error


@register('MemoryData')
class MemoryDataLayer(NoBackwardLayer):
    exact_num_bottom_blobs = 0
    exact_num_top_blobs = 2

    def setup(self, bottom, top):
        p = self.layer_param.memory_data_param
        self.batch_size, self.channels = int(p.batch_size), int(p.channels)
        self.height, self.width = int(p.height), int(p.width)
        if min(self.batch_size, self.channels, self.height, self.width) <= 0:
            raise layer_error(self, 'memory_data_param batch_size, channels, height and width '
                              'must all be given and positive')
        top[0].reshape((self.batch_size, self.channels, self.height, self.width))
        top[1].reshape((self.batch_size,))
        self.data = self.labels = None
        self.pos = 0

    def reset(self, data, labels):
        """Checks and takes data (N, C, H, W) and labels (N, 1, 1, 1), float32 and C-contiguous,
        N a multiple of batch_size (the checks and messages of pycaffe's set_input_arrays)."""
        for name, arr, dims in (('data array', data, (self.channels, self.height, self.width)),
                                ('labels array', labels, (1, 1, 1))):
            if not isinstance(arr, np.ndarray) or not arr.flags['C_CONTIGUOUS']:
                raise layer_error(self, '%s must be C contiguous' % name)
            if arr.ndim != 4:
                raise layer_error(self, '%s must be 4-d, got shape %s' % (name, arr.shape))
            if arr.dtype != np.float32:
                raise layer_error(self, '%s must be float32, got %s' % (name, arr.dtype))
            for axis, what in zip((1, 2, 3), ('number of channels', 'height', 'width')):
                if arr.shape[axis] != dims[axis - 1]:
                    raise layer_error(self, '%s has wrong %s: %d, expected %d'
                                      % (name, what, arr.shape[axis], dims[axis - 1]))
        if data.shape[0] != labels.shape[0]:
            raise layer_error(self, 'data and labels must have the same first dimension '
                              '(%d vs %d)' % (data.shape[0], labels.shape[0]))
        if data.shape[0] == 0 or data.shape[0] % self.batch_size:
            raise layer_error(self, 'first dimensions of input arrays must be a multiple of '
                              'batch size %d, got %d' % (self.batch_size, data.shape[0]))
        self.data, self.labels = data, labels.reshape(-1)
        self.pos = 0

    def reshape(self, bottom, top):
        pass

    def forward_cpu(self, bottom, top):
        if self.data is None:
            raise layer_error(self, 'no data: call net.set_input_arrays(data, labels) first')
        end = self.pos + self.batch_size
        top[0].data[...] = self.data[self.pos:end]
        top[1].data[...] = self.labels[self.pos:end]
        self.pos = end % len(self.data)

    # The arrays live on the host; the tops move to the device when a layer reads them.
    def forward_gpu(self, bottom, top):
        self.forward_cpu(bottom, top)
