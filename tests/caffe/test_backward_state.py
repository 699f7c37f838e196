"""What layers keep for backward: only where their net runs backward through them.

A deploy net (no loss) runs no backward, so its MAX Pooling, LRN, ROIPooling, SPP and in-place
Scale layers keep no argmax, scale, power or input copy: their tops must be those of the same
net with force_backward (which keeps them), bit for bit, on sizes that put every kernel on all
its threads. Blobs and kept arrays come from lasting_zeros."""
import mmap

import numpy as np
import pytest

from google.protobuf import text_format

import caffe
from caffe.blob import MAPPED_MIN_BYTES, lasting_zeros
from caffe.layer import layer_class
from caffe.proto import caffe_pb2

SHAPE = (2, 16, 66, 70)          # large enough for every kernel below to use all its threads
ROIS = 20

NET = '''
layer { name: "in" type: "Input" top: "data" top: "rois"
        input_param { shape { dim: 2 dim: 16 dim: 66 dim: 70 } shape { dim: %d dim: 5 } } }
layer { name: "within" type: "LRN" bottom: "data" top: "within"
        lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL } }
layer { name: "across" type: "LRN" bottom: "within" top: "across"
        lrn_param { local_size: 5 alpha: 0.5 beta: 0.75 } }
layer { name: "pool" type: "Pooling" bottom: "across" top: "pool"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "masked" type: "Pooling" bottom: "across" top: "masked" top: "mask"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "roi" type: "ROIPooling" bottom: "pool" bottom: "rois" top: "roi"
        roi_pooling_param { pooled_h: 3 pooled_w: 3 spatial_scale: 0.5 } }
layer { name: "spp" type: "SPP" bottom: "across" top: "spp" spp_param { pyramid_height: 2 } }
layer { name: "scale" type: "Scale" bottom: "spp" top: "spp"
        scale_param { bias_term: true filler { type: "constant" value: 0.5 } } }
''' % ROIS

KEPT = {'within': ['power'], 'across': ['scale'], 'pool': ['argmax'], 'roi': ['argmax'],
        'scale': ['kept_input']}     # Scale in place keeps its input for the scale's gradient


def _nets(tmp_path):
    deploy = tmp_path / 'deploy.prototxt'
    deploy.write_text(NET)
    forced = tmp_path / 'forced.prototxt'
    forced.write_text('force_backward: true\n' + NET)
    return caffe.Net(str(deploy), caffe.TEST), caffe.Net(str(forced), caffe.TEST)


def _inputs():
    r = np.random.RandomState(3)
    data = r.randn(*SHAPE).astype(np.float32)
    x1 = r.randint(0, 50, ROIS)
    y1 = r.randint(0, 40, ROIS)
    rois = np.stack([r.randint(0, 2, ROIS), x1, y1, x1 + r.randint(0, 40, ROIS),
                     y1 + r.randint(0, 40, ROIS)], 1).astype(np.float32)
    return data, rois


def test_deploy_net_keeps_nothing_and_gives_the_same_tops(tmp_path):
    deploy, forced = _nets(tmp_path)
    data, rois = _inputs()
    out_deploy = {k: v.copy() for k, v in deploy.forward(data=data, rois=rois).items()}
    forced.forward(data=data, rois=rois)
    for name in ('within', 'across', 'pool', 'masked', 'mask', 'roi', 'spp'):
        np.testing.assert_array_equal(deploy.blobs[name].data, forced.blobs[name].data,
                                      err_msg=name)
    assert set(out_deploy) == {'mask', 'masked', 'roi', 'spp'}
    # SPP's inner pooling layers follow what the net said of SPP.
    assert not any('argmax' in vars(p) for p in deploy.layer_dict['spp'].pools)
    assert all('argmax' in vars(p) for p in forced.layer_dict['spp'].pools)
    for name, kept in KEPT.items():
        for attr in kept:
            assert vars(deploy.layer_dict[name]).get(attr) is None, (name, attr)
            assert vars(forced.layer_dict[name])[attr].size == \
                forced.blobs[name if name != 'scale' else 'spp'].count
    # A mask top needs the indices whatever the net's backward.
    assert 'argmax' in vars(deploy.layer_dict['masked'])
    assert not any(deploy._layer_need_backward)
    assert all(forced._layer_need_backward)


