#!/usr/bin/env python3
"""CPU speed and memory of the runtime on whole nets, against the bare matrix products of the
same shapes (the floor).

Cases (each runs in its own child process, so that its peak memory is its own):
  test:VGG16, test:ZF    fast_rcnn.test.im_detect on one HEIGHTxWIDTH image (default 600x1000,
                         scale 1) through models/pascal_voc/NET/faster_rcnn_alt_opt/
                         faster_rcnn_test.pt, RPN proposals (cfg.TEST.RPN_POST_NMS_TOP_N, 300)
  train:VGG16, train:ZF  one SGD iteration (solver.step(1), iter_size 1) of
                         models/pascal_voc/NET/faster_rcnn_end2end on a HEIGHTxWIDTH image
  train:TOY              SGD iterations of models/toy/TOY/faster_rcnn_end2end over an epoch of a
                         generated toy dataset (experiments/cfgs/toy.yml sizes); a run is the
                         whole epoch, so every run sees the same images
Weights are random (MSRA-scaled Gaussians, zero biases), the data layer reads a generated toy
dataset (datasets.toy) in a temporary folder; nothing is read from or written to data/ or output/.

Every layer object is timed from outside (its forward, backward and reshape wrapped), and so are
Net.forward_from_to/backward_from_to, Solver.apply_update and Net.clear_param_diffs, so one
run splits into: time per layer type; Python layers (data layer, RPN target and proposal layers);
reshape calls; Net bookkeeping (the Net's own loops, loss sums, input copies); the solver update;
and the driver (im_detect's image preparation and box decoding, the rest of solver.step).

The floor replays, with np.matmul on preallocated float32 arrays, every matrix product the run's
Convolution and InnerProduct layers need: forward W @ col per group, and in training the weight
gradient dY @ col^T and the data gradient W^T @ dY wherever that layer's backward computes them
(following the Net's need-backward pruning and lr_mult 0 parameters); for a convolution that runs
Winograd's algorithm (caffe/layers/conv_algorithm.py), its own products instead (a*a products
per pass, 2.25 or 4 times fewer multiplications). The floor runs them on numpy's OpenBLAS with
one thread per core (the runtime holds it at one thread, caffe.gemm; the floor lets it run its
own threads). The same products through caffe.gemm (cut into parts by their shape, the result
independent of the thread count) are timed too: `parts s`, and parts / floor is what the fixed
parts cost the bare products. Runs of the net and of the floors alternate; each is the best
(minimum) of --repeat runs after a warm-up, and the load average is recorded with each case: the
machine may be shared, so compare ratios (measured in one process), not absolute times.

Since the floor of a faster algorithm moves, every convolution is also printed with the FLOPs of
the algorithm it ran (and those of im2col + GEMM, the direct count) against the machine's
measured float32 peak (utils/cpu_peak.pyx: independent fused multiply-adds in the widest vectors
the CPU has, on every thread; by the wall clock, and by the threads' own CPU time, which a
shared machine does not dilute) and numpy's BLAS's measured sgemm rate.

Columns: total s (best run), floor s, ratio = total / floor; peak ms = the convolutions' FLOPs at
the measured peak (CPU time), conv / peak = their time over it; outside = share of the run spent
outside the built-in layers' forward/backward (Python layers, reshape, Net bookkeeping, solver
update, driver); peak RSS (VmHWM while the net ran, before the floor allocates anything), the
RSS before the net was built, and the sum of the net's blob and parameter bytes (data; in
training also diffs and the solver's history), with (peak - before) / sum.

Concurrent jobs (--concurrent N ...): N copies of a case (default train:TOY) started at once,
each a process of its own that builds its net, warms up, and then, when all are ready, runs the
case --runs times in a row; each job's wall time is divided by that of one job alone, measured
first and last in the same session (their mean; and, with --beside-busy-loop, one job beside a
single-threaded busy loop). CPU time per job (all its threads) over the solo job's shows work lost to spinning
whatever the load; context switches (voluntary: sleeps, involuntary: preemptions) are counted
too. --lib DIR runs the jobs on another checkout's lib/ (built), to compare before and after;
--trials T measures the whole table T times (on a shared machine, compare trials).

    python3 tools/benchmark_cpu.py                       # every case, best of 3
    python3 tools/benchmark_cpu.py --cases test:VGG16 --repeat 5 --result bench.json
    python3 tools/benchmark_cpu.py --concurrent 2 3 4 --beside-busy-loop --result jobs.json
"""
import argparse
import collections
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import _common  # noqa: F401  (lib/ on sys.path; before numpy, as caffe/blas_threads.py asks)
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = ('test:VGG16', 'test:ZF', 'train:VGG16', 'train:ZF', 'train:TOY')
TEST_NETS = {net: 'models/pascal_voc/%s/faster_rcnn_alt_opt/faster_rcnn_test.pt' % net
             for net in ('VGG16', 'ZF')}
SOLVERS = {'VGG16': 'models/pascal_voc/VGG16/faster_rcnn_end2end/solver.prototxt',
           'ZF': 'models/pascal_voc/ZF/faster_rcnn_end2end/solver.prototxt',
           'TOY': 'models/toy/TOY/faster_rcnn_end2end/solver.prototxt'}
