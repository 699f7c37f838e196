"""HDF5Output: writes its two bottoms to hdf5_output_param.file_name as the datasets "data" and
"label", float32, each in Caffe's 4-axis legacy shape (num, channels, height, width; missing
axes 1).

As Caffe's HDF5OutputLayer: setup creates the file (empty; an existing one is replaced) and
forward writes the batch it is given. Caffe's forward adds the two datasets to the open file, so
a second forward fails there (the datasets exist); here it fails with a CaffeError saying so,
and the file keeps the first batch. Each write is atomic (the whole file is built in memory and
renamed into place): the file is never half-written. No tops, no backward.
"""
import io as _bytes_io

import numpy as np

from ..hdf5 import _h5py
from ..io import atomic_write
from ..layer import NoBackwardLayer, register
from ._checks import layer_error


def _legacy_shape(layer, blob, which):
    if len(blob.shape) > 4:
        raise layer_error(layer, 'the %s bottom has %d axes %s; Caffe writes 4-axis blobs '
                          '(num, channels, height, width)' % (which, len(blob.shape), blob.shape))
    return (blob.num, blob.channels, blob.height, blob.width)


@register('HDF5Output')
class HDF5OutputLayer(NoBackwardLayer):
    exact_num_bottom_blobs = 2
    exact_num_top_blobs = 0

    def setup(self, bottom, top):
        self.file_name = self.layer_param.hdf5_output_param.file_name
        if not self.file_name:
            raise layer_error(self, 'hdf5_output_param.file_name is required')
        self.written = False
        self._write({})

    def _write(self, datasets):
        h5py = _h5py()
        buffer = _bytes_io.BytesIO()
        with h5py.File(buffer, 'w') as f:
            for name, values in datasets.items():
                f.create_dataset(name, data=values)
        try:
            atomic_write(self.file_name, buffer.getvalue())
        except OSError as e:
            raise layer_error(self, 'failed to write HDF5 file %s: %s'
                              % (self.file_name, e.strerror or e)) from None

    def reshape(self, bottom, top):
        pass

    def forward_cpu(self, bottom, top):
        if bottom[0].num != bottom[1].num:
            raise layer_error(self, 'data and label bottoms must have the same batch size '
                              '(%d vs %d)' % (bottom[0].num, bottom[1].num))
        if self.written:
            raise layer_error(self, '%s already holds the batch of an earlier forward; Caffe\'s '
                              'HDF5Output writes one batch per file (its second forward fails '
                              'creating the dataset "data" again)' % self.file_name)
        data = np.asarray(bottom[0].cpu_data(), np.float32).reshape(
            _legacy_shape(self, bottom[0], 'data'))
        label = np.asarray(bottom[1].cpu_data(), np.float32).reshape(
            _legacy_shape(self, bottom[1], 'label'))
        self._write({'data': data, 'label': label})
        self.written = True

    # Caffe's Forward_gpu copies the bottoms to the host and writes them: cpu_data() does.
    def forward_gpu(self, bottom, top):
        self.forward_cpu(bottom, top)
