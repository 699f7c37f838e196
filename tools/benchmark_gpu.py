"""Times Faster R-CNN on the GPU backend, and the same work on an equivalent PyTorch model.

  tools/benchmark_gpu.py [--gpu 0] [--nets VGG16,ZF] [--iters 20] [--no-torch] [--no-train]
  tools/benchmark_gpu.py --gpu cpu [--engines DEFAULT,CAFFE]

Detection (the paper's Table 5): the test nets of models/pascal_voc/{VGG16,ZF}/faster_rcnn_alt_opt
with random weights on a 600 x 1000 image and 300 proposals, timed per image in three parts:
the shared convolutions, the proposals (RPN head and proposal layer with its NMS) and the
region-wise part (RoI pooling, fully-connected layers, softmax, and per-class NMS of the
detections), plus fast_rcnn.test.im_detect as a whole (which adds the image preparation).
Training: one end-to-end VGG16 iteration (models/pascal_voc/VGG16/faster_rcnn_end2end), data
layer, anchor and proposal targets and the SGD update included.

The PyTorch models (torchvision, random weights; only where torch is installed; on the same
device, so --gpu cpu compares the CPU paths) have the same layout: VGG16's or ZF's conv layers, a
3x3 RPN with 9 anchors, proposals decoded and NMS'd on the device (torchvision.ops.nms), RoI
pooling (torchvision.ops.roi_pool), fc6/fc7 of 4096 and the two output layers; the training step
samples RPN and RoI targets at random instead of by overlap (a little less work than ours). They
run in float32 too unless TF32 is allowed (CAFFE_ALLOW_TF32), as this runtime does.

On the CPU this runtime's nets are timed once per convolution engine (--engines: DEFAULT, the
runtime's choice of algorithm, and CAFFE, Caffe's im2col everywhere, which is what the runtime
ran before Winograd: the "before" of one run), and every net, engine and PyTorch peer runs in
turn, image after image (iteration after iteration in training), so all see the same machine
load. Times are medians over --iters rounds after --warmup ones. Printed:
milliseconds per image or iteration and ours / torch ratios; with --gpu cpu also the machine's
measured float32 peak (benchmark_cpu.machine_peak) and each part's products (Winograd's fewer
ones where a convolution runs it; caffe/layers/conv_algorithm.py) at that peak.
"""
import argparse
import os
import sys
import tempfile
import time

import _init_paths  # noqa: F401  (puts lib/ on sys.path)

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--gpu', default='0', help="GPU id, or 'cpu' to time the CPU path")
    p.add_argument('--nets', default='VGG16,ZF', help='detection nets to time (default VGG16,ZF)')
    p.add_argument('--iters', type=int, default=20, help='timed runs per measurement')
    p.add_argument('--warmup', type=int, default=3, help='untimed runs first (kernel compilation, '
                   'algorithm choice)')
    p.add_argument('--scale', type=int, default=600, help='short side of the image (default 600)')
    p.add_argument('--max-size', type=int, default=1000, help='long side (default 1000)')
    p.add_argument('--proposals', type=int, default=300, help='RPN proposals kept (default 300)')
    p.add_argument('--no-torch', action='store_true', help='skip the PyTorch comparison')
    p.add_argument('--no-train', action='store_true', help='skip the training iteration')
    p.add_argument('--engines', default='DEFAULT,CAFFE',
                   help="CPU only: the convolution engines to time this runtime with, in turn "
                   "(DEFAULT: the runtime's choice of algorithm, caffe/layers/conv_algorithm.py; "
                   "CAFFE: Caffe's im2col everywhere, the algorithm before Winograd; default "
                   "%(default)s)")
    p.add_argument('--result', default=None, metavar='FILE',
                   help='also write the medians (ms) as JSON to FILE')
    return p.parse_args(argv)


# Timing ------------------------------------------------------------------------------------------

class Clock:
    """Wall time of a piece of work, with the device drained before each reading."""

    def __init__(self, sync):
        self.sync = sync
        self.totals = {}

    def time(self, name, fn):
        self.sync()
        tic = time.perf_counter()
        out = fn()
        self.sync()
        self.totals.setdefault(name, []).append(time.perf_counter() - tic)
        return out

    def ms(self, name):
        values = self.totals.get(name)
        return 1000.0 * float(np.median(values)) if values else float('nan')

    def drop(self, prefix):
        """Forgets the readings whose names start with prefix (the warm-up runs)."""
        for name in [n for n in self.totals if n.startswith(prefix)]:
            del self.totals[name]