TRAIN_CFGS = {'VGG16': ['experiments/cfgs/faster_rcnn_end2end.yml'],
              'ZF': ['experiments/cfgs/faster_rcnn_end2end.yml'],
              'TOY': ['experiments/cfgs/faster_rcnn_end2end.yml', 'experiments/cfgs/toy.yml']}
TOY_EPOCH = 10  # toy images per run of train:TOY
# Images the VGG16/ZF training cases draw from. The data layer reads each minibatch's images
# while the net runs the one before, except at the start of an epoch (after the shuffle): with
# 8 images, 7 iterations in 8 are prefetched ones (in real training, all but one an epoch).
TRAIN_IMAGES = 8
THREAD_VARIABLES = ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS',
                    'OMP_WAIT_POLICY', 'GOMP_SPINCOUNT', 'OPENBLAS_THREAD_TIMEOUT')


# Memory ------------------------------------------------------------------------------------------

def _status_kb(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    return 0


def rss_mb():
    return _status_kb('VmRSS') / 1024.0


def peak_rss_mb():
    return _status_kb('VmHWM') / 1024.0


def reset_peak_rss():
    """Sets VmHWM back to the current RSS (Linux clear_refs 5); False where not allowed."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def _buffer_bytes(arrays):
    """Bytes of the distinct buffers among arrays (shared blobs, in-place tops counted once)."""
    seen = {}
    for a in arrays:
        if a.size:
            seen[a.__array_interface__['data'][0]] = a.nbytes
    return sum(seen.values())


def net_bytes(net, training, solver=None):
    """Blob and parameter bytes of a net: data only for testing; data, diffs and the solver's
    history for training."""
    blobs = list(net.blobs.values())
    params = [b for layer in net.layers for b in layer.blobs]
    arrays = [b.data for b in blobs + params]
    if training:
        arrays += [b.diff for b in blobs + params]
        arrays += [h.data for h in getattr(solver, 'history', [])]
    return _buffer_bytes(arrays)


# Instrumentation --------------------------------------------------------------------------------

class Recorder:
    """Times every layer call of a net and records its matrix products."""

    def __init__(self, net):
        self.net = net
        self.times = collections.defaultdict(float)   # (kind, key) -> seconds
        self.calls = collections.Counter()
        self.gemms = []                               # (layer type, m, n, k, a_t, b_t)
        self.gemm_layers = []                         # the layer name of each of self.gemms
        self.convolutions = {}                        # name -> algorithm and FLOPs as run
        self.recording = False
        self.names = {id(layer): name for layer, name in zip(net.layers, net._layer_names)}
        for i, layer in enumerate(net.layers):
            key = self._key(i, layer)
            self._wrap(layer, 'forward', key, self._record_forward)
            self._wrap(layer, 'backward', key, self._record_backward)
            # A Python layer's reshape is part of that layer's cost; the built-in ones' are Net
            # bookkeeping (Caffe reshapes every layer before every forward pass).
            self._wrap(layer, 'reshape', key if key[0] == 'python' else ('reshape', 'all'), None)
        for name in ('forward_from_to', 'backward_from_to', 'forward', 'clear_param_diffs'):
            self._wrap(net, name, ('net', name), None)

    def _name(self, layer):
        return self.names[id(layer)]

    def _key(self, i, layer):
        name = self.net._layer_names[i]
        if layer.layer_param.type == 'Python':
            return ('python', '%s (%s)' % (name, type(layer).__name__))
        return ('layer', layer.type, name)

    def _wrap(self, obj, verb, key, record):
        original = getattr(obj, verb)
        times, calls = self.times, self.calls
        full_key = key if key[0] in ('net', 'reshape', 'solver') else key + (verb,)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            result = original(*args, **kwargs)
            times[full_key] += time.perf_counter() - start
            calls[full_key] += 1
            if record is not None and self.recording:
                record(obj, *args)
            return result
        setattr(obj, verb, timed)

    def reset(self):
        self.times.clear()
        self.calls.clear()

    # The matrix products each layer's CPU code stands for (Caffe's GEMMs, or Winograd's).
    def _add(self, layer, name, product, direct=None):
        self.gemms.append((layer.type,) + product)
        self.gemm_layers.append(name)
        if layer.type == 'Convolution':
            conv = self.convolutions.setdefault(name, {
                'algorithm': layer.winograd.name if layer.winograd is not None else 'im2col',
                'gflop': 0.0, 'direct_gflop': 0.0})
            m, n, k = product[:3]
            conv['gflop'] += 2e-9 * m * n * k
            conv['direct_gflop'] += 2e-9 * (direct if direct is not None else m * n * k)

    def _record_forward(self, layer, bottom, top):
        name = self._name(layer)
        if getattr(layer, 'winograd', None) is not None:
            for b, t in zip(bottom, top):
                products = _winograd_products(layer, b, t)
                direct = direct_macs(layer, t) / len(products['forward'])
                for m, n, k in products['forward']:
                    self._add(layer, name, (m, n, k, False, False), direct)
            return
        for _, m, n, k in _layer_gemm_dims(layer, top):
            self._add(layer, name, (m, n, k, False, False))

    def _record_backward(self, layer, top, propagate_down, bottom):
        want_w = bool(layer.param_propagate_down and layer.param_propagate_down[0])
        name = self._name(layer)
        if getattr(layer, 'winograd', None) is not None:
            for i, (b, t) in enumerate(zip(bottom, top)):
                products = _winograd_products(layer, b, t)
                macs = direct_macs(layer, t)
                if want_w:  # dW'[xi] (K, C) = dY'[xi] (K, tiles) @ X'[xi]^T (tiles, C)
                    for m, n, k in products['weights']:
                        self._add(layer, name, (m, n, k, False, True),
                                  macs / len(products['weights']))
                if propagate_down[i]:  # dX'[xi] (C, tiles) = U'[xi] (C, K) @ dY'[xi]
                    for m, n, k in products['data']:
                        self._add(layer, name, (m, n, k, False, False),
                                  macs / len(products['data']))
            return
        for i, m, n, k in _layer_gemm_dims(layer, top):
            if want_w:  # dW (m, k) = dY (m, n) @ col^T (n, k)
                self._add(layer, name, (m, k, n, False, True))
            if propagate_down[i]:  # dcol (k, n) = W^T (k, m) @ dY (m, n)
                self._add(layer, name, (k, n, m, True, False))


def _layer_gemm_dims(layer, top):
    """(bottom index, m, n, k) of each forward product W (m, k) @ X (k, n) of a Convolution or
    InnerProduct layer, one per group and bottom; [] for other layers."""
    if layer.type == 'Convolution':
        g = layer.group
        kdim = layer.channels // g * layer.kernel[0] * layer.kernel[1]
        dims = []
        for i, t in enumerate(top):
            num, out, h, w = t.shape
            dims += [(i, out // g, num * h * w, kdim)] * g
        return dims
    if layer.type == 'InnerProduct':
        return [(0, layer.num_output, layer.M, layer.K)]
    return []


def _winograd_products(layer, bottom, top):
    return layer.winograd.products(bottom.shape[0], bottom.shape[2:], top.shape[2:])


def forward_products(layer, bottom, top):
    """(m, n, k) of each product of a Convolution or InnerProduct layer's forward pass as it
    runs it (im2col's per group, or Winograd's); [] for other layers."""
    if getattr(layer, 'winograd', None) is not None:
        return [p for b, t in zip(bottom, top) for p in _winograd_products(layer, b, t)['forward']]
    return [(m, n, k) for _, m, n, k in _layer_gemm_dims(layer, top)]


def direct_macs(layer, top):
    """Multiply-adds of a convolution's pass computed directly (im2col + GEMM)."""
    num, out, h, w = top.shape
    return num * out * h * w * (layer.channels // layer.group) * layer.kernel[0] * layer.kernel[1]


# The floor --------------------------------------------------------------------------------------

def openblas_threads(count):
    """Sets numpy's OpenBLAS to count threads (caffe.gemm holds it at one, and sets it back to
    one before its own products); False where numpy's BLAS is no OpenBLAS the runtime binds."""
    import ctypes
    from caffe import blas_threads
    found = blas_threads.numpy_openblas()
    if found is None:
        return False
    int_type = ctypes.c_int64 if found[4] else ctypes.c_int
    ctypes.CFUNCTYPE(None, int_type)(found[3])(count)
    return True


class Floor:
    """The recorded products, replayed on preallocated arrays (one buffer per operand role,
    sized for the largest product): with numpy's OpenBLAS on its own threads (run), or through
    caffe.gemm (run(parts=True))."""

    def __init__(self, gemms, names=None):
        self.gemms = list(gemms)
        self.names = list(names) if names is not None else [None] * len(self.gemms)
        sizes = [0, 0, 0]
        for _, m, n, k, _, _ in self.gemms:
            for i, s in enumerate((m * k, k * n, m * n)):
                sizes[i] = max(sizes[i], s)
        # Values do not change BLAS speed as long as they are normal floats.
        self.buffers = [np.full(max(s, 1), 0.01, np.float32) for s in sizes]

    def run(self, by_layer=None, parts=False):
        """(seconds, seconds by layer type); with a dict by_layer, also adds each named
        layer's seconds to it. parts: through caffe.gemm, else on OpenBLAS's own threads."""
        from caffe.gemm import matmul
        if not parts:  # as many threads as the runtime's own pool
            from caffe.blas_threads import available_cores
            openblas_threads(int(os.environ.get('OMP_NUM_THREADS') or available_cores()))
        by_type = collections.defaultdict(float)
        a_buf, b_buf, c_buf = self.buffers
        for (kind, m, n, k, a_t, b_t), name in zip(self.gemms, self.names):
            a = a_buf[:m * k].reshape((k, m) if a_t else (m, k))
            b = b_buf[:k * n].reshape((n, k) if b_t else (k, n))
            c = c_buf[:m * n].reshape(m, n)
            start = time.perf_counter()
            if parts:
                matmul(a.T if a_t else a, b.T if b_t else b, c)
            else:
                np.matmul(a.T if a_t else a, b.T if b_t else b, out=c)
            seconds = time.perf_counter() - start
            by_type[kind] += seconds
            if by_layer is not None and name is not None:
                by_layer[name] = by_layer.get(name, 0.0) + seconds
        if not parts:
            openblas_threads(1)
        return sum(by_type.values()), dict(by_type)


def gemm_flops(gemms):
    return sum(2.0 * m * n * k for _, m, n, k, _, _ in gemms)


def machine_peak():
    """The machine's measured float32 rates: the FMA loop's peak (utils.cpu_peak) and a large
    sgemm through numpy's BLAS, both on all threads."""
    import caffe.layers  # noqa: F401  (sets the OpenMP wait policy before cpu_peak loads libgomp)
    from utils.cpu_peak import fp32_peak
    peak = fp32_peak()
    n = 2048
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    c = np.empty((n, n), np.float32)
    # OpenBLAS on its own threads, as the floor runs it (the runtime holds it at one).
    openblas_threads(peak['threads'])
    np.matmul(a, b, out=c)
    wall = cpu = float('inf')
    for _ in range(3):
        start, start_cpu = time.perf_counter(), time.process_time()
        np.matmul(a, b, out=c)
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    openblas_threads(1)
    peak['sgemm_gflops'] = 2e-9 * n ** 3 / wall
    # CPU time summed over BLAS's threads: the rate per core, times the threads the peak used.
    peak['sgemm_gflops_cpu'] = 2e-9 * n ** 3 / cpu * peak['threads']
    return peak


# Cases ------------------------------------------------------------------------------------------

def randomize(net, seed=0):
    """MSRA-scaled Gaussian weights and zero biases: activations keep their scale through deep
    stacks (no denormals, no overflow), whatever fillers the prototxt names. Box regressors get
    the release's std 0.001 (scores 0.01), so that proposals stay near their anchors and NMS
    keeps as many as a trained net's (cfg.TEST.RPN_POST_NMS_TOP_N)."""
    rng = np.random.default_rng(seed)
    for name, layer in zip(net._layer_names, net.layers):
        if layer.layer_param.type == 'Python':
            continue
        for i, blob in enumerate(layer.blobs):
            if i == 0 and len(blob.shape) > 1:
                fan_in = int(np.prod(blob.shape[1:]))
                std = 0.001 if 'bbox_pred' in name else 0.01 if 'cls_score' in name else \
                    np.sqrt(2.0 / fan_in)
                blob.data[...] = rng.standard_normal(blob.shape, dtype=np.float32) \
                    * np.float32(std)
            else:
                blob.data[...] = 0


def make_test_case(net_name, args, workdir):
    from fast_rcnn.experiment import test_experiment
    from fast_rcnn.test import im_detect
    # The image goes in at scale 1: its short side is the test scale.
    experiment = _common.load_cfg([], ['TEST.SCALES', '(%d,)' % args.height,
                                       'TEST.MAX_SIZE', str(max(args.height, args.width)),
                                       'TEST.RPN_POST_NMS_TOP_N', str(args.proposals)])
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(args.height, args.width, 3), dtype=np.uint8)
    before = rss_mb()
    reset_peak_rss()
    with _quiet():
        net = test_experiment(experiment, os.path.join(ROOT, TEST_NETS[net_name]), None,
                              output_dir=workdir).net
    randomize(net)
    recorder = Recorder(net)

    def run():
        im_detect(net, image)
    info = lambda: {'rois': int(net.blobs['rois'].shape[0])}  # noqa: E731
    return net, None, recorder, run, before, info


def make_train_case(net_name, args, workdir):
    from datasets.toy import generate_toy_dataset
    from fast_rcnn.experiment import train_experiment
    # No flipping: a run of the toy case is then exactly one epoch, the same images every run.
    # One forward/backward per iteration (the VGG16 solver accumulates two).
    settings = ['DATA_DIR', os.path.join(workdir, 'data'), 'TRAIN.USE_FLIPPED', 'False',
                'TRAIN.SNAPSHOT_ITERS', '0', 'TRAIN.ITER_SIZE', '1']
    if net_name != 'TOY':
        settings += ['TRAIN.SCALES', '(%d,)' % args.height,
                     'TRAIN.MAX_SIZE', str(max(args.height, args.width))]
    settings += ['EXP_DIR', 'benchmark', 'ROOT_DIR', workdir]
    experiment = _common.load_cfg([os.path.join(ROOT, p) for p in TRAIN_CFGS[net_name]],
                                  settings)
    if net_name == 'TOY':
        iters = TOY_EPOCH
        generate_toy_dataset(os.path.join(experiment.data_dir, 'toy'), num_train=iters,
                             num_test=1)
    else:
        iters = 1
        generate_toy_dataset(os.path.join(experiment.data_dir, 'toy'), num_train=TRAIN_IMAGES,
                             num_test=1, image_size=(args.width, args.height))
    with _quiet():
        training = train_experiment(experiment, os.path.join(ROOT, SOLVERS[net_name]),
                                    'toy_train')
        before = rss_mb()
        reset_peak_rss()
        wrapper = training.solver_wrapper()
    solver = wrapper.solver
    net = solver.net
    randomize(net, seed=experiment.rng_seed)
    recorder = Recorder(net)
    recorder._wrap(solver, 'apply_update', ('solver', 'apply_update'), None)

    def run():
        solver.step(iters)
    info = lambda: {'iterations per run': iters,  # noqa: E731
                    'rois': int(net.blobs['rois'].shape[0]) if 'rois' in net.blobs else 0}
    return net, solver, recorder, run, before, info


class _quiet:
    """Silences the dataset and solver chatter of the setup (stdout only)."""

    def __enter__(self):
        sys.stdout.flush()
        self.saved = os.dup(1)
        self.null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(self.null, 1)

    def __exit__(self, *exc):
        sys.stdout.flush()
        os.dup2(self.saved, 1)
        os.close(self.saved)
        os.close(self.null)


def summarize(recorder, total):
    """Seconds per part of one run (see the module docstring)."""
    t = recorder.times
    layers = collections.defaultdict(lambda: [0.0, 0.0, 0])
    by_name = collections.defaultdict(lambda: [0.0, 0.0])
    python = collections.defaultdict(float)
    for key, seconds in t.items():
        kind = key[0]
        if kind == 'layer':
            _, ltype, name, verb = key
            layers[ltype][0 if verb == 'forward' else 1] += seconds
            by_name['%s (%s)' % (name, ltype)][0 if verb == 'forward' else 1] += seconds
            if verb == 'forward':
                layers[ltype][2] += recorder.calls[key]
        elif kind == 'python':
            python[key[1]] += seconds  # forward, backward and reshape
    math = sum(f + b for f, b, _ in layers.values())
    python_total = sum(python.values())
    reshape = t.get(('reshape', 'all'), 0.0)
    inside_net = t.get(('net', 'forward_from_to'), 0.0) + t.get(('net', 'backward_from_to'), 0.0)
    bookkeeping = inside_net - math - python_total - reshape
    inputs = max(t.get(('net', 'forward'), 0.0) - t.get(('net', 'forward_from_to'), 0.0), 0.0)
    update = t.get(('solver', 'apply_update'), 0.0)
    clear = t.get(('net', 'clear_param_diffs'), 0.0)
    driver = total - inside_net - inputs - update - clear
    return {
        'layers': {k: {'forward_s': v[0], 'backward_s': v[1], 'calls': v[2]}
                   for k, v in sorted(layers.items(), key=lambda kv: -(kv[1][0] + kv[1][1]))},
        'by_layer': {k: {'forward_s': v[0], 'backward_s': v[1]} for k, v in by_name.items()},
        'python_layers': dict(sorted(python.items(), key=lambda kv: -kv[1])),
        'layer_math_s': math,
        'outside': {'python layers': python_total, 'reshape calls': reshape,
                    'net bookkeeping': bookkeeping, 'net inputs': inputs,
                    'solver update': update, 'clear param diffs': clear, 'driver': driver},
    }


def run_case(case, args):
    kind, net_name = case.split(':')
    workdir = tempfile.mkdtemp(prefix='benchmark_cpu_')
    try:
        load = [os.getloadavg()]
        maker = make_test_case if kind == 'test' else make_train_case
        net, solver, recorder, run, rss_before, info = maker(net_name, args, workdir)
        recorder.recording = True
        run()                      # warm-up: first-touch pages, lazily built buffers
        recorder.recording = False
        gemms, gemm_layers = list(recorder.gemms), list(recorder.gemm_layers)
        recorder.reset()
        start = time.perf_counter()
        run()
        best = time.perf_counter() - start
        best_parts = summarize(recorder, best)
        peak = peak_rss_mb()
        sizes = net_bytes(net, kind == 'train', solver) / 2.0 ** 20
        floor = Floor(gemms, gemm_layers)
        floor_layers = {}
        floor_best, floor_types = floor.run(floor_layers)
        parts_best = floor.run(parts=True)[0]
        for _ in range(args.repeat - 1):
            recorder.reset()
            start = time.perf_counter()
            run()
            seconds = time.perf_counter() - start
            if seconds < best:
                best, best_parts = seconds, summarize(recorder, seconds)
            layers = {}
            f_total, f_types = floor.run(layers)
            if f_total < floor_best:
                floor_best, floor_types, floor_layers = f_total, f_types, layers
            parts_best = min(parts_best, floor.run(parts=True)[0])
        convolutions = {}
        for name, conv in recorder.convolutions.items():
            times = best_parts['by_layer'].get('%s (Convolution)' % name, {})
            convolutions[name] = dict(conv, seconds=times.get('forward_s', 0.0) +
                                      times.get('backward_s', 0.0),
                                      floor_s=floor_layers.get(name, 0.0))
        load.append(os.getloadavg())
        outside = best - best_parts['layer_math_s']
        return {
            'case': case, 'total_s': best, 'floor_s': floor_best, 'ratio': best / floor_best,
            'parts_s': parts_best, 'parts_over_floor': parts_best / floor_best,
            'floor_gflop': gemm_flops(gemms) / 1e9, 'floor_by_type_s': floor_types,
            'convolutions': convolutions,
            'outside_s': outside, 'outside_fraction': outside / best, 'parts': best_parts,
            'peak_rss_mb': peak, 'rss_before_net_mb': rss_before, 'net_bytes_mb': sizes,
            'peak_over_sum': (peak - rss_before) / sizes if sizes else None,
            'load_before_after': load, 'repeat': args.repeat, 'info': info(),
            'image': 'toy' if net_name == 'TOY' else '%dx%d' % (args.height, args.width),
        }
    finally:
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)


