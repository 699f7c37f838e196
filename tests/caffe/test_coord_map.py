"""caffe.coord_map: the (axis, scale, shift) maps between net_spec tops that pycaffe uses to crop
upsampled feature maps back onto their input.

Golden values: the runtime's own backward pass (an all-ones kernel routes a one-pixel gradient
to exactly the receptive field, whose centre is where the map must send that pixel), and, for
Deconvolution (no layer here yet), the receptive-field formula written out in the test."""
import itertools

import numpy as np
import pytest

import caffe
from caffe import layers as L, params as P
from caffe.coord_map import (AxisMismatchException, UndefinedMapException, compose, conv_params,
                             coord_map, coord_map_from_to, crop, crop_params, inverse)


def receptive_field_centre(net_spec, top_name, at):
    """The centre (per spatial axis) of the pixels of `data` that top `top_name` at spatial
    position `at` sees, found by backpropagating a one-pixel gradient through the real net with
    all-ones kernels (positive weights: the support of the gradient is the receptive field)."""
    param = net_spec.to_proto()
    param.force_backward = True
    net = caffe.Net.from_param(param)
    for blobs in net.params.values():
        blobs[0].data[...] = 1
        if len(blobs) > 1:
            blobs[1].data[...] = 0
    net.forward(data=np.ones(net.blobs['data'].shape, np.float32))
    top = net.blobs[top_name]
    top.diff[...] = 0
    top.diff[(0, 0) + tuple(at)] = 1
    net.backward(start=net._layer_names[-1])
    support = np.nonzero(net.blobs['data'].diff[0, 0])
    return np.array([(axis.min() + axis.max()) / 2.0 for axis in support])


def conv_net(*layers, size=40):
    """data (1, 1, size, size) followed by the given (type, kwargs) layers, each on the last."""
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, size, size]))
    last = n.data
    for i, (kind, kwargs) in enumerate(layers):
        if kind == 'Convolution':
            kwargs = dict(kwargs, num_output=1, bias_term=False)
        last = getattr(L, kind)(last, **kwargs)
        n['l%d' % i] = last
    return n, 'l%d' % (len(layers) - 1)


@pytest.mark.parametrize('kernel,stride,pad,dilation', [
    (3, 1, 0, 1), (3, 2, 1, 1), (5, 3, 2, 1), (4, 2, 0, 1), (3, 1, 2, 2), (2, 2, 0, 1)])
def test_convolution_map_sends_a_pixel_to_its_receptive_field_centre(kernel, stride, pad,
                                                                       dilation):
    n, name = conv_net(('Convolution', dict(kernel_size=kernel, stride=stride, pad=pad,
                                            dilation=dilation)))
    axis, a, b = coord_map_from_to(n[name], n.data)
    assert axis == 1
    for at in ((3, 4), (5, 2)):
        np.testing.assert_allclose(a * np.array(at) + b, receptive_field_centre(n, name, at))


@pytest.mark.parametrize('kernel,stride,pad', [(2, 2, 0), (3, 2, 1), (3, 3, 0), (4, 2, 1)])
def test_pooling_map_sends_a_pixel_to_its_window_centre(kernel, stride, pad):
    n, name = conv_net(('Pooling', dict(pool=P.Pooling.AVE, kernel_size=kernel, stride=stride,
                                        pad=pad)))
    axis, a, b = coord_map_from_to(n[name], n.data)
    for at in ((3, 4), (6, 2)):
        np.testing.assert_allclose(a * np.array(at) + b, receptive_field_centre(n, name, at))


def test_a_chain_composes_to_the_chains_receptive_field_centre():
    n, name = conv_net(('Convolution', dict(kernel_size=3, pad=1)),
                       ('ReLU', {}),
                       ('Pooling', dict(pool=P.Pooling.AVE, kernel_size=2, stride=2)),
                       ('Convolution', dict(kernel_size=5, stride=2, pad=1)),
                       ('Pooling', dict(pool=P.Pooling.AVE, kernel_size=3, stride=1, pad=1)),
                       size=64)
    axis, a, b = coord_map_from_to(n[name], n.data)
    np.testing.assert_allclose(a, 4)
    for at in ((2, 3), (5, 5)):
        np.testing.assert_allclose(a * np.array(at) + b, receptive_field_centre(n, name, at))


# Deconvolution upsamples: top pixel y of a stride-s, kernel-k, pad-p deconvolution is the centre
# of the input pixels whose kernels cover it, y = s * x + (k - 1) / 2 - p.
def deconv_expected(stride, kernel, pad):
    return stride, (kernel - 1) / 2.0 - pad


