"""The CPU kernels of the structural layers (im2col_nd, ArgMax, the row scatter-add, MVN,
Reduction, STOCHASTIC pooling) give the same bits at any OpenMP thread count: each output is
written by one thread, every sum in one fixed order. Sizes are above the kernels' thresholds for
going parallel."""
import os
import subprocess
import sys

import numpy as np

import caffe

SCRIPT = r'''
import sys
import numpy as np
from caffe.layers import (argmax_kernels, im2col_nd, mvn_kernels, pooling_kernels,
                          reduction_kernels, rows_kernels)
r = np.random.RandomState(0)
out = {}
x = r.randn(8, 20, 30, 12).astype(np.float32)
g = np.array([3, 20, 30, 12, 19, 29, 11, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1], np.int32)
col = np.empty((8 * 8, 19 * 29 * 11), np.float32)
im2col_nd.im2col_nd(x.reshape(8, -1), g, col)
img = np.empty((8, 20 * 30 * 12), np.float32)
im2col_nd.col2im_nd(col, g, img)
out['col'], out['img'] = col, img
top = np.empty(64 * 3 * 300, np.float32)
argmax_kernels.top_k(r.randint(-3, 4, 64 * 40 * 300).astype(np.float32), 64, 40, 300, 3, 0, top)
out['argmax'] = top
index = r.randint(0, 50, 3000)
order, begin = rows_kernels.row_order(index, 50)
dst = np.ones((50, 64), np.float32)
rows_kernels.scatter_add_rows(r.randn(3000, 64).astype(np.float32), order, begin, dst, True)
out['scatter'] = dst
rows = (r.randn(64, 4000) * 3).astype(np.float32)
y = np.empty_like(rows)
scale = np.empty(64, np.float32)
mvn_kernels.forward(rows, np.float32(1e-3), True, y, scale)
dx = np.empty_like(rows)
mvn_kernels.backward(y, r.randn(64, 4000).astype(np.float32), scale, True, dx)
out['mvn'], out['mvn_dx'] = y, dx
sums = np.empty(64, np.float32)
reduction_kernels.reduce_rows(rows, 3, np.float32(0.5), sums)
out['sumsq'] = sums
planes = np.abs(r.randn(64, 40, 40)).astype(np.float32)
pooled = np.empty((64, 20, 20), np.float32)
picked = np.empty((64, 20, 20), np.int32)
pooling_kernels.stochastic_pool_forward_train(planes, 3, 3, 2, 2,
                                              r.rand(64, 20, 20).astype(np.float32), pooled,
                                              picked)
out['sto'], out['sto_index'] = pooled, picked
np.savez(sys.argv[1], **out)
'''


def test_results_do_not_depend_on_the_number_of_threads(tmp_path):
    lib = os.path.join(os.path.dirname(caffe.__file__), os.pardir)
    results = []
    for threads in ('1', '2', '3'):
        path = str(tmp_path / ('t%s.npz' % threads))
        env = dict(os.environ, OMP_NUM_THREADS=threads, PYTHONPATH=os.path.abspath(lib))
        subprocess.run([sys.executable, '-c', SCRIPT, path], env=env, check=True)
        results.append(np.load(path))
    for other in results[1:]:
        for key in results[0].files:
            np.testing.assert_array_equal(other[key], results[0][key], err_msg=key)