# Concurrent jobs --------------------------------------------------------------------------------

def run_job(case, args):
    """One job of --concurrent: builds the case, warms up, says READY, waits for a line on stdin,
    then runs the case args.runs times; returns its wall and CPU seconds and context switches."""
    kind, net_name = case.split(':')
    workdir = tempfile.mkdtemp(prefix='benchmark_cpu_')
    try:
        maker = make_test_case if kind == 'test' else make_train_case
        with _quiet():
            run = maker(net_name, args, workdir)[3]
            run()
        sys.stdout.write('READY\n')
        sys.stdout.flush()
        sys.stdin.readline()
        before = resource.getrusage(resource.RUSAGE_SELF)
        cpu, start = time.process_time(), time.perf_counter()
        with _quiet():
            for _ in range(args.runs):
                run()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        after = resource.getrusage(resource.RUSAGE_SELF)
        return {'wall_s': wall, 'cpu_s': cpu, 'runs': args.runs,
                'voluntary_switches': after.ru_nvcsw - before.ru_nvcsw,
                'involuntary_switches': after.ru_nivcsw - before.ru_nivcsw}
    finally:
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)


BUSY_LOOP = 'while True:\n    pass\n'


def start_jobs(case, count, args):
    """Starts count jobs of case (this tool with --job, on args.lib or this checkout's lib/) and
    returns them once each has said READY."""
    lib = os.path.abspath(args.lib or os.path.join(ROOT, 'lib'))
    # lib first; this checkout's lib/ after it, so that tools/_init_paths.py adds nothing.
    code = ('import sys; sys.path[:0] = [%r, %r, %r]; import benchmark_cpu; benchmark_cpu.main()'
            % (lib, os.path.join(ROOT, 'tools'), os.path.join(ROOT, 'lib')))
    cmd = [sys.executable, '-c', code, '--job', case, '--runs', str(args.runs),
           '--height', str(args.height), '--width', str(args.width),
           '--proposals', str(args.proposals)]
    jobs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in range(count)]
    for job in jobs:
        line = job.stdout.readline()
        while line and line.strip() != 'READY':
            line = job.stdout.readline()
        if not line:
            for other in jobs:
                other.kill()
            sys.exit('benchmark job %s failed before it was ready (exit %s)'
                     % (case, job.wait()))
    return jobs