def fcn_like(kernel=3, stride=1, pad=0, pool=2, up=2, up_pad=0):
    """conv -> max pool -> deconvolution upsampling by `up` (kernel 2 * up), as FCNs do."""
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 1, 100, 100]))
    n.aux = L.Input(shape=dict(dim=[2, 1, 20, 20]))
    n.conv = L.Convolution(n.data, num_output=4, kernel_size=kernel, stride=stride, pad=pad)
    n.pool = L.Pooling(n.conv, pool=P.Pooling.MAX, kernel_size=pool, stride=pool)
    up_kernel = [2 * u for u in up] if isinstance(up, list) else 2 * up
    n.up = L.Deconvolution(n.pool, num_output=4, kernel_size=up_kernel, stride=up, pad=up_pad)
    return n


def test_deconvolution_map_is_the_formula():
    n = fcn_like(kernel=1, pool=1, up=3, up_pad=1)
    axis, a, b = coord_map(n.up.fn)
    assert axis == 1 and (a, b) == deconv_expected(3, 6, 1)


def test_pool_then_upsample_by_the_same_factor_is_the_identity_or_a_shift():
    # conv 3: data x -> x - 1; pool 2: -> (x - 1) / 2 - 1/4; deconv 2 (kernel 4): -> 2 y + 3/2.
    n = fcn_like()
    axis, a, b = coord_map_from_to(n.up, n.data)
    assert axis == 1 and a == 1 and b == 0
    # pool 4: (x - 1) / 4 - 3/8; deconv 4 (kernel 8): 4 y + 7/2  ->  x - 1 - 3/2 + 7/2 = x + 1
    # from data to the upsampled top, so the map back from it is x - 1.
    n = fcn_like(pool=4, up=4)
    axis, a, b = coord_map_from_to(n.up, n.data)
    assert a == 1 and b == -1


def test_point_wise_layers_and_1x1_convolutions_map_nothing():
    n = fcn_like()
    base = coord_map_from_to(n.up, n.data)
    n.relu = L.ReLU(n.up)
    n.drop = L.Dropout(n.relu)
    n.one = L.Convolution(n.drop, num_output=4, kernel_size=1)
    for top in (n.relu, n.drop, n.one):
        axis, a, b = coord_map_from_to(top, n.data)
        assert axis == base[0] and np.all(a == base[1]) and np.all(b == base[2])
    assert coord_map(n.relu.fn) == (None, 1, 0)


@pytest.mark.parametrize('pad', [1, 4, 7])
def test_padding_shifts_one_way_in_convolution_and_the_other_in_deconvolution(pad):
    n = fcn_like()
    _, a0, b0 = coord_map_from_to(n.up, n.data)
    n = fcn_like(pad=pad)
    _, a, b = coord_map_from_to(n.up, n.data)
    assert a == a0 and b == b0 - pad
    n = fcn_like(up_pad=pad)
    _, a, b = coord_map_from_to(n.up, n.data)
    assert a == a0 and b == b0 + pad
    n = fcn_like(pad=pad, up_pad=pad)
    _, a, b = coord_map_from_to(n.up, n.data)
    assert a == a0 and b == b0


def test_every_bottom_of_a_layer_maps_alike():
    n = fcn_like()
    n.conv_data, n.conv_aux = L.Convolution(n.data, n.aux, ntop=2, num_output=4, kernel_size=5,
                                            stride=2)
    assert (coord_map_from_to(n.conv_data, n.data)
            == pytest.approx(coord_map_from_to(n.conv_aux, n.aux)))


def test_each_axis_maps_on_its_own():
    n = fcn_like(kernel=[3, 5], stride=[1, 2], pad=[0, 10])
    axis, a, b = coord_map_from_to(n.up, n.data)
    assert axis == 1 and len(a) == len(b) == 2
    for i, k in enumerate((3, 5)):
        n_k = fcn_like(kernel=k, stride=(1, 2)[i], pad=(0, 10)[i])
        _, a_k, b_k = coord_map_from_to(n_k.up, n_k.data)
        assert a[i] == a_k[0] and b[i] == b_k[0]


