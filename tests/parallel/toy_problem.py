"""A small classification problem for the data-parallel tests: a Python data layer that hands out
numbered samples in a fixed global order, and a two-layer net with an SGD solver (momentum, weight
decay, a step learning rate, iter_size).

The order is the point: at iteration t, pass p (of iter_size k), rank r of N reads sample
(t * N + r) * k + p. One process with iter_size N * k (N = 1) therefore reads, at iteration t,
exactly the samples the N ranks read together, in the same order.
"""
import os

import numpy as np

import caffe

HERE = os.path.dirname(os.path.abspath(__file__))
BATCH, FEATURES, CLASSES = 2, 6, 3


def sample(index):
    """Sample `index`: BATCH feature vectors and their labels (a function of the index only)."""
    rng = np.random.RandomState(1000 + index)
    x = rng.randn(BATCH, FEATURES).astype(np.float32)
    labels = rng.randint(0, CLASSES, size=BATCH).astype(np.float32)
    return x, labels


class FeedLayer(caffe.Layer):
    """Tops: data (BATCH x FEATURES), label (BATCH). param_str: the solver's iter_size."""

    def setup(self, bottom, top):
        self.iter_size = int(self.param_str)
        self.rank, self.count = caffe.solver_rank(), caffe.solver_count()
        self.forwards = 0

    def reshape(self, bottom, top):
        top[0].reshape(BATCH, FEATURES)
        top[1].reshape(BATCH)

    def forward(self, bottom, top):
        t, p = divmod(self.forwards, self.iter_size)
        self.forwards += 1
        top[0].data[...], top[1].data[...] = sample((t * self.count + self.rank)
                                                    * self.iter_size + p)

    def backward(self, top, propagate_down, bottom):
        pass


NET = '''name: "toy"
layer { name: "feed" type: "Python" top: "data" top: "label"
        python_param { module: "toy_problem" layer: "FeedLayer" param_str: "%(iter_size)d" } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.5 }
                              bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        inner_product_param { num_output: %(classes)d weight_filler { type: "gaussian" std: 0.5 }
                              bias_filler { type: "constant" value: -0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
'''

SOLVER = '''train_net: "%(net)s"
base_lr: 0.05
lr_policy: "step"
gamma: 0.5
stepsize: 2
momentum: 0.9
weight_decay: 0.01
iter_size: %(iter_size)d
max_iter: %(max_iter)d
clip_gradients: %(clip)g
layer_wise_reduce: %(layer_wise)s
random_seed: 7
display: 0
snapshot: 0
'''

ITERATIONS = 5


def write_solver(folder, name, iter_size, clip=-1.0, layer_wise=False, max_iter=ITERATIONS):
    """Writes <name>_net.prototxt and <name>_solver.prototxt into folder; returns the solver."""
    net = os.path.join(folder, name + '_net.prototxt')
    with open(net, 'w') as f:
        f.write(NET % {'iter_size': iter_size, 'classes': CLASSES})
    solver = os.path.join(folder, name + '_solver.prototxt')
    with open(solver, 'w') as f:
        f.write(SOLVER % {'net': net, 'iter_size': iter_size, 'max_iter': max_iter, 'clip': clip,
                          'layer_wise': 'true' if layer_wise else 'false'})
    return solver


def weights(solver):
    """{layer/k: a copy of the parameter} of the solver's net."""
    return {'%s/%d' % (name, k): blob.data.copy()
            for name, blobs in solver.net.params.items() for k, blob in enumerate(blobs)}


def reference(folder, ranks, iter_size, clip=-1.0, iterations=ITERATIONS):
    """The weights after `iterations` steps of one process with iter_size ranks * iter_size (no
    data-parallel code involved), clip_gradients `clip`."""
    caffe.set_mode_cpu()
    caffe.set_solver_count(1)
    caffe.set_solver_rank(0)
    solver = caffe.SGDSolver(write_solver(folder, 'reference', ranks * iter_size, clip))
    solver.step(iterations)
    return weights(solver)