def run_together(case, count, args, busy=False):
    """count jobs of case started at once (beside a busy loop where busy): their results."""
    jobs = start_jobs(case, count, args)
    loop = subprocess.Popen([sys.executable, '-c', BUSY_LOOP]) if busy else None
    try:
        if loop is not None:
            time.sleep(0.5)  # the loop is running before the jobs start
        load = [os.getloadavg()[0]]
        for job in jobs:
            job.stdin.write('GO\n')
            job.stdin.flush()
        results = []
        for job in jobs:
            out, _ = job.communicate()
            lines = [l for l in out.splitlines() if l.startswith('RESULT ')]
            if job.returncode != 0 or not lines:
                sys.stdout.write(out)
                sys.exit('benchmark job %s failed (exit %d)' % (case, job.returncode))
            results.append(json.loads(lines[-1][len('RESULT '):]))
        load.append(os.getloadavg()[0])
    finally:
        if loop is not None:
            loop.kill()
            loop.wait()
    return {'jobs': count, 'beside_busy_loop': busy, 'results': results, 'load': load}


def concurrency_table(case, args, trial=1):
    """One job alone, each --concurrent count, (--beside-busy-loop) one job beside a busy loop,
    and one job alone again; every job's wall and CPU time relative to the mean of the two solo
    jobs' (the machine's other load drifts)."""
    rows = [run_together(case, 1, args)]
    for count in args.concurrent:
        if count > 1:
            rows.append(run_together(case, count, args))
    if args.beside_busy_loop:
        rows.append(run_together(case, 1, args, busy=True))
    rows.append(run_together(case, 1, args))
    solo = [rows[0]['results'][0], rows[-1]['results'][0]]
    solo_wall = sum(r['wall_s'] for r in solo) / 2
    solo_cpu = sum(r['cpu_s'] for r in solo) / 2
    for row in rows:
        for r in row['results']:
            r['wall_vs_solo'] = r['wall_s'] / solo_wall
            r['cpu_vs_solo'] = r['cpu_s'] / solo_cpu
    return {'case': case, 'runs': args.runs, 'trial': trial, 'solo_wall_s': solo_wall,
            'solo_cpu_s': solo_cpu,
            'lib': os.path.abspath(args.lib or os.path.join(ROOT, 'lib')), 'rows': rows}