def test_three_spatial_axes():
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 30, 30, 30]))
    n.conv = L.Convolution(n.data, num_output=2, kernel_size=[3, 3, 3], stride=[1, 1, 1],
                           pad=[0, 1, 2])
    n.pool = L.Pooling(n.conv, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.up = L.Deconvolution(n.pool, num_output=2, kernel_size=4, stride=2)
    axis, a, b = coord_map_from_to(n.up, n.data)
    assert axis == 1 and len(a) == len(b) == 3 and np.all(a == 1)
    # unpadded, conv 3 + pool 2 + deconv 2 is the identity; padding 0, 1, 2 shifts by 0, -1, -2
    np.testing.assert_array_equal(b, [0, -1, -2])


def test_crop_shifts_by_its_offset_and_maps_only_its_first_bottom():
    n = fcn_like()
    _, a, b = coord_map_from_to(n.up, n.data)
    for offset in (0, 3, 9):
        n.crop = L.Crop(n.up, n.data, axis=2, offset=offset)
        axis, a_crop, b_crop = coord_map_from_to(n.crop, n.data)
        assert axis == 1 and a_crop == a and b_crop == b + offset
    assert crop_params(L.Crop(n.up, n.data).fn) == (2, np.array([0]))


def test_crop_helper_builds_the_crop_that_aligns_two_tops():
    n = fcn_like(up_pad=0, pad=5)            # upsampled output shifted by -5 from the data
    cropped = crop(n.up, n.data)
    assert cropped.fn.type_name == 'Crop' and cropped.fn.inputs == (n.up, n.data)
    assert cropped.fn.params['crop_param'] == dict(axis=2, offset=[5])
    assert all(type(v) is int for v in cropped.fn.params['crop_param']['offset'])
    # the crop's own map brings the cropped top onto the data exactly
    n.cropped = cropped
    axis, a, b = coord_map_from_to(n.cropped, n.data)
    assert a == 1 and b == 0
    # anisotropic pads give one offset per axis
    n = fcn_like(kernel=[3, 3], pad=[2, 6])
    assert crop(n.up, n.data).fn.params['crop_param']['offset'] == [2, 6]


def test_crop_refuses_what_no_crop_can_align():
    n = fcn_like(pool=3, up=2)
    with pytest.raises(AssertionError, match='scale mismatch'):
        crop(n.up, n.data)
    n = fcn_like(up_pad=10)                  # output inside the input: a negative offset
    with pytest.raises(AssertionError, match='negative offset'):
        crop(n.up, n.data)
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 10, 10]))
    n.conv = L.Convolution(n.data, num_output=1, kernel_size=2, pad=1)  # half a pixel off
    with pytest.raises(AssertionError, match='noninteger offset'):
        crop(n.conv, n.data)


def test_unconnected_tops_raise_runtime_error():
    n = fcn_like()
    n.ip = L.InnerProduct(n.up, num_output=10)
    with pytest.raises(RuntimeError, match='connected by spatial layers'):
        coord_map_from_to(n.ip, n.data)
    with pytest.raises(UndefinedMapException):
        coord_map(n.ip.fn)
    with pytest.raises(RuntimeError):
        coord_map_from_to(n.aux, n.data)     # two inputs: no common ancestor


def test_maps_along_different_axes_do_not_compose():
    with pytest.raises(AxisMismatchException):
        compose((1, 2, 0), (2, 1, 1))
    assert compose((None, 1, 0), (3, 2, 1)) == (3, 2, 1)
    assert compose((3, 2, 1), (None, 1, 0)) == (3, 2, 1)


@pytest.mark.parametrize('a,b', [(2.0, 1.5), (0.25, -0.375), (3.0, -2.0)])
def test_inverse_undoes_a_map(a, b):
    for x in (-3.0, 0.0, 7.5):
        _, a2, b2 = compose(inverse((1, a, b)), (1, a, b))
        assert a2 * x + b2 == pytest.approx(x)


def test_conv_params_read_the_message_or_the_keywords_and_count_dilation():
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 10, 10]))
    by_keywords = L.Convolution(n.data, num_output=1, kernel_size=3, dilation=2, stride=2).fn
    by_message = L.Convolution(n.data, convolution_param=dict(num_output=1, kernel_size=3,
                                                                dilation=2, stride=2)).fn
    for fn in (by_keywords, by_message):
        axis, stride, extent, pad = conv_params(fn)
        assert axis == 1 and stride.tolist() == [2] and extent.tolist() == [5]
        assert pad.tolist() == [0]
    legacy = L.Convolution(n.data, num_output=1, kernel_h=3, kernel_w=3).fn
    with pytest.raises(AssertionError, match='kernel_h'):
        conv_params(legacy)
    pooled = L.Pooling(n.data, pooling_param=dict(kernel_size=4, stride=4)).fn
    assert coord_map(pooled) == pytest.approx((1, [0.25], [-0.375]))
    with pytest.raises(UndefinedMapException):
        coord_map(L.Pooling(n.data, global_pooling=True).fn)


def test_module_is_reachable_as_pycaffe_names_it():
    assert caffe.coord_map.coord_map_from_to is coord_map_from_to
    names = set(caffe.coord_map.__all__)
    assert {'coord_map_from_to', 'crop', 'compose', 'inverse', 'coord_map', 'conv_params',
            'crop_params', 'PASS_THROUGH_LAYERS', 'UndefinedMapException',
            'AxisMismatchException'} <= names
    assert list(itertools.chain(caffe.coord_map.PASS_THROUGH_LAYERS)).count('ReLU') == 1
