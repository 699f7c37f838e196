"""Concat: joins bottoms along concat_param.axis (or the legacy concat_dim); every other
dimension must agree."""
import numpy as np

from .. import gpu
from ..layer import Layer, register
from ._checks import canonical_axis, count_between, layer_error

_copy = gpu.Kernel('elementwise.cu', 'concat_copy')


@register('Concat')
class ConcatLayer(Layer):
    min_bottom_blobs = 1
    exact_num_top_blobs = 1

    def setup(self, bottom, top):
        p = self.layer_param.concat_param
        if p.HasField('axis') and p.HasField('concat_dim'):
            raise layer_error(self, 'set concat_param.axis or concat_dim, not both')

    def _axis(self, blob):
        p = self.layer_param.concat_param
        if p.HasField('concat_dim'):
            # The legacy field is unsigned: no negative indexing.
            if p.concat_dim >= len(blob.shape):
                raise layer_error(self, 'concat_dim %d out of range for a bottom of shape %s'
                                  % (p.concat_dim, blob.shape))
            return int(p.concat_dim)
        return canonical_axis(self, blob, p.axis, 'concat_param.axis')

    def reshape(self, bottom, top):
        self.axis = axis = self._axis(bottom[0])
        shape = list(bottom[0].shape)
        for i, b in enumerate(bottom[1:], 1):
            same_rank = len(b.shape) == len(shape)
            if not same_rank or any(b.shape[j] != shape[j] for j in range(len(shape))
                                    if j != axis):
                raise layer_error(self, 'bottom[%d] shape %s does not match bottom[0] shape %s '
                                  'outside axis %d' % (i, b.shape, bottom[0].shape, axis))
        shape[axis] = sum(b.shape[axis] for b in bottom)
        top[0].reshape(shape)
        if len(bottom) == 1:
            top[0].share_data(bottom[0])
            top[0].share_diff(bottom[0])

    def forward_cpu(self, bottom, top):
        if len(bottom) > 1:
            top[0].data[...] = np.concatenate([b.cpu_data() for b in bottom], axis=self.axis)

    def backward_cpu(self, top, propagate_down, bottom):
        if len(bottom) == 1:
            return
        dy = top[0].cpu_diff()
        offset = 0
        for b, down in zip(bottom, propagate_down):
            n = b.shape[self.axis]
            if down:
                index = (slice(None),) * self.axis + (slice(offset, offset + n),)
                b.diff[...] = dy[index]
            offset += n

    # GPU: each bottom is a (outer, n * inner) block copied to / from its columns of the top's
    # (outer, total * inner) view.
    def _copy_gpu(self, bottom, top, to_top):
        inner = count_between(top[0].shape, self.axis + 1, None)
        top_chunk = top[0].shape[self.axis] * inner
        y = top[0].mutable_gpu_data() if to_top else top[0].gpu_diff()
        offset = 0
        for b in bottom:
            n = b.shape[self.axis]
            yield b, y, n * inner, top_chunk, offset * inner
            offset += n

    def forward_gpu(self, bottom, top):
        if len(bottom) == 1:
            return
        for b, y, chunk, top_chunk, offset in self._copy_gpu(bottom, top, True):
            x = b.gpu_data()
            _copy(x.size, chunk, top_chunk, offset, True, x, y)

    def backward_gpu(self, top, propagate_down, bottom):
        if len(bottom) == 1:
            return
        for (b, dy, chunk, top_chunk, offset), down in zip(
                self._copy_gpu(bottom, top, False), propagate_down):
            if down:
                dx = b.mutable_gpu_diff()
                _copy(dx.size, chunk, top_chunk, offset, False, dx, dy)