def print_concurrency(table):
    print('\n== %s, %d runs per job, trial %d, lib %s'
          % (table['case'], table['runs'], table['trial'], table['lib']))
    print('%-22s %-24s %-24s %-14s %s' % ('jobs', 'wall s (each)', 'wall / solo (each)',
                                           'cpu / solo', 'switches vol/invol (first job)'))
    for row in table['rows']:
        name = ('1 beside a busy loop' if row['beside_busy_loop'] else
                '%d at once' % row['jobs'] if row['jobs'] > 1 else '1 alone')
        rs = row['results']
        print('%-22s %-24s %-24s %-14s %d/%d   load %.1f-%.1f'
              % (name, ' '.join('%.2f' % r['wall_s'] for r in rs),
                 ' '.join('%.2f' % r['wall_vs_solo'] for r in rs),
                 ' '.join('%.2f' % r['cpu_vs_solo'] for r in rs),
                 rs[0]['voluntary_switches'], rs[0]['involuntary_switches'],
                 row['load'][0], row['load'][1]))


# Reports ----------------------------------------------------------------------------------------

def print_layers(r):
    print('%-34s %10s %10s' % ('layer', 'fwd ms', 'bwd ms'))
    for name, v in r['parts']['by_layer'].items():
        print('%-34s %10.1f %10.1f' % (name, 1e3 * v['forward_s'], 1e3 * v['backward_s']))


