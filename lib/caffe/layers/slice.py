"""Slice: cuts the bottom along slice_param.axis (or the legacy slice_dim) into the tops.

slice_point gives the cut positions (one fewer than the tops); without slice_point Caffe splits
the axis evenly among the tops (SliceLayer::Reshape: the axis length must divide by the top
count). With one top, the top shares the bottom's data and diff."""
from .. import gpu
from ..layer import Layer, register
from ._checks import canonical_axis, count_between, layer_error

_copy = gpu.Kernel('elementwise.cu', 'concat_copy')


@register('Slice')
class SliceLayer(Layer):
    exact_num_bottom_blobs = 1
    min_top_blobs = 1

    def setup(self, bottom, top):
        p = self.layer_param.slice_param
        if p.HasField('axis') and p.HasField('slice_dim'):
            raise layer_error(self, 'set slice_param.axis or slice_dim, not both')
        self.points = [int(v) for v in p.slice_point]

    def _axis(self, blob):
        p = self.layer_param.slice_param
        if p.HasField('slice_dim'):
            # The legacy field is unsigned: no negative indexing (Caffe's check).
            if p.slice_dim >= len(blob.shape):
                raise layer_error(self, 'slice_dim %d out of range for a bottom of shape %s'
                                  % (p.slice_dim, blob.shape))
            return int(p.slice_dim)
        return canonical_axis(self, blob, p.axis, 'slice_param.axis')

    def reshape(self, bottom, top):
        self.axis = axis = self._axis(bottom[0])
        shape = list(bottom[0].shape)
        length = shape[axis]
        if self.points:
            if len(self.points) != len(top) - 1:
                raise layer_error(self, '%d slice_point values for %d tops; give one fewer than '
                                  'the tops' % (len(self.points), len(top)))
            if len(top) > length:
                raise layer_error(self, '%d tops cannot slice an axis of length %d'
                                  % (len(top), length))
            edges = [0] + self.points + [length]
            if any(b <= a for a, b in zip(edges[:-2], edges[1:-1])) or edges[-2] > length:
                raise layer_error(self, 'slice_point %s must increase and lie within (0, %d]'
                                  % (self.points, length))
            sizes = [b - a for a, b in zip(edges[:-1], edges[1:])]
        else:
            if length % len(top):
                raise layer_error(self, 'without slice_point the %d tops split axis %d evenly, '
                                  'but its length %d does not divide by %d'
                                  % (len(top), axis, length, len(top)))
            sizes = [length // len(top)] * len(top)
        self.sizes = sizes
        for t, size in zip(top, sizes):
            shape[axis] = size
            t.reshape(shape)
        if len(top) == 1:
            top[0].share_data(bottom[0])
            top[0].share_diff(bottom[0])

    def _pieces(self, top):
        offset = 0
        for t, size in zip(top, self.sizes):
            index = (slice(None),) * self.axis + (slice(offset, offset + size),)
            yield t, index
            offset += size

    def forward_cpu(self, bottom, top):
        if len(top) == 1:
            return
        x = bottom[0].cpu_data()
        for t, index in self._pieces(top):
            t.data[...] = x[index]

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0] or len(top) == 1:
            return
        dx = bottom[0].diff
        for t, index in self._pieces(top):
            dx[index] = t.cpu_diff()

    # GPU: each top is a (outer, size * inner) block of the bottom's (outer, length * inner)
    # view: Concat's copy kernel, run the other way.
    def _gpu_pieces(self, bottom, top):
        inner = count_between(bottom[0].shape, self.axis + 1, None)
        chunk = bottom[0].shape[self.axis] * inner
        offset = 0
        for t, size in zip(top, self.sizes):
            yield t, size * inner, chunk, offset * inner
            offset += size

    def forward_gpu(self, bottom, top):
        if len(top) == 1:
            return
        x = bottom[0].gpu_data()
        for t, chunk, bottom_chunk, offset in self._gpu_pieces(bottom, top):
            y = t.mutable_gpu_data()
            _copy(y.size, chunk, bottom_chunk, offset, False, y, x)

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0] or len(top) == 1:
            return
        dx = bottom[0].mutable_gpu_diff()
        for t, chunk, bottom_chunk, offset in self._gpu_pieces(bottom, top):
            dy = t.gpu_diff()
            _copy(dy.size, chunk, bottom_chunk, offset, True, dy, dx)