def test_net_backward_skips_them_and_a_direct_call_says_why(tmp_path):
    deploy, _ = _nets(tmp_path)
    data, rois = _inputs()
    deploy.forward(data=data, rois=rois)
    deploy.backward()                   # Caffe's Net::Backward runs no layer that needs none
    i = list(deploy._layer_names).index('pool')
    with pytest.raises(caffe.CaffeError, match=r"Pooling layer 'pool'.*argmax.*force_backward"):
        deploy.layers[i].backward(deploy.top_vecs[i], [True], deploy.bottom_vecs[i])


def test_forced_backward_equals_the_layers_own(tmp_path):
    # The kept state is the one backward reads: a net with force_backward gives the same data
    # gradient as the layer run alone (which keeps everything, as a layer outside a net does).
    _, forced = _nets(tmp_path)
    data, rois = _inputs()
    forced.forward(data=data, rois=rois)
    dy = np.random.RandomState(4).randn(*forced.blobs['within'].shape).astype(np.float32)
    i = list(forced._layer_names).index('within')
    forced.blobs['within'].diff[...] = dy
    forced.layers[i].backward(forced.top_vecs[i], [True], forced.bottom_vecs[i])
    param = caffe_pb2.NetParameter()
    text_format.Merge(NET, param)
    lp = [lp for lp in param.layer if lp.name == 'within'][0]
    alone = layer_class(lp)(lp, caffe.TEST)
    bottom, top = [caffe.Blob(SHAPE)], [caffe.Blob()]
    bottom[0].data[...] = data
    alone.setup(bottom, top)
    alone.reshape(bottom, top)
    alone.forward(bottom, top)
    top[0].diff[...] = dy
    alone.backward(top, [True], bottom)
    np.testing.assert_array_equal(forced.blobs['data'].diff, bottom[0].diff)


def _mapped(a):
    # numpy keeps a memoryview of the buffer it was given as the array's base.
    while isinstance(a, np.ndarray):
        a = a.base
    return isinstance(a, memoryview) and isinstance(a.obj, mmap.mmap)


@pytest.mark.parametrize('shape,dtype', [((3, 5), np.float32), ((MAPPED_MIN_BYTES,), np.int32),
                                         ((4, MAPPED_MIN_BYTES // 8), np.float32)])
def test_lasting_zeros(shape, dtype):
    a = lasting_zeros(shape, dtype)
    assert a.shape == shape and a.dtype == dtype and not a.any()
    assert _mapped(a) == (a.nbytes >= MAPPED_MIN_BYTES)
    a[...] = 7
    assert (a == 7).all()


def test_large_blobs_are_mapped():
    small, large = caffe.Blob((4, 4)), caffe.Blob((2, MAPPED_MIN_BYTES))
    assert not _mapped(small.data) and _mapped(large.data) and _mapped(large.diff)
    large.data[...] = 2
    assert large.data.sum() == 2 * large.count and not large.diff.any()


def test_a_refused_mapping_is_a_memory_error(monkeypatch):
    # As np.zeros reports an allocation the system refuses (the fuzzers allow MemoryError).
    import errno
    import caffe.blob

    def refuse(*args):
        raise OSError(errno.ENOMEM, 'Cannot allocate memory')
    monkeypatch.setattr(caffe.blob.mmap, 'mmap', refuse)
    with pytest.raises(MemoryError, match=r'Unable to allocate 0.0\d+ GiB .*\(4, 131072\)'):
        lasting_zeros((4, MAPPED_MIN_BYTES // 2))
    assert lasting_zeros((3,)).shape == (3,)      # below the threshold: malloc's, as before
