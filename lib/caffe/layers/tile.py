"""Tile: the bottom repeated tile_param.tiles times along tile_param.axis: the top is
(outer, tiles * inner) for a bottom seen as (outer, inner), inner = count from axis on. The
gradient adds the tiles' diffs, the first copied and the others added in order (Caffe's
caffe_copy then caffe_axpy), so the float32 sums are Caffe's."""
from .. import gpu
from ..layer import Layer, register
from ._checks import canonical_axis, count_between, layer_error, reshape_by_shapes

_forward = gpu.Kernel('copy_layers.cu', 'tile_forward')
_backward = gpu.Kernel('copy_layers.cu', 'tile_backward')


@register('Tile')
class TileLayer(Layer):
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def setup(self, bottom, top):
        p = self.layer_param.tile_param
        if not p.HasField('tiles'):
            raise layer_error(self, 'tile_param.tiles is required')
        if p.tiles < 1:
            raise layer_error(self, 'tile_param.tiles must be positive, got %d' % p.tiles)
        self.tiles = int(p.tiles)

    @reshape_by_shapes
    def reshape(self, bottom, top):
        self.axis = canonical_axis(self, bottom[0], self.layer_param.tile_param.axis,
                                   'tile_param.axis')
        shape = list(bottom[0].shape)
        shape[self.axis] *= self.tiles
        top[0].reshape(shape)
        self.outer = count_between(bottom[0].shape, 0, self.axis)
        self.inner = count_between(bottom[0].shape, self.axis, None)

    def forward_cpu(self, bottom, top):
        x = bottom[0].cpu_data().reshape(self.outer, 1, self.inner)
        top[0].data.reshape(self.outer, self.tiles, self.inner)[...] = x

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].cpu_diff().reshape(self.outer, self.tiles, self.inner)
        dx = bottom[0].diff.reshape(self.outer, self.inner)
        dx[...] = dy[:, 0]
        for t in range(1, self.tiles):
            dx += dy[:, t]

    def forward_gpu(self, bottom, top):
        y = top[0].mutable_gpu_data()
        _forward(y.size, self.inner, self.tiles, bottom[0].gpu_data(), y)

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = bottom[0].mutable_gpu_diff()
        _backward(dx.size, self.inner, self.tiles, top[0].gpu_diff(), dx)