def print_convolutions(r, peak):
    """Each convolution: its algorithm, FLOPs as run and computed directly, its time, its
    products' time (the BLAS floor) and its FLOPs at the measured peak."""
    rate = 1e9 * peak['gflops_cpu']
    print('%-22s %-24s %8s %8s %9s %9s %9s %7s'
          % ('convolution', 'algorithm', 'GFLOP', 'direct', 'ms', 'BLAS ms', 'peak ms',
             '/peak'))
    total = [0.0, 0.0, 0.0, 0.0, 0.0]
    for name, c in r['convolutions'].items():
        at_peak = 1e9 * c['gflop'] / rate
        print('%-22s %-24s %8.2f %8.2f %9.1f %9.1f %9.1f %7.2f'
              % (name, c['algorithm'], c['gflop'], c['direct_gflop'], 1e3 * c['seconds'],
                 1e3 * c['floor_s'], 1e3 * at_peak, c['seconds'] / at_peak if at_peak else 0))
        for i, v in enumerate((c['gflop'], c['direct_gflop'], c['seconds'], c['floor_s'],
                               at_peak)):
            total[i] += v
    print('%-22s %-24s %8.2f %8.2f %9.1f %9.1f %9.1f %7.2f'
          % ('all convolutions', '', total[0], total[1], 1e3 * total[2], 1e3 * total[3],
             1e3 * total[4], total[2] / total[4] if total[4] else 0))