def random_weights(net, seed=0):
    """He-style weights (the first layer scaled down for pixel values in the tens), so scores and
    proposals look like a working net's rather than all ties."""
    rs = np.random.RandomState(seed)
    for i, (name, blobs) in enumerate(net.params.items()):
        w = blobs[0]
        std = np.sqrt(2.0 / int(np.prod(w.shape[1:]))) / (50.0 if i == 0 else 1.0)
        w.data[...] = (rs.randn(*w.shape) * std).astype(np.float32)
        if len(blobs) > 1:
            blobs[1].data[...] = 0.01


def synthetic_image(height, width, seed=0):
    rs = np.random.RandomState(seed)
    im = cv2.GaussianBlur(rs.randint(0, 255, (height, width, 3)).astype(np.uint8), (0, 0), 4)
    for _ in range(8):
        x1, y1 = rs.randint(0, width // 2), rs.randint(0, height // 2)
        size = min(height, width)
        cv2.rectangle(im, (x1, y1), (x1 + rs.randint(size // 15, size // 2),
                                     y1 + rs.randint(size // 15, size // 2)),
                      tuple(int(c) for c in rs.randint(0, 255, 3)), -1)
    return im


# This runtime ---------------------------------------------------------------------------------

def _segments(net):
    """Layer index ranges of the shared convs, the proposal part and the region-wise part."""
    names = list(net.layer_dict)
    types = [layer.type for layer in net.layers]
    rpn_start = next(i for i, n in enumerate(names) if n.startswith('rpn'))
    roi_start = types.index('ROIPooling')
    return (0, rpn_start - 1), (rpn_start, roi_start - 1), (roi_start, len(names) - 1)


def _net_param(prototxt, engine):
    """The net of a prototxt file, every Convolution layer on the given engine (None: as the
    file says)."""
    from google.protobuf import text_format
    from caffe.proto import caffe_pb2
    param = caffe_pb2.NetParameter()
    with open(prototxt) as f:
        text_format.Merge(f.read(), param)
    if engine is not None:
        for layer in param.layer:
            if layer.type == 'Convolution':
                layer.convolution_param.engine = \
                    caffe_pb2.ConvolutionParameter.Engine.Value(engine)
    return param


def _label(arch, engine):
    return arch if engine in (None, 'DEFAULT') else '%s/%s' % (arch, engine)


def _net_file(prototxt, engine, tmp):
    """prototxt, or its copy in the folder tmp with every Convolution on the engine."""
    if engine is None:
        return prototxt
    from google.protobuf import text_format
    path = os.path.join(tmp, '%s_%s.prototxt' % (os.path.splitext(
        os.path.basename(prototxt))[0], engine))
    with open(path, 'w') as f:
        f.write(text_format.MessageToString(_net_param(prototxt, engine)))
    return path


def detection_runner(arch, engine, args, clock, experiment, tmp):
    """(one image split in three parts, one im_detect, info) of this runtime's test net (files
    in the folder tmp)."""
    from fast_rcnn import test as frcnn_test
    from fast_rcnn.experiment import test_experiment
    prototxt = os.path.join(ROOT, 'models', 'pascal_voc', arch, 'faster_rcnn_alt_opt',
                            'faster_rcnn_test.pt')
    # The net with the experiment's settings (test_settings and proposal limits).
    testing = test_experiment(experiment, _net_file(prototxt, engine, tmp), None,
                              output_dir=tmp)
    net, settings = testing.net, testing.settings
    random_weights(net)
    im = synthetic_image(args.scale, args.max_size)
    data, _ = frcnn_test.image_blob(im, settings)
    im_info = np.array([[data.shape[2], data.shape[3], 1.0]], np.float32)
    conv, proposal, region = _segments(net)
    label = _label(arch, engine)

    def detections():
        scores = net.blobs['cls_prob'].data.reshape(net.blobs['cls_prob'].shape[0], -1)
        boxes = np.tile(net.blobs['rois'].data[:, 1:5], (1, scores.shape[1]))
        nms_function = settings.nms_function()
        return [frcnn_test.detections_for_class(scores, boxes, k, 0.05, 0.3, nms_function)
                for k in range(1, scores.shape[1])]

    def parts():
        net.blobs['data'].reshape(*data.shape)
        net.blobs['data'].data[...] = data
        net.blobs['im_info'].reshape(*im_info.shape)
        net.blobs['im_info'].data[...] = im_info
        clock.time('%s conv' % label, lambda: net.forward_from_to(*conv))
        clock.time('%s proposal' % label, lambda: net.forward_from_to(*proposal))

        def region_wise():
            net.forward_from_to(*region)
            return detections()
        clock.time('%s region-wise' % label, region_wise)

    def one_image():
        clock.time('%s total' % label, parts)

    def whole():
        clock.time('%s im_detect' % label, lambda: frcnn_test.im_detect(net, im,
                                                                        settings=settings))

    def info():
        return {'rois': net.blobs['rois'].shape[0], 'input': data.shape,
                'gflop': part_gflop(net, (conv, proposal, region))}
    return one_image, whole, info


def part_gflop(net, segments):
    """GFLOP of the Convolution and InnerProduct products of each segment's forward pass, as
    the layers run them (Winograd's where they do) and computed directly (im2col + GEMM)."""
    from benchmark_cpu import direct_macs, forward_products
    out = []
    for first, last in segments:
        run = direct = 0.0
        for i in range(first, last + 1):
            layer, bottom, top = net.layers[i], net.bottom_vecs[i], net.top_vecs[i]
            products = forward_products(layer, bottom, top)
            run += sum(2e-9 * m * n * k for m, n, k in products)
            if layer.type == 'Convolution':
                direct += sum(2e-9 * direct_macs(layer, t) for t in top)
            else:
                direct += sum(2e-9 * m * n * k for m, n, k in products)
        out.append((run, direct))
    return out


def training_runner(engine, args, clock, experiment, tmp):
    """One end-to-end VGG16 SGD iteration of this runtime (files in the folder tmp)."""
    import caffe
    image = os.path.join(tmp, 'image.jpg')
    cv2.imwrite(image, synthetic_image(args.scale, args.max_size, seed=1))
    boxes = np.array([[100, 120, 400, 380], [500, 50, 800, 450], [300, 300, 500, 580]],
                     np.float32) * np.float32(min(args.scale / 600.0, args.max_size / 1000.0))
    entry = {'image': image, 'width': args.max_size, 'height': args.scale, 'boxes': boxes,
             'gt_classes': np.array([3, 7, 15]), 'flipped': False,
             'max_overlaps': np.ones(3, np.float32)}
    train = _net_file(os.path.join(ROOT, 'models', 'pascal_voc', 'VGG16', 'faster_rcnn_end2end',
                                   'train.prototxt'), engine, tmp)
    solver_file = os.path.join(tmp, 'solver_%s.prototxt' % (engine or 'file'))
    with open(solver_file, 'w') as f:
        f.write('train_net: "%s"\nbase_lr: 0.001\nlr_policy: "fixed"\nmomentum: 0.9\n'
                'weight_decay: 0.0005\ndisplay: 0\nsnapshot: 0\n' % train)
    # The solver's net with the experiment's settings in its Python layers.
    solver = caffe.SGDSolver(experiment.solver_file(solver_file, None, tmp))
    random_weights(solver.net)
    solver.net.layers[0].set_roidb([entry])
    label = '%s train iteration' % _label('VGG16', engine)
    return lambda: clock.time(label, lambda: solver.step(1))


def interleaved(runners, clock, args):
    """Runs each runner in turn, warm-up rounds first (their readings dropped), then
    args.iters timed rounds: every runner sees the same machine load."""
    for i in range(args.warmup + args.iters):
        if i == args.warmup:
            clock.totals.clear()
        for run in runners:
            run()


# PyTorch ---------------------------------------------------------------------------------------

def torch_model(arch='VGG16', num_classes=21, num_anchors=9):
    """The detection net's layout in PyTorch: VGG16's (torchvision's VGG16 up to relu5_3, RPN of
    512, RoI pooling to 7 x 7) or ZF's (models/pascal_voc/ZF: LRN within channels as Caffe's,
    RPN of 256, RoI pooling to 6 x 6); fc6/fc7 of 4096."""
    import torch
    import torchvision
    from torch import nn

    class WithinChannelLRN(nn.Module):
        # Caffe's LRN WITHIN_CHANNEL: x (1 + alpha * mean of x^2 over a 3x3 window)^-beta.
        def forward(self, x):
            mean = nn.functional.avg_pool2d(x * x, 3, 1, 1, count_include_pad=True)
            return x * (1 + 5e-5 * mean).pow(-0.75)

    if arch == 'VGG16':
        features = torchvision.models.vgg16(weights=None).features[:30]  # to relu5_3
        channels, pooled = 512, 7
    elif arch == 'ZF':
        features = nn.Sequential(
            nn.Conv2d(3, 96, 7, 2, 3), nn.ReLU(), WithinChannelLRN(),
            nn.MaxPool2d(3, 2, 1, ceil_mode=True),
            nn.Conv2d(96, 256, 5, 2, 2), nn.ReLU(), WithinChannelLRN(),
            nn.MaxPool2d(3, 2, 1, ceil_mode=True),
            nn.Conv2d(256, 384, 3, 1, 1), nn.ReLU(), nn.Conv2d(384, 384, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, 1, 1), nn.ReLU())
        channels, pooled = 256, 6
    else:
        raise ValueError('no PyTorch peer for %s' % arch)

    class FasterRCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = features
            self.rpn_conv = nn.Conv2d(channels, channels, 3, padding=1)
            self.rpn_cls = nn.Conv2d(channels, 2 * num_anchors, 1)
            self.rpn_bbox = nn.Conv2d(channels, 4 * num_anchors, 1)
            self.fc6 = nn.Linear(channels * pooled * pooled, 4096)
            self.fc7 = nn.Linear(4096, 4096)
            self.cls_score = nn.Linear(4096, num_classes)
            self.bbox_pred = nn.Linear(4096, 4 * num_classes)
            self.dropout = nn.Dropout(0.5)

        def rpn(self, feat):
            h = torch.relu(self.rpn_conv(feat))
            return self.rpn_cls(h), self.rpn_bbox(h)

        def head(self, feat, rois):
            pooled_rois = torchvision.ops.roi_pool(feat, rois, (pooled, pooled), 1.0 / 16)
            h = self.dropout(torch.relu(self.fc6(pooled_rois.flatten(1))))
            h = self.dropout(torch.relu(self.fc7(h)))
            return self.cls_score(h), self.bbox_pred(h)

    return FasterRCNN()


def torch_proposals(scores, deltas, anchors, im_h, im_w, pre_nms, post_nms, min_size=16):
    import torch
    import torchvision
    a = anchors.shape[0] // (scores.shape[2] * scores.shape[3])
    fg = scores.view(1, 2, a, *scores.shape[2:]).softmax(1)[0, 1].permute(1, 2, 0).reshape(-1)
    d = deltas.view(a, 4, *deltas.shape[2:]).permute(2, 3, 0, 1).reshape(-1, 4)
    widths = anchors[:, 2] - anchors[:, 0] + 1
    heights = anchors[:, 3] - anchors[:, 1] + 1
    cx = anchors[:, 0] + 0.5 * widths + d[:, 0] * widths
    cy = anchors[:, 1] + 0.5 * heights + d[:, 1] * heights
    w = torch.exp(d[:, 2]) * widths
    h = torch.exp(d[:, 3]) * heights
    boxes = torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], 1)
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, im_w - 1)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, im_h - 1)
    keep = ((boxes[:, 2] - boxes[:, 0] + 1) >= min_size) & \
        ((boxes[:, 3] - boxes[:, 1] + 1) >= min_size)
    boxes, fg = boxes[keep], fg[keep]
    order = fg.argsort(descending=True)[:pre_nms]
    boxes, fg = boxes[order], fg[order]
    keep = torchvision.ops.nms(boxes, fg, 0.7)[:post_nms]
    return torch.cat([boxes.new_zeros(len(keep), 1), boxes[keep]], 1)


