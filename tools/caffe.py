#!/usr/bin/env python3
"""The `caffe` command, with Caffe's commands and flags (tools/caffe.cpp), on this runtime:

  tools/caffe.py train -solver=lenet_solver.prototxt [-weights=a.caffemodel[,b.caffemodel]]
                       [-snapshot=x_iter_500.solverstate] [-gpu=0|0,1|all]
                       [-sigint_effect=stop|snapshot|none] [-sighup_effect=snapshot|stop|none]
  tools/caffe.py test  -model=net.prototxt -weights=x.caffemodel [-iterations=50] [-gpu=0]
  tools/caffe.py time  -model=net.prototxt [-iterations=50] [-phase=TRAIN|TEST] [-gpu=0]
  tools/caffe.py device_query [-gpu=0|all]

Flags take one dash or two, with `=` or a space (gflags' forms); -level and -stage pick the net's
state as in Caffe. Beyond Caffe: -result FILE writes as JSON the loss `train` displayed (every
`display` iterations: the solver's smoothed loss), what `test` scored and what `time` measured
(tools and scripts read that, never the printed lines).

Where Caffe's behaviour is kept on purpose:
- train: without -gpu, a solver file with `solver_mode: GPU` trains on its device_id, as Caffe;
  here, with no CUDA GPU, it says so and trains on the CPU instead of stopping.
- test: the score of each output is its mean over the iterations; a loss output also shows its
  weighted value, `(* w = w*score loss)`.
- time: forward and backward of every layer, one by one, timed over the iterations (the net runs
  in phase TRAIN unless -phase says otherwise).
"""
import argparse
import signal
import sys
import time

import _common

COMMANDS = ('train', 'test', 'time', 'device_query')
EFFECTS = ('stop', 'snapshot', 'none')


