"""Split: one bottom feeding several tops (the Net inserts these where a blob has several
consumers). Tops share the bottom's data; backward adds up their separate diffs."""
import numpy as np

from .. import gpu
from ..layer import Layer, register
from ._checks import layer_error, reshape_by_shapes


@register('Split')
class SplitLayer(Layer):
    exact_num_bottom_blobs = 1
    min_top_blobs = 1

    @reshape_by_shapes
    def reshape(self, bottom, top):
        for t in top:
            # In place would make one of the diffs that backward adds up the bottom's own.
            if t is bottom[0]:
                raise layer_error(self, 'cannot run in place')
            t.reshape_like(bottom[0])

    def forward_cpu(self, bottom, top):
        for t in top:
            t.share_data(bottom[0])

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        total = bottom[0].diff
        if len(top) == 1:
            total[...] = top[0].cpu_diff()
            return
        np.add(top[0].cpu_diff(), top[1].cpu_diff(), out=total)
        for t in top[2:]:
            total += t.cpu_diff()

    def forward_gpu(self, bottom, top):
        self.forward_cpu(bottom, top)  # shares the buffer; nothing to compute on either device

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        total = bottom[0].mutable_gpu_diff()
        gpu.copy(total, top[0].gpu_diff())
        for t in top[1:]:
            dy = t.gpu_diff()
            _add_scaled(dy.size, 1.0, dy, total)


_add_scaled = gpu.Kernel('elementwise.cu', 'add_scaled')
