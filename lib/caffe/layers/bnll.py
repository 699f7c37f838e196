"""BNLL (binomial normal log likelihood): y = log(1 + exp(x)), computed as x + log(1 + exp(-x))
for x > 0 so that it cannot overflow; the gradient exp(x) / (exp(x) + 1) uses exp(min(x, 50))
(Caffe's kBNLL_THRESHOLD), which keeps it 1 rather than inf / inf for large x. Backward reads
the bottom's data (in place: the output), as Caffe's does."""
from ..layer import register
from ._neuron import ElementwiseNeuron


@register('BNLL')
class BNLLLayer(ElementwiseNeuron):
    kernel = 'bnll'
