"""BBoxNormalization: fold makes bbox_pred predict un-normalized targets (t * std + mean, by the
formula), restore puts the saved arrays back bit for bit, unfold inverts fold to rounding."""
import types

import numpy as np

from fast_rcnn.bbox_normalization import BBoxNormalization


def params(rs, outputs=8, inputs=5):
    return [types.SimpleNamespace(data=rs.randn(outputs, inputs).astype(np.float32)),
            types.SimpleNamespace(data=rs.randn(outputs).astype(np.float32))]


def test_fold_restore_and_unfold():
    rs = np.random.RandomState(0)
    means, stds = [0.0, 0.1, -0.2, 0.05], [0.1, 0.1, 0.2, 0.2]
    norm = BBoxNormalization(means, stds, 8)   # per class of two: tiled
    p = params(rs)
    w0, b0 = p[0].data.copy(), p[1].data.copy()
    x = rs.randn(5)
    saved = norm.fold(p)
    # the folded layer's outputs are the normalized outputs * std + mean
    expected = (w0.astype(np.float64) @ x + b0) * np.tile(stds, 2) + np.tile(means, 2)
    np.testing.assert_allclose(p[0].data @ x + p[1].data, expected, rtol=1e-5, atol=1e-6)
    norm.unfold(p)
    np.testing.assert_allclose(p[0].data, w0, rtol=1e-6)
    np.testing.assert_allclose(p[1].data, b0, rtol=1e-5, atol=1e-6)
    norm.fold(p)
    norm.restore(p, saved)
    assert np.array_equal(p[0].data, w0) and np.array_equal(p[1].data, b0)
