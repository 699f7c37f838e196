"""The neuron and loss layers give the same numbers at any OpenMP thread count: element-wise
kernels compute each element alone, and every sum (losses, PReLU's slope gradient) adds fixed
runs of terms in order (caffe.layers._partial_sums). Inputs are above the kernels' threading
thresholds."""
import os
import subprocess
import sys
import textwrap

import numpy as np

import caffe

RUN = textwrap.dedent('''
    import sys
    import numpy as np
    from caffe.testing import build_layer
    rs = np.random.RandomState(0)
    x = rs.randn(4, 16, 75, 80).astype(np.float32)          # 384,000 elements
    other = rs.randn(*x.shape).astype(np.float32)
    dy = rs.randn(*x.shape).astype(np.float32)
    labels = rs.randint(0, 16, (4, 1, 75, 80)).astype(np.float32)
    out = {}
    cases = {
        'prelu': ('type: "PReLU" bottom: "x" top: "y" prelu_param { filler { type: '
                  '"gaussian" } }', [x]),
        'swish': ('type: "Swish" bottom: "x" top: "y" swish_param { beta: 1.3 }', [x]),
        'bnll': ('type: "BNLL" bottom: "x" top: "y"', [x]),
        'euclidean': ('type: "EuclideanLoss" bottom: "a" bottom: "b" top: "l"', [x, other]),
        'sigmoid_ce': ('type: "SigmoidCrossEntropyLoss" bottom: "a" bottom: "t" top: "l" '
                       'loss_param { ignore_label: 0 }', [x, np.abs(other)]),
        'hinge': ('type: "HingeLoss" bottom: "a" bottom: "t" top: "l" hinge_loss_param { '
                  'norm: L2 }', [x, labels[:, 0, 0, 0]]),
        'infogain': ('type: "InfogainLoss" bottom: "a" bottom: "t" bottom: "H" top: "l"',
                     [x, labels, rs.rand(16, 16).astype(np.float32)]),
    }
    for name, (text, bottoms) in cases.items():
        import caffe
        caffe.set_random_seed(1)
        layer, bottom, top = build_layer('name: "n" ' + text, bottoms)
        layer.forward(bottom, top)
        top[0].diff[...] = dy if top[0].shape == x.shape else 1
        layer.backward(top, [True] + [False] * (len(bottom) - 1), bottom)
        out[name + '/top'] = top[0].data
        out[name + '/diff'] = bottom[0].diff
        for i, p in enumerate(layer.blobs):
            out['%s/param%d' % (name, i)] = p.diff
    np.savez(sys.argv[1], **out)
''')


def test_results_do_not_depend_on_the_number_of_threads(tmp_path):
    lib = os.path.abspath(os.path.join(os.path.dirname(caffe.__file__), os.pardir))
    results = []
    for threads in ('1', '2', '3'):
        out = str(tmp_path / ('t%s.npz' % threads))
        env = dict(os.environ, OMP_NUM_THREADS=threads, PYTHONPATH=lib)
        subprocess.run([sys.executable, '-c', RUN, out], env=env, check=True)
        results.append(np.load(out))
    assert len(results[0].files) == 15
    for other in results[1:]:
        for key in results[0].files:
            np.testing.assert_array_equal(other[key], results[0][key], err_msg=key)
