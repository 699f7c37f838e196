"""Helpers for layer tests: build one layer from prototxt text, and Caffe's finite-difference
gradient check (the idea of Caffe's GradientChecker: perturb one input at a time and compare
the change of an objective with the analytic gradient from backward), with its exhaustive
variant (every top element alone as the objective: the whole Jacobian) and its element-wise one
(top element i against bottom element i only, for layers whose output i depends on input i
alone)."""
import numpy as np
from google.protobuf import text_format

from .blob import Blob
from .layer import TRAIN, layer_class
from .proto import caffe_pb2


def layer_param(text):
    return text_format.Parse(text, caffe_pb2.LayerParameter())


def build_layer(text, bottom_arrays, phase=TRAIN, num_tops=None):
    """Creates a layer from LayerParameter text (or a LayerParameter) and, as the Net does,
    checks its blob counts and runs setup + reshape on bottoms made from the given arrays.
    Returns (layer, bottom, top); tops are as many as the parameter names (or num_tops)."""
    param = text if isinstance(text, caffe_pb2.LayerParameter) else layer_param(text)
    layer = layer_class(param)(param, phase)
    bottom = []
    for a in bottom_arrays:
        a = np.asarray(a, dtype=np.float32)
        b = Blob(a.shape)
        b.data[...] = a
        bottom.append(b)
    n = num_tops if num_tops is not None else len(param.top)
    top = [Blob() for _ in range(n)]
    layer.check_blob_counts(bottom, top)
    layer.setup(bottom, top)
    if not layer.param_propagate_down:
        layer.param_propagate_down = [True] * len(layer.blobs)
    layer.reshape(bottom, top)
    return layer, bottom, top


def run_forward(layer, bottom, top):
    layer.reshape(bottom, top)
    layer.forward(bottom, top)


def write_datum_db(path, records, backend='lmdb'):
    """A database for data-layer tests and fuzzing: `records` (Datum messages or raw bytes)
    stored under keys '00000000', '00000001', ... in an LMDB or LevelDB folder at path, written
    with the lmdb or plyvel package directly, so tests of caffe.db's reading do not rest on its
    writing. Returns path."""
    values = [r if isinstance(r, bytes) else r.SerializeToString() for r in records]
    keys = [b'%08d' % i for i in range(len(values))]
    if backend == 'lmdb':
        import lmdb
        size = 1 << 20
        size += 4 * sum(len(v) + 64 for v in values)
        with lmdb.open(path, map_size=size) as env, env.begin(write=True) as txn:
            for key, value in zip(keys, values):
                txn.put(key, value)
    elif backend == 'leveldb':
        import plyvel
        db = plyvel.DB(path, create_if_missing=True, error_if_exists=True)
        with db.write_batch() as batch:
            for key, value in zip(keys, values):
                batch.put(key, value)
        db.close()
    else:
        raise ValueError('backend %r: lmdb or leveldb' % backend)
    return path