def parse_args(argv=None):
    parser = _common.ArgumentParser(
        prog='caffe', description='command line brew: train, test, time, device_query',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('command', choices=COMMANDS)

    def flag(name, **kw):
        parser.add_argument('-' + name, '--' + name, dest=name, **kw)
    flag('solver', default='', help='the solver definition (train)')
    flag('model', default='', help='the net definition (test, time)')
    flag('weights', default='',
         help='weights to start from, comma-separated (train: cannot go with -snapshot)')
    flag('snapshot', default='', help='a .solverstate to resume training from')
    flag('gpu', default='', help="GPU ids separated by ',', or 'all' (default: CPU)")
    flag('iterations', type=int, default=50, help='iterations (test, time)')
    flag('phase', default='', choices=('', 'TRAIN', 'TEST'), help='the net phase (time)')
    flag('level', type=int, default=0, help='the net state level')
    flag('stage', default='', help="the net state's stages, separated by ','")
    flag('sigint_effect', default='stop', choices=EFFECTS, help='on SIGINT (train)')
    flag('sighup_effect', default='snapshot', choices=EFFECTS, help='on SIGHUP (train)')
    flag('result', default='',
         help='write the training losses / test scores / timings to this JSON file')
    return parser.parse_args(argv)


def stages(args):
    return [s for s in args.stage.split(',') if s]


def gpu_count():
    try:
        import pycuda.driver as cuda
        cuda.init()
        return cuda.Device.count()
    except Exception:
        return 0


def parse_gpus(text):
    """-gpu: '' (none), 'all', or ids '0,1'."""
    if not text:
        return []
    if text == 'all':
        count = gpu_count()
        if not count:
            _common.fail('-gpu all: no CUDA GPU found')
        return list(range(count))
    try:
        gpus = [int(g) for g in text.split(',')]
    except ValueError:
        _common.fail("-gpu expects ids separated by ',' or 'all', got %r" % text)
    if min(gpus) < 0 or len(set(gpus)) != len(gpus):
        _common.fail('-gpu %s: distinct device ids >= 0' % text)
    return gpus


def use_device(gpus):
    import caffe
    if not gpus:
        print('Use CPU.', flush=True)
        caffe.set_mode_cpu()
        return
    _common.setup_caffe(gpus[0])


# train -----------------------------------------------------------------------------------------

class LossRecord:
    """A solver callback that keeps the smoothed loss at each displayed iteration, as Caffe's
    log shows it ("Iteration i (...), loss = ..."), for train's -result."""

    def __init__(self, solver):
        self.solver = solver
        self.losses = []

    def on_start(self):
        pass

    def on_gradients_ready(self):
        self.displayed()

    def displayed(self):
        p = self.solver.param
        if p.display and self.solver.iter % p.display == 0:
            self.losses.append({'iter': self.solver.iter,
                                'loss': float(self.solver.smoothed_loss)})

    def after_solve(self):
        """Solve's last display: the loss of one more forward pass after the last update."""
        if not self.solver.requested_early_exit:
            self.displayed()


class SignalActions:
    """Caffe's SignalHandler: SIGINT and SIGHUP are remembered, and the solver asks after each
    update what to do (its action_request)."""

    def __init__(self, sigint_effect, sighup_effect):
        self.effects = {signal.SIGINT: sigint_effect, signal.SIGHUP: sighup_effect}
        self.pending = []
        for signum in self.effects:
            signal.signal(signum, lambda s, frame: self.pending.append(s))

    def __call__(self):
        return self.effects[self.pending.pop(0)] if self.pending else 'none'


def train(args):
    from caffe.solver import read_solver_param
    from caffe.proto import caffe_pb2
    if not args.solver:
        _common.fail('Need a solver definition to train (-solver)')
    if args.snapshot and args.weights:
        _common.fail('Give a snapshot to resume training or weights to finetune but not both')
    param = read_solver_param(args.solver)
    gpu_flag = args.gpu
    if not gpu_flag and param.solver_mode == caffe_pb2.SolverParameter.GPU:
        if gpu_count():
            gpu_flag = str(param.device_id)
        else:
            print('The solver asks for the GPU (solver_mode: GPU) but no CUDA GPU was found: '
                  'training on the CPU', flush=True)
    gpus = parse_gpus(gpu_flag)
    if len(gpus) > 1:
        return _common.run_gpu_ranks(_train_rank, gpus, args, gpus)
    return _train_rank(0, None, args, gpus)


def _train_rank(rank, uid, args, gpus):
    import caffe
    from caffe import sgd_solvers  # noqa: F401  (registers the six methods)
    from caffe.solver import SOLVER_CLASSES, read_solver_param
    param = read_solver_param(args.solver)
    param.train_state.level = args.level
    param.train_state.stage.extend(stages(args))
    if args.snapshot:
        del param.weights[:]
    elif args.weights:
        del param.weights[:]
        param.weights.append(args.weights)
    if gpus:
        param.device_id = gpus[rank]
        if len(gpus) > 1:
            _common.join_ranks(rank, len(gpus))
        else:
            print('Using GPUs %s' % gpus[0], flush=True)
        _common.setup_caffe(gpus[rank])
    else:
        use_device([])
    if param.type not in SOLVER_CLASSES:
        _common.fail('%s: unknown solver type "%s" (known: %s)'
                     % (args.solver, param.type, ', '.join(sorted(SOLVER_CLASSES))))
    solver = SOLVER_CLASSES[param.type](param, origin=args.solver)
    solver.action_request = SignalActions(args.sigint_effect, args.sighup_effect)
    nccl = None
    if len(gpus) > 1:
        nccl = caffe.NCCL(solver, uid)
        nccl.bcast()
        solver.add_callback(nccl)
        if solver.param.layer_wise_reduce:
            solver.net.after_backward(nccl)
    if args.snapshot:
        print('Resuming from %s' % args.snapshot, flush=True)
        solver.restore(args.snapshot)
        if nccl is not None:
            nccl.bcast()
    record = LossRecord(solver)
    if rank == 0:
        solver.add_callback(record)
    print('Starting Optimization', flush=True)
    solver.solve()
    print('Optimization Done.', flush=True)
    record.after_solve()
    if args.result and rank == 0:
        _common.write_result(args.result, command='train', solver=args.solver,
                             iterations=solver.iter, losses=record.losses,
                             stopped_early=solver.requested_early_exit)
    return 0


# test ------------------------------------------------------------------------------------------

def test(args):
    import caffe
    import numpy as np
    if not args.model:
        _common.fail('Need a model definition to score (-model)')
    if not args.weights:
        _common.fail('Need model weights to score (-weights)')
    use_device(parse_gpus(args.gpu)[:1])
    net = caffe.Net(args.model, caffe.TEST, level=args.level, stages=stages(args))
    for path in filter(None, args.weights.split(',')):
        net.copy_from(path)
    print('Running for %d iterations.' % args.iterations, flush=True)
    totals, loss = {}, 0.0
    for i in range(args.iterations):
        loss += net.forward_from_to()
        for name in net.outputs:
            values = net.blobs[name].data.astype(np.float64).ravel()
            for v in values:
                print('Batch %d, %s = %g' % (i, name, v), flush=True)
            totals[name] = totals.get(name, 0.0) + values
    loss /= max(args.iterations, 1)
    print('Loss: %g' % loss, flush=True)
    weights = net.blob_loss_weights
    scores = {}
    for name in net.outputs:
        mean = totals[name] / max(args.iterations, 1)
        scores[name] = mean.tolist()
        w = weights.get(name, 0.0)
        for v in mean:
            extra = ' (* %g = %g loss)' % (w, w * v) if w else ''
            print('%s = %g%s' % (name, v, extra), flush=True)
    if args.result:
        _common.write_result(args.result, command='test', model=args.model,
                             weights=args.weights, iterations=args.iterations, loss=loss,
                             scores=scores)
    return 0


# time ------------------------------------------------------------------------------------------

def time_net(args):
    import caffe
    if not args.model:
        _common.fail('Need a model definition to time (-model)')
    use_device(parse_gpus(args.gpu)[:1])
    phase = caffe.TEST if args.phase == 'TEST' else caffe.TRAIN
    net = caffe.Net(args.model, phase, level=args.level, stages=stages(args))
    print('Performing Forward', flush=True)
    print('Initial loss: %g' % net.forward_from_to(), flush=True)
    print('Performing Backward', flush=True)
    net.backward_from_to()
    layers, names = net.layers, list(net.layer_dict)
    forward = [0.0] * len(layers)
    backward = [0.0] * len(layers)
    print('*** Benchmark begins ***', flush=True)
    print('Testing for %d iterations.' % args.iterations, flush=True)
    total_start = time.perf_counter()
    forward_total = backward_total = 0.0
    for j in range(args.iterations):
        start = time.perf_counter()
        for i in range(len(layers)):
            tic = time.perf_counter()
            net.forward_from_to(i, i)
            forward[i] += time.perf_counter() - tic
        mid = time.perf_counter()
        for i in reversed(range(len(layers))):
            tic = time.perf_counter()
            net.backward_from_to(i, i)
            backward[i] += time.perf_counter() - tic
        end = time.perf_counter()
        forward_total += mid - start
        backward_total += end - mid
        print('Iteration: %d forward-backward time: %.3f ms.' % (j + 1, 1e3 * (end - start)),
              flush=True)
    total = time.perf_counter() - total_start
    n = max(args.iterations, 1)
    print('Average time per layer: ', flush=True)
    for i, name in enumerate(names):
        print('%10s\tforward: %.4f ms.' % (name, 1e3 * forward[i] / n), flush=True)
        print('%10s\tbackward: %.4f ms.' % (name, 1e3 * backward[i] / n), flush=True)
    print('Average Forward pass: %.4f ms.' % (1e3 * forward_total / n), flush=True)
    print('Average Backward pass: %.4f ms.' % (1e3 * backward_total / n), flush=True)
    print('Average Forward-Backward: %.4f ms.' % (1e3 * total / n), flush=True)
    print('Total Time: %.3f ms.' % (1e3 * total), flush=True)
    print('*** Benchmark ends ***', flush=True)
    if args.result:
        _common.write_result(
            args.result, command='time', model=args.model, iterations=args.iterations,
            layers=[{'name': name, 'type': layers[i].type,
                     'forward_ms': 1e3 * forward[i] / n, 'backward_ms': 1e3 * backward[i] / n}
                    for i, name in enumerate(names)],
            forward_ms=1e3 * forward_total / n, backward_ms=1e3 * backward_total / n,
            total_ms=1e3 * total)
    return 0


# device_query ----------------------------------------------------------------------------------

def device_query(args):
    gpus = parse_gpus(args.gpu or 'all') if gpu_count() else []
    if not gpus:
        _common.fail('no CUDA GPU found (pycuda and an NVIDIA driver are needed; docs/gpu.md)')
    import pycuda.driver as cuda
    for g in gpus:
        if g >= cuda.Device.count():
            _common.fail('GPU %d does not exist (%d found)' % (g, cuda.Device.count()))
        d = cuda.Device(g)
        attrs = d.get_attributes()
        print('Querying GPU %d' % g)
        print('Device id:                     %d' % g)
        print('Major revision number:         %d' % d.compute_capability()[0])
        print('Minor revision number:         %d' % d.compute_capability()[1])
        print('Name:                          %s' % d.name())
        print('Total global memory:           %d' % d.total_memory())
        print('Number of multiprocessors:     %d'
              % attrs[cuda.device_attribute.MULTIPROCESSOR_COUNT])
        print('Clock rate:                    %d' % attrs[cuda.device_attribute.CLOCK_RATE])
    return 0


def main(argv=None):
    args = parse_args(argv)
    return {'train': train, 'test': test, 'time': time_net,
            'device_query': device_query}[args.command](args)


if __name__ == '__main__':
    sys.exit(_common.run_tool(main))