def print_peak(peak):
    print('FP32 peak (FMA loop, %s, %d threads): %.0f GFLOP/s by the wall clock, %.0f by the '
          'threads\' CPU time; sgemm 2048^3 (numpy\'s BLAS): %.0f GFLOP/s wall, %.0f CPU time'
          % (peak['isa'], peak['threads'], peak['gflops'], peak['gflops_cpu'],
             peak['sgemm_gflops'], peak['sgemm_gflops_cpu']), flush=True)


def print_case(r):
    print('\n== %s (image %s, %s; best of %d; load %s -> %s)'
          % (r['case'], r['image'], ', '.join('%s %s' % kv for kv in r['info'].items()),
             r['repeat'], '/'.join('%.2f' % x for x in r['load_before_after'][0]),
             '/'.join('%.2f' % x for x in r['load_before_after'][1])))
    total = r['total_s']
    print('%-22s %6s %10s %10s %10s %6s %10s %7s'
          % ('layer type', 'calls', 'fwd ms', 'bwd ms', 'total ms', '%', 'floor ms', 'ratio'))
    for ltype, v in r['parts']['layers'].items():
        s = v['forward_s'] + v['backward_s']
        f = r['floor_by_type_s'].get(ltype)
        print('%-22s %6d %10.1f %10.1f %10.1f %6.1f %10s %7s'
              % (ltype, v['calls'], 1e3 * v['forward_s'], 1e3 * v['backward_s'], 1e3 * s,
                 100 * s / total, '%.1f' % (1e3 * f) if f else '', '%.2f' % (s / f) if f else ''))
    print('outside the layers\' math: %.1f ms (%.1f%%)' % (1e3 * r['outside_s'],
                                                         100 * r['outside_fraction']))
    for name, s in r['parts']['outside'].items():
        print('  %-20s %10.1f ms %6.1f%%' % (name, 1e3 * s, 100 * s / total))
    for name, s in r['parts']['python_layers'].items():
        print('    %-40s %10.1f ms' % (name, 1e3 * s))
    print('total %.3f s, floor %.3f s (%.1f GFLOP), ratio %.2f; the products in parts '
          '(caffe.gemm) %.3f s, %.2f times the floor'
          % (total, r['floor_s'], r['floor_gflop'], r['ratio'], r['parts_s'],
             r['parts_over_floor']))
    print('memory: peak RSS %.0f MB, before the net %.0f MB, blobs+params %.0f MB, '
          '(peak - before) / sum %.2f'
          % (r['peak_rss_mb'], r['rss_before_net_mb'], r['net_bytes_mb'], r['peak_over_sum']))