def mnist_like_digits(count, seed=0, size=28):
    """count MNIST-like images: a digit 0-9 drawn white on black with OpenCV's Hershey font,
    at a random place, size and stroke, slightly blurred, with a little noise. Returns (images
    (count, 1, size, size) uint8, labels (count,) int), for data-layer tests and examples that
    need a learnable data set without downloading MNIST."""
    import cv2
    rs = np.random.RandomState(seed)
    labels = rs.randint(0, 10, size=count)
    images = np.zeros((count, 1, size, size), np.uint8)
    for image, label in zip(images, labels):
        canvas = np.zeros((size, size), np.uint8)
        scale = rs.uniform(0.6, 0.9) * size / 28
        thickness = int(rs.randint(1, 3))
        (w, h), _ = cv2.getTextSize(str(label), cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        x = int(rs.randint(0, max(size - w, 1)))
        y = int(rs.randint(h, max(size, h + 1)))
        cv2.putText(canvas, str(label), (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thickness,
                    cv2.LINE_AA)
        canvas = cv2.GaussianBlur(canvas.astype(np.float32), (3, 3), 0.5)
        canvas += rs.normal(0, 8, canvas.shape)
        image[0] = np.clip(canvas, 0, 255).astype(np.uint8)
    return images, labels


def check_gradient(layer, bottom, top, check_bottom=None, top_weights=None, stepsize=1e-2,
                   threshold=1e-3, kink=None, kink_range=-1.0, check_params=True, seed=1701,
                   max_checks=None):
    """Compares the analytic gradients of layer (bottom diffs and, with check_params, parameter
    diffs) with central finite differences of the objective  sum_k w_k * top_k  (w random and
    fixed, or top_weights). Raises AssertionError naming the first element that disagrees.

    check_bottom: indices of bottoms to check (default all). kink/kink_range: skip elements whose
    analytic check would straddle a non-differentiable point (ReLU at 0, max ties), as Caffe's
    checker does. max_checks: check at most that many randomly chosen elements per blob.
    """
    r = np.random.RandomState(seed)
    run_forward(layer, bottom, top)
    if top_weights is None:
        top_weights = [r.uniform(-1, 1, size=t.shape).astype(np.float32) for t in top]

    def objective():
        run_forward(layer, bottom, top)
        return sum(float(np.dot(t.data.ravel().astype(np.float64), w.ravel()))
                   for t, w in zip(top, top_weights))

    check_bottom = range(len(bottom)) if check_bottom is None else check_bottom
    blobs = [(bottom[i], 'bottom[%d]' % i) for i in check_bottom]
    if check_params:
        blobs += [(p, 'param[%d]' % i) for i, p in enumerate(layer.blobs)]

    # Analytic gradients.
    run_forward(layer, bottom, top)
    # Zero first: a top may share its diff with a bottom (Reshape, in-place layers).
    for p in layer.blobs:
        p.diff[...] = 0
    for b in bottom:
        b.diff[...] = 0
    for t, w in zip(top, top_weights):
        t.diff[...] = w
    propagate_down = [i in check_bottom for i in range(len(bottom))]
    layer.backward(top, propagate_down, bottom)
    analytic = [b.diff.copy() for b, _ in blobs]

    for (blob, label), grad in zip(blobs, analytic):
        flat_idx = np.arange(blob.count)
        if max_checks is not None and blob.count > max_checks:
            flat_idx = r.choice(blob.count, max_checks, replace=False)
        for k in flat_idx:
            idx = np.unravel_index(k, blob.shape)
            x = float(blob.data[idx])
            if kink is not None and abs(x - kink) <= kink_range:
                continue
            blob.data[idx] = x + stepsize
            pos = objective()
            blob.data[idx] = x - stepsize
            neg = objective()
            blob.data[idx] = x
            numeric = (pos - neg) / (2.0 * stepsize)
            a = float(grad[idx])
            scale = max(abs(a), abs(numeric), 1.0)
            if abs(a - numeric) > threshold * scale:
                raise AssertionError('%s %s gradient at %s: analytic %.6g, numeric %.6g'
                                     % (layer.type, label, idx, a, numeric))
    run_forward(layer, bottom, top)


def check_gradient_exhaustive(layer, bottom, top, **kwargs):
    """Caffe's CheckGradientExhaustive: check_gradient once for every element of every top, with
    that element alone as the objective. (For a loss layer's scalar top this is the plain check
    with weight 1.) Keyword arguments are check_gradient's, top_weights excepted."""
    run_forward(layer, bottom, top)
    shapes = [t.shape for t in top]
    for j, shape in enumerate(shapes):
        for k in range(int(np.prod(shape, dtype=np.int64))):
            weights = [np.zeros(s, np.float32) for s in shapes]
            weights[j].flat[k] = 1
            check_gradient(layer, bottom, top, top_weights=weights, **kwargs)


def check_gradient_eltwise(layer, bottom, top, stepsize=1e-2, threshold=1e-3, kink=None,
                           kink_range=-1.0):
    """Caffe's CheckGradientEltwise, for a layer without parameters whose top[0] element i
    depends on element i of each bottom only: for each i, with top[0][i] alone as the objective,
    backward must give 0 at every other bottom element and the central difference at element i.
    Raises AssertionError naming the first element that disagrees."""
    if len(layer.blobs):
        raise ValueError('check_gradient_eltwise: %s layer has parameters' % layer.type)
    run_forward(layer, bottom, top)
    n = top[0].count
    for b in bottom:
        if b.count != n:
            raise ValueError('check_gradient_eltwise: bottom %s and top %s differ in size'
                             % (b.shape, top[0].shape))
    for i in range(n):
        run_forward(layer, bottom, top)
        for b in bottom:
            b.diff[...] = 0
        for t in top:
            t.diff[...] = 0
        top[0].diff.flat[i] = 1
        layer.backward(top, [True] * len(bottom), bottom)
        analytic = [b.diff.reshape(-1).copy() for b in bottom]
        for j, (b, grad) in enumerate(zip(bottom, analytic)):
            others = np.delete(grad, i)
            if others.size and np.abs(others).max() > threshold:
                k = int(np.argmax(np.abs(np.where(np.arange(n) == i, 0, grad))))
                raise AssertionError('%s bottom[%d] gradient of top element %d at element %d: '
                                     '%.6g, not 0' % (layer.type, j, i, k, grad[k]))
            x = float(b.data.flat[i])
            if kink is not None and abs(x - kink) <= kink_range:
                continue
            b.data.flat[i] = x + stepsize
            run_forward(layer, bottom, top)
            pos = float(top[0].data.flat[i])
            b.data.flat[i] = x - stepsize
            run_forward(layer, bottom, top)
            neg = float(top[0].data.flat[i])
            b.data.flat[i] = x
            numeric = (pos - neg) / (2.0 * stepsize)
            a = float(grad[i])
            if abs(a - numeric) > threshold * max(abs(a), abs(numeric), 1.0):
                raise AssertionError('%s bottom[%d] gradient at element %d (x = %g): analytic '
                                     '%.6g, numeric %.6g' % (layer.type, j, i, x, a, numeric))
    run_forward(layer, bottom, top)