class TorchPeer:
    """The PyTorch model of one net: its detection and training runners, on GPU device_index,
    or on the CPU when it is None."""

    def __init__(self, arch, args, clock, device_index):
        import torch
        from rpn.generate_anchors import generate_anchors, shifted_anchors
        tf32 = os.environ.get('CAFFE_ALLOW_TF32', '').lower() in ('1', 'true', 'yes')
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        self.torch, self.args, self.clock = torch, args, clock
        self.device = torch.device('cpu') if device_index is None else \
            torch.device('cuda', device_index)
        self.arch = arch
        self.model = torch_model(arch).to(self.device)
        self.x = torch.randn(1, 3, args.scale, args.max_size, device=self.device) * 50
        with torch.no_grad():
            feat = self.model.features(self.x)
        a = shifted_anchors(generate_anchors(), feat.shape[2], feat.shape[3], 16)
        self.anchors = torch.as_tensor(a, dtype=torch.float32, device=self.device)
        self.gen = torch.Generator(device='cpu').manual_seed(0)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=1e-3, momentum=0.9,
                                   weight_decay=5e-4)

    def one_image(self):
        import torchvision
        torch, clock, args, model = self.torch, self.clock, self.args, self.model
        model.eval()

        def parts():
            feat = clock.time('torch %s conv' % self.arch, lambda: model.features(self.x))
            rois = clock.time('torch %s proposal' % self.arch, lambda: torch_proposals(
                *model.rpn(feat), self.anchors, args.scale, args.max_size, 6000,
                args.proposals))

            def region_wise():
                cls, bbox = model.head(feat, rois)
                probs = cls.softmax(1)
                keep = []
                for k in range(1, probs.shape[1]):
                    sel = probs[:, k] > 0.05
                    keep.append(torchvision.ops.nms(rois[sel, 1:], probs[sel, k], 0.3))
                return keep
            clock.time('torch %s region-wise' % self.arch, region_wise)
        with torch.no_grad():
            clock.time('torch %s total' % self.arch, parts)

    def train_step(self):
        torch, args, model, gen, device = self.torch, self.args, self.model, self.gen, \
            self.device
        model.train()

        def step():
            feat = model.features(self.x)
            cls, bbox = model.rpn(feat)
            n = cls.shape[2] * cls.shape[3] * 9
            idx = torch.randint(n, (256,), generator=gen).to(device)
            labels = torch.randint(2, (256,), generator=gen).to(device)
            logits = cls.view(1, 2, 9, -1).permute(0, 2, 3, 1).reshape(-1, 2)[idx]
            rpn_loss = torch.nn.functional.cross_entropy(logits, labels) + \
                torch.nn.functional.smooth_l1_loss(bbox.view(-1, 4)[idx],
                                                   torch.zeros(256, 4, device=device))
            with torch.no_grad():
                rois = torch_proposals(cls, bbox, self.anchors, args.scale, args.max_size,
                                       12000, 2000)
                rois = rois[torch.randint(len(rois), (128,), generator=gen).to(device)]
            c, b = model.head(feat, rois)
            y = torch.randint(21, (128,), generator=gen).to(device)
            loss = rpn_loss + torch.nn.functional.cross_entropy(c, y) + \
                torch.nn.functional.smooth_l1_loss(b, torch.zeros_like(b))
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        self.clock.time('torch %s train iteration' % self.arch, step)


