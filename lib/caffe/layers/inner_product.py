"""InnerProduct: top = bottom (flattened from `axis` to M x K) times W^T plus bias.

W is (num_output, K), or (K, num_output) with `transpose: true`, as Caffe stores it."""
import numpy as np

from .. import gpu
from ..fillers import fill
from ..gemm import matmul
from ..layer import Layer, register
from ._checks import (canonical_axis, count_between, layer_error,
                      reshape_by_shapes)

_add_bias = gpu.Kernel('elementwise.cu', 'add_bias')

_sum_rows_accumulate = gpu.Kernel('elementwise.cu', 'sum_rows_accumulate')


@register('InnerProduct')
class InnerProductLayer(Layer):
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def setup(self, bottom, top):
        p = self.layer_param.inner_product_param
        if p.num_output <= 0:
            raise layer_error(self, 'inner_product_param.num_output must be set (> 0)')
        self.num_output = int(p.num_output)
        self.bias_term = p.bias_term
        self.transpose = p.transpose
        axis = canonical_axis(self, bottom[0], p.axis, 'inner_product_param.axis')
        self.K = bottom[0].count_from(axis)
        shape = (self.K, self.num_output) if self.transpose else (self.num_output, self.K)
        if len(self.blobs) == 0:
            self.blobs.add_blob(*shape)
            fill(self.blobs[0], p.weight_filler)
            if self.bias_term:
                self.blobs.add_blob(self.num_output)
                fill(self.blobs[1], p.bias_filler)
        else:
            # Weights already present (loaded or shared) are kept, as Caffe skips filling them.
            expect = [shape, (self.num_output,)][:1 + self.bias_term]
            got = [b.shape for b in self.blobs]
            if got != expect:
                raise layer_error(self, 'parameter shapes %s do not match the expected %s'
                                  % (got, expect))
        self.param_propagate_down = [True] * len(self.blobs)

    @reshape_by_shapes
    def reshape(self, bottom, top):
        p = self.layer_param.inner_product_param
        axis = canonical_axis(self, bottom[0], p.axis, 'inner_product_param.axis')
        k = bottom[0].count_from(axis)
        if k != self.K:
            raise layer_error(self, 'input size incompatible with the weights: bottom %s '
                              'flattened from axis %d has %d inputs, the layer was set up for %d'
                              % (bottom[0].shape, axis, k, self.K))
        self.M = count_between(bottom[0].shape, 0, axis)
        top[0].reshape(bottom[0].shape[:axis] + (self.num_output,))

    def forward_cpu(self, bottom, top):
        x = bottom[0].cpu_data().reshape(self.M, self.K)
        w = self.blobs[0].cpu_data()
        y = top[0].data.reshape(self.M, self.num_output)
        matmul(x, w if self.transpose else w.T, y)
        if self.bias_term:
            y += self.blobs[1].cpu_data()

    def backward_cpu(self, top, propagate_down, bottom):
        dy = top[0].cpu_diff().reshape(self.M, self.num_output)
        x = bottom[0].cpu_data().reshape(self.M, self.K)
        if self.param_propagate_down[0]:
            # dW += dy^T x, or x^T dy for the transposed layout (Caffe's gemm with beta 1).
            left, right = (x.T, dy) if self.transpose else (dy.T, x)
            matmul(left, right, self.blobs[0].diff, accumulate=True)
        if self.bias_term and self.param_propagate_down[1]:
            self.blobs[1].diff[...] += dy.sum(axis=0, dtype=np.float32)
        if propagate_down[0]:
            w = self.blobs[0].cpu_data()
            matmul(dy, w.T if self.transpose else w, bottom[0].diff.reshape(self.M, self.K))

    # GPU: the products on cuBLAS (gemm takes row-major operands, as the numpy code above);
    # the bias as a separate addition, as above.
    def forward_gpu(self, bottom, top):
        from ..gpu.cublas import gemm
        x = bottom[0].gpu_data()
        w = self.blobs[0].gpu_data()
        y = top[0].mutable_gpu_data()
        gemm(False, not self.transpose, self.M, self.num_output, self.K, 1.0, x, w, 0.0, y)
        if self.bias_term:
            _add_bias(y.size, self.num_output, self.blobs[1].gpu_data(), y)

    def backward_gpu(self, top, propagate_down, bottom):
        from ..gpu.cublas import gemm
        dy = top[0].gpu_diff()
        x = bottom[0].gpu_data()
        if self.param_propagate_down[0]:
            dw = self.blobs[0].mutable_gpu_diff()
            if self.transpose:
                gemm(True, False, self.K, self.num_output, self.M, 1.0, x, dy, 1.0, dw)
            else:
                gemm(True, False, self.num_output, self.K, self.M, 1.0, dy, x, 1.0, dw)
        if self.bias_term and self.param_propagate_down[1]:
            _sum_rows_accumulate(self.num_output, self.M, dy, self.blobs[1].mutable_gpu_diff())
        if propagate_down[0]:
            w = self.blobs[0].gpu_data()
            gemm(False, self.transpose, self.M, self.K, self.num_output, 1.0, dy, w, 0.0,
                 bottom[0].mutable_gpu_diff())
