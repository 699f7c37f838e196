"""InnerProduct: top = bottom (flattened from `axis` to M x K) times W^T plus bias.

W is (num_output, K), or (K, num_output) with `transpose: true`, as Caffe stores it."""
import numpy as np

from ..fillers import fill
from ..layer import Layer, register
from ._checks import canonical_axis, check_count, count_between, layer_error


@register('InnerProduct')
class InnerProductLayer(Layer):
    def setup(self, bottom, top):
        check_count(self, 'bottom', bottom, 1)
        check_count(self, 'top', top, 1)
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
        y = x @ (w if self.transpose else w.T)
        if self.bias_term:
            y += self.blobs[1].cpu_data()
        top[0].data[...] = y.reshape(top[0].shape)

    def backward_cpu(self, top, propagate_down, bottom):
        dy = top[0].cpu_diff().reshape(self.M, self.num_output)
        x = bottom[0].cpu_data().reshape(self.M, self.K)
        if self.param_propagate_down[0]:
            self.blobs[0].diff[...] += (x.T @ dy) if self.transpose else (dy.T @ x)
        if self.bias_term and self.param_propagate_down[1]:
            self.blobs[1].diff[...] += dy.sum(axis=0, dtype=np.float32)
        if propagate_down[0]:
            w = self.blobs[0].cpu_data()
            dx = dy @ (w.T if self.transpose else w)
            bottom[0].diff[...] = dx.reshape(bottom[0].shape)