def print_summary(results, peak):
    print('\n%-12s %9s %9s %7s %11s %9s %9s %9s %8s %9s %9s %9s %8s %11s'
          % ('case', 'total s', 'floor s', 'ratio', 'parts/floor', 'conv s', 'peak ms', '/peak',
             'outside', 'peak MB', 'before', 'sum MB', 'peak/sum', 'load'))
    for r in results:
        conv = sum(c['seconds'] for c in r['convolutions'].values())
        at_peak = sum(c['gflop'] for c in r['convolutions'].values()) / peak['gflops_cpu']
        print('%-12s %9.3f %9.3f %7.2f %11.2f %9.3f %9.1f %9.2f %7.1f%% %9.0f %9.0f %9.0f %8.2f '
              '%11s'
              % (r['case'], r['total_s'], r['floor_s'], r['ratio'], r['parts_over_floor'], conv,
                 1e3 * at_peak, conv / at_peak if at_peak else 0, 100 * r['outside_fraction'],
                 r['peak_rss_mb'], r['rss_before_net_mb'], r['net_bytes_mb'], r['peak_over_sum'],
                 '%.2f-%.2f' % (r['load_before_after'][0][0], r['load_before_after'][1][0])))


def thread_settings():
    return {name: os.environ.get(name, '-') for name in THREAD_VARIABLES}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cases', nargs='+', default=list(CASES), choices=CASES)
    parser.add_argument('--repeat', type=int, default=3, help='timed runs (best kept)')
    parser.add_argument('--height', type=int, default=600)
    parser.add_argument('--width', type=int, default=1000)
    parser.add_argument('--proposals', type=int, default=300,
                        help='cfg.TEST.RPN_POST_NMS_TOP_N for the test cases')
    parser.add_argument('--layers', action='store_true', help='also print every layer\'s time')
    parser.add_argument('--result', help='write the figures to this JSON file')
    parser.add_argument('--concurrent', type=int, nargs='+', metavar='N',
                        help='jobs started at once (1 to 4; one job alone is always measured '
                             'first); cases default to train:TOY')
    parser.add_argument('--beside-busy-loop', action='store_true',
                        help='with --concurrent: also one job beside a busy loop')
    parser.add_argument('--runs', type=int, default=20,
                        help='with --concurrent: runs of the case per job (default 20)')
    parser.add_argument('--trials', type=int, default=1,
                        help='with --concurrent: times the whole table is measured')
    parser.add_argument('--lib', help='with --concurrent: run the jobs on this lib/ (another '
                                      'checkout, built) instead of this checkout\'s')
    parser.add_argument('--child', help=argparse.SUPPRESS)   # internal: one case, JSON to stdout
    parser.add_argument('--job', help=argparse.SUPPRESS)     # internal: one concurrent job
    args = parser.parse_args(argv)
    if args.concurrent and not all(1 <= n <= 4 for n in args.concurrent):
        parser.error('--concurrent takes job counts from 1 to 4')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.child or args.job:
        result = run_case(args.child, args) if args.child else run_job(args.job, args)
        sys.stdout.write('\nRESULT ' + json.dumps(result) + '\n')
        return
    print('threads: %s; %d cores' % (', '.join('%s=%s' % kv for kv in thread_settings().items()),
                                     os.cpu_count()), flush=True)
    if args.concurrent or args.beside_busy_loop:
        args.concurrent = args.concurrent or []
        cases = args.cases if args.cases != list(CASES) else ['train:TOY']
        tables = []
        for trial in range(1, args.trials + 1):
            for case in cases:
                tables.append(concurrency_table(case, args, trial))
                print_concurrency(tables[-1])
                sys.stdout.flush()
        if args.result:
            from caffe.io import atomic_write
            atomic_write(args.result, json.dumps({'threads': thread_settings(),
                                                  'cores': os.cpu_count(),
                                                  'concurrent': tables}, indent=1).encode())
        return
    peak = machine_peak()
    print_peak(peak)
    results = []
    for case in args.cases:
        cmd = [sys.executable, os.path.abspath(__file__), '--child', case,
               '--repeat', str(args.repeat), '--height', str(args.height),
               '--width', str(args.width), '--proposals', str(args.proposals)]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        lines = [l for l in proc.stdout.splitlines() if l.startswith('RESULT ')]
        if proc.returncode != 0 or not lines:
            sys.stdout.write(proc.stdout)
            sys.exit('benchmark case %s failed (exit %d)' % (case, proc.returncode))
        result = json.loads(lines[-1][len('RESULT '):])
        if args.layers:
            print_layers(result)
        print_case(result)
        print_convolutions(result, peak)
        sys.stdout.flush()
        results.append(result)
    print_summary(results, peak)
    if args.result:
        from caffe.io import atomic_write
        atomic_write(args.result, json.dumps({'threads': thread_settings(),
                                              'cores': os.cpu_count(), 'peak': peak,
                                              'results': results}, indent=1).encode())


if __name__ == '__main__':
    main()