# Report ----------------------------------------------------------------------------------------

def main(argv=None):
    args = parse_args(argv)
    import caffe
    from fast_rcnn.config import cfg_from_file, merge_into_cfg
    from fast_rcnn.experiment import Experiment
    # The config, once, before any net is built: the end-to-end settings at the asked-for size.
    cfg_from_file(os.path.join(ROOT, 'experiments', 'cfgs', 'faster_rcnn_end2end.yml'))
    merge_into_cfg({'TEST': {'HAS_RPN': True, 'SCALES': [args.scale], 'MAX_SIZE': args.max_size,
                             'RPN_POST_NMS_TOP_N': args.proposals},
                    'TRAIN': {'SCALES': [args.scale], 'MAX_SIZE': args.max_size}},
                   source='benchmark_gpu options')
    experiment = Experiment.from_cfg()
    on_gpu = str(args.gpu).lower() != 'cpu' and int(args.gpu) >= 0
    if on_gpu:
        caffe.set_device(int(args.gpu))
        caffe.set_mode_gpu()
        from caffe import gpu
        from caffe.gpu import cudnn
        sync = gpu.synchronize
        major, minor = gpu.compute_capability()
        print('Device: GPU %d (compute capability %d.%d), cuDNN %d, TF32 %s'
              % (int(args.gpu), major, minor, cudnn.version(),
                 'allowed' if gpu.allow_tf32() else 'off (float32)'))
    else:
        caffe.set_mode_cpu()
        sync = lambda: None  # noqa: E731
        print('Device: CPU')
        from benchmark_cpu import machine_peak, print_peak
        peak = machine_peak()
        print_peak(peak)
    clock = Clock(sync)
    nets = [n for n in args.nets.split(',') if n]
    engines = [None] if on_gpu else [e for e in args.engines.split(',') if e]
    have_torch = False
    if not args.no_torch:
        try:
            import torch  # noqa: F401
            import torchvision  # noqa: F401
            have_torch = True
        except ImportError as e:
            print('PyTorch comparison skipped (%s)' % e)
    device = int(args.gpu) if on_gpu else None

    # Detection: every net on every engine and its PyTorch peer, in turn, image after image.
    flops, parts, whole, infos, peers = {}, [], [], [], []
    for arch in nets:
        for engine in engines:
            with tempfile.TemporaryDirectory() as tmp:  # the net's files, read when built
                one_image, im_detect, info = detection_runner(arch, engine, args, clock,
                                                              experiment, tmp)
            parts.append(one_image)
            whole.append(im_detect)
            infos.append((arch, engine, info))
        if have_torch:
            peers.append(TorchPeer(arch, args, clock, device))
            parts.append(peers[-1].one_image)
    interleaved(parts, clock, args)
    detection_totals = dict(clock.totals)
    interleaved(whole, clock, args)
    clock.totals.update(detection_totals)
    for arch, engine, info in infos:
        values = info()
        flops[_label(arch, engine)] = values['gflop']
        print('%s detection: input %s, %d proposals'
              % (_label(arch, engine), 'x'.join(map(str, values['input'])), values['rois']))
    del parts, whole, infos, peers

    if not args.no_train:
        totals = dict(clock.totals)
        with tempfile.TemporaryDirectory() as tmp:
            steps = [training_runner(engine, args, clock, experiment, tmp)
                     for engine in engines]
            if have_torch:
                steps.append(TorchPeer('VGG16', args, clock, device).train_step)
            interleaved(steps, clock, args)
            del steps
        clock.totals.update(totals)

    names = ['ours' if e in (None, 'DEFAULT') else e for e in engines]
    header = ''.join('%11s' % n for n in names)
    if have_torch:
        header += '%11s' % 'torch' + ''.join('%11s' % (n + '/torch') for n in names)
    print('\nmilliseconds per image (median of %d) %s' % (args.iters, header))
    if not on_gpu and 'CAFFE' in names:
        print('  (ours: this runtime as it chooses its convolution algorithms; CAFFE: with engine '
              'CAFFE on every convolution, im2col, as before Winograd)')

    def row(arch, part, name, torch_name):
        line = '  %-6s %-30s' % (arch, name)
        ours = [clock.ms('%s %s' % (_label(arch, e), part)) for e in engines]
        line += ''.join('%11.1f' % v for v in ours)
        if have_torch:
            theirs = clock.ms('torch %s' % torch_name)
            line += '%11.1f' % theirs + ''.join('%11.2f' % (v / theirs) for v in ours)
        print(line)

    for arch in nets:
        for part in ('conv', 'proposal', 'region-wise', 'total'):
            row(arch, part, part, '%s %s' % (arch, part))
        row(arch, 'im_detect', 'im_detect', '%s total' % arch)
        if not on_gpu:
            # The arithmetic floor of each part: its products' FLOPs (as the layers run them)
            # at the measured peak.
            for engine in engines:
                label = _label(arch, engine)
                for part, (run, direct) in zip(('conv', 'proposal', 'region-wise'),
                                               flops[label]):
                    at_peak = 1e3 * run / peak['gflops_cpu']
                    print('  %-12s %-24s %9.1f   (%.1f GFLOP as run, %.1f direct; time / that '
                          '%.2f)' % (label, part + ' at FP32 peak', at_peak, run, direct,
                                     clock.ms('%s %s' % (label, part)) / at_peak))
    if not args.no_train:
        row('VGG16', 'train iteration', 'end2end training iteration', 'VGG16 train iteration')
    if args.result:
        import json
        from caffe.io import atomic_write
        medians = {name: clock.ms(name) for name in sorted(clock.totals)}
        atomic_write(args.result, json.dumps({'device': 'cpu' if not on_gpu else
                                              'gpu %s' % args.gpu, 'iters': args.iters,
                                              'median_ms': medians, 'gflop': flops,
                                              'peak': None if on_gpu else peak}, indent=1))
        print('Wrote %s' % args.result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
