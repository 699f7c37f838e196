"""Fillers Caffe has beyond the Gaussian and uniform ones: bilinear (FCN's upsampling kernels)
against Caffe's formula, positive_unitball (rows summing to one), and the sparse check."""
import numpy as np
import pytest

from caffe.blob import Blob
from caffe.common import CaffeError
from caffe.fillers import fill
from caffe.proto import caffe_pb2


def _fill(shape, **kwargs):
    blob = Blob(shape)
    fill(blob, caffe_pb2.FillerParameter(**kwargs))
    return blob.data


@pytest.mark.parametrize('k', [1, 2, 3, 4, 5, 8])
def test_bilinear_matches_caffe_formula(k):
    data = _fill((3, 2, k, k), type='bilinear')
    f = int(np.ceil(k / 2.0))
    c = (k - 1) / (2.0 * f)
    for y in range(k):
        for x in range(k):
            expected = (1 - abs(x / f - c)) * (1 - abs(y / f - c))
            np.testing.assert_allclose(data[:, :, y, x], expected, rtol=1e-6)


def test_bilinear_kernel_4_is_the_2x_upsampling_kernel():
    row = np.array([0.25, 0.75, 0.75, 0.25])
    np.testing.assert_allclose(_fill((1, 1, 4, 4), type='bilinear')[0, 0], np.outer(row, row))


@pytest.mark.parametrize('shape', [(2, 3, 3), (1, 1, 2, 3)])
def test_bilinear_needs_square_4d_kernels(shape):
    with pytest.raises(CaffeError, match='bilinear'):
        _fill(shape, type='bilinear')


def test_positive_unitball_rows_sum_to_one():
    data = _fill((4, 3, 2), type='positive_unitball')
    assert (data >= 0).all() and (data <= 1).all()
    np.testing.assert_allclose(data.reshape(4, -1).sum(axis=1), 1, rtol=1e-6)


def test_sparse_only_with_gaussian():
    _fill((10, 20), type='gaussian', sparse=3)
    with pytest.raises(CaffeError, match='sparse'):
        _fill((10, 20), type='xavier', sparse=3)
