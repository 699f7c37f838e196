"""Times Faster R-CNN on the GPU backend, and the same work on an equivalent PyTorch model.

  tools/benchmark_gpu.py [--gpu 0] [--nets VGG16,ZF] [--iters 20] [--no-torch] [--no-train]

Detection (the paper's Table 5): the test nets of models/pascal_voc/{VGG16,ZF}/faster_rcnn_alt_opt
with random weights on a 600 x 1000 image and 300 proposals, timed per image in three parts:
the shared convolutions, the proposals (RPN head and proposal layer with its NMS) and the
region-wise part (RoI pooling, fully-connected layers, softmax, and per-class NMS of the
detections), plus fast_rcnn.test.im_detect as a whole (which adds the image preparation).
Training: one end-to-end VGG16 iteration (models/pascal_voc/VGG16/faster_rcnn_end2end), data
layer, anchor and proposal targets and the SGD update included.

The PyTorch model (torchvision, random weights; only where torch is installed; on the same
device, so --gpu cpu compares the CPU paths) has the same layout: VGG16's conv layers, a 3x3/512
RPN with 9 anchors, proposals decoded and NMS'd on the device (torchvision.ops.nms), RoI pooling
to 7 x 7 (torchvision.ops.roi_pool), fc6/fc7 of 4096 and the two output layers; its training step
samples RPN and RoI targets at random instead of by overlap (a little less work than ours). It
runs in float32 too unless TF32 is allowed (CAFFE_ALLOW_TF32), as this runtime does. Printed:
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


def time_detection(arch, args, clock, sync):
    import caffe
    from fast_rcnn import test as frcnn_test
    from fast_rcnn.config import cfg
    settings = frcnn_test.TestSettings.from_cfg(cfg)
    prototxt = os.path.join(ROOT, 'models', 'pascal_voc', arch, 'faster_rcnn_alt_opt',
                            'faster_rcnn_test.pt')
    net = caffe.Net(prototxt, caffe.TEST)
    random_weights(net)
    im = synthetic_image(args.scale, args.max_size)
    data, _ = frcnn_test.image_blob(im, settings)
    im_info = np.array([[data.shape[2], data.shape[3], 1.0]], np.float32)
    conv, proposal, region = _segments(net)

    def detections():
        scores = net.blobs['cls_prob'].data.reshape(net.blobs['cls_prob'].shape[0], -1)
        boxes = np.tile(net.blobs['rois'].data[:, 1:5], (1, scores.shape[1]))
        nms_function = settings.nms_function()
        return [frcnn_test.detections_for_class(scores, boxes, k, 0.05, 0.3, nms_function)
                for k in range(1, scores.shape[1])]

    def one_image():
        net.blobs['data'].reshape(*data.shape)
        net.blobs['data'].data[...] = data
        net.blobs['im_info'].reshape(*im_info.shape)
        net.blobs['im_info'].data[...] = im_info
        clock.time('%s conv' % arch, lambda: net.forward_from_to(*conv))
        clock.time('%s proposal' % arch, lambda: net.forward_from_to(*proposal))

        def region_wise():
            net.forward_from_to(*region)
            return detections()
        clock.time('%s region-wise' % arch, region_wise)

    for i in range(args.warmup + args.iters):
        if i == args.warmup:
            clock.drop(arch + ' ')
        clock.time('%s total' % arch, one_image)
    for i in range(args.warmup + args.iters):
        if i == args.warmup:
            clock.drop('%s im_detect' % arch)
        clock.time('%s im_detect' % arch, lambda: frcnn_test.im_detect(net, im,
                                                                        settings=settings))
    rois = net.blobs['rois'].shape[0]
    return {'rois': rois, 'input': data.shape, 'gflop': part_gflop(net, (conv, proposal, region))}


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


def time_training(args, clock):
    import caffe
    with tempfile.TemporaryDirectory() as tmp:
        image = os.path.join(tmp, 'image.jpg')
        cv2.imwrite(image, synthetic_image(args.scale, args.max_size, seed=1))
        boxes = np.array([[100, 120, 400, 380], [500, 50, 800, 450], [300, 300, 500, 580]],
                         np.float32) * np.float32(min(args.scale / 600.0, args.max_size / 1000.0))
        entry = {'image': image, 'width': args.max_size, 'height': args.scale, 'boxes': boxes,
                 'gt_classes': np.array([3, 7, 15]), 'flipped': False,
                 'max_overlaps': np.ones(3, np.float32)}
        train = os.path.join(ROOT, 'models', 'pascal_voc', 'VGG16', 'faster_rcnn_end2end',
                             'train.prototxt')
        solver_file = os.path.join(tmp, 'solver.prototxt')
        with open(solver_file, 'w') as f:
            f.write('train_net: "%s"\nbase_lr: 0.001\nlr_policy: "fixed"\nmomentum: 0.9\n'
                    'weight_decay: 0.0005\ndisplay: 0\nsnapshot: 0\n' % train)
        solver = caffe.SGDSolver(solver_file)
        random_weights(solver.net)
        solver.net.layers[0].set_roidb([entry])
        for i in range(args.warmup + args.iters):
            if i == args.warmup:
                clock.drop('VGG16 train iteration')
            clock.time('VGG16 train iteration', lambda: solver.step(1))


# PyTorch ---------------------------------------------------------------------------------------

def torch_model(num_classes=21, num_anchors=9):
    import torch
    import torchvision
    from torch import nn

    class FasterRCNNVGG16(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = torchvision.models.vgg16(weights=None).features[:30]  # to relu5_3
            self.rpn_conv = nn.Conv2d(512, 512, 3, padding=1)
            self.rpn_cls = nn.Conv2d(512, 2 * num_anchors, 1)
            self.rpn_bbox = nn.Conv2d(512, 4 * num_anchors, 1)
            self.fc6 = nn.Linear(512 * 7 * 7, 4096)
            self.fc7 = nn.Linear(4096, 4096)
            self.cls_score = nn.Linear(4096, num_classes)
            self.bbox_pred = nn.Linear(4096, 4 * num_classes)
            self.dropout = nn.Dropout(0.5)

        def rpn(self, feat):
            h = torch.relu(self.rpn_conv(feat))
            return self.rpn_cls(h), self.rpn_bbox(h)

        def head(self, feat, rois):
            pooled = torchvision.ops.roi_pool(feat, rois, (7, 7), 1.0 / 16)
            h = self.dropout(torch.relu(self.fc6(pooled.flatten(1))))
            h = self.dropout(torch.relu(self.fc7(h)))
            return self.cls_score(h), self.bbox_pred(h)

    return FasterRCNNVGG16()


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


def time_torch(args, clock, device_index):
    """The PyTorch model's times, on GPU device_index, or on the CPU when it is None."""
    import torch
    import torchvision
    from rpn.generate_anchors import generate_anchors, shifted_anchors
    tf32 = os.environ.get('CAFFE_ALLOW_TF32', '').lower() in ('1', 'true', 'yes')
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    device = torch.device('cpu') if device_index is None else torch.device('cuda', device_index)
    model = torch_model().to(device)
    x = torch.randn(1, 3, args.scale, args.max_size, device=device) * 50

    def anchors_for(feat):
        a = shifted_anchors(generate_anchors(), feat.shape[2], feat.shape[3], 16)
        return torch.as_tensor(a, dtype=torch.float32, device=device)

    model.eval()
    with torch.no_grad():
        anchors = anchors_for(model.features(x))
        def one_image():
            feat = clock.time('torch conv', lambda: model.features(x))
            rois = clock.time('torch proposal', lambda: torch_proposals(
                *model.rpn(feat), anchors, args.scale, args.max_size, 6000, args.proposals))

            def region_wise():
                cls, bbox = model.head(feat, rois)
                probs = cls.softmax(1)
                keep = []
                for k in range(1, probs.shape[1]):
                    sel = probs[:, k] > 0.05
                    keep.append(torchvision.ops.nms(rois[sel, 1:], probs[sel, k], 0.3))
                return keep
            clock.time('torch region-wise', region_wise)

        for i in range(args.warmup + args.iters):
            if i == args.warmup:
                clock.drop('torch ')
            clock.time('torch total', one_image)

    if args.no_train:
        return
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    gen = torch.Generator(device='cpu').manual_seed(0)

    def step():
        feat = model.features(x)
        cls, bbox = model.rpn(feat)
        n = cls.shape[2] * cls.shape[3] * 9
        idx = torch.randint(n, (256,), generator=gen).to(device)
        labels = torch.randint(2, (256,), generator=gen).to(device)
        logits = cls.view(1, 2, 9, -1).permute(0, 2, 3, 1).reshape(-1, 2)[idx]
        rpn_loss = torch.nn.functional.cross_entropy(logits, labels) + \
            torch.nn.functional.smooth_l1_loss(bbox.view(-1, 4)[idx], torch.zeros(256, 4,
                                                                                 device=device))
        with torch.no_grad():
            rois = torch_proposals(cls, bbox, anchors, args.scale, args.max_size, 12000, 2000)
            rois = rois[torch.randint(len(rois), (128,), generator=gen).to(device)]
        c, b = model.head(feat, rois)
        y = torch.randint(21, (128,), generator=gen).to(device)
        loss = rpn_loss + torch.nn.functional.cross_entropy(c, y) + \
            torch.nn.functional.smooth_l1_loss(b, torch.zeros_like(b))
        opt.zero_grad()
        loss.backward()
        opt.step()

    for i in range(args.warmup + args.iters):
        if i == args.warmup:
            clock.drop('torch train iteration')
        clock.time('torch train iteration', step)


# Report ----------------------------------------------------------------------------------------

def main(argv=None):
    args = parse_args(argv)
    import caffe
    from fast_rcnn.config import cfg_from_file, merge_into_cfg
    # The config, once, before any net is built: the end-to-end settings at the asked-for size.
    cfg_from_file(os.path.join(ROOT, 'experiments', 'cfgs', 'faster_rcnn_end2end.yml'))
    merge_into_cfg({'TEST': {'HAS_RPN': True, 'SCALES': [args.scale], 'MAX_SIZE': args.max_size,
                             'RPN_POST_NMS_TOP_N': args.proposals},
                    'TRAIN': {'SCALES': [args.scale], 'MAX_SIZE': args.max_size}},
                   source='benchmark_gpu options')
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
    flops = {}
    for arch in nets:
        info = time_detection(arch, args, clock, sync)
        flops[arch] = info['gflop']
        print('%s detection: input %s, %d proposals' % (arch, 'x'.join(map(str, info['input'])),
                                                         info['rois']), flush=True)
    if not args.no_train:
        time_training(args, clock)

    have_torch = False
    if not args.no_torch:
        try:
            import torch  # noqa: F401
            import torchvision  # noqa: F401
            have_torch = True
        except ImportError as e:
            print('PyTorch comparison skipped (%s)' % e)
    if have_torch:
        time_torch(args, clock, int(args.gpu) if on_gpu else None)

    print('\nmilliseconds per image (median of %d)        ours%s'
          % (args.iters, '     torch   ours/torch' if have_torch else ''))
    for arch in nets:
        for part in ('conv', 'proposal', 'region-wise', 'total', 'im_detect'):
            ours = clock.ms('%s %s' % (arch, part))
            line = '  %-6s %-28s %9.1f' % (arch, part, ours)
            if have_torch and arch == 'VGG16' and part != 'im_detect':
                theirs = clock.ms('torch %s' % part)
                line += ' %9.1f %10.2f' % (theirs, ours / theirs)
            print(line)
        if not on_gpu:
            # The arithmetic floor of each part: its products' FLOPs (as the layers run them)
            # at the measured peak.
            for part, (run, direct) in zip(('conv', 'proposal', 'region-wise'), flops[arch]):
                at_peak = 1e3 * run / peak['gflops_cpu']
                print('  %-6s %-28s %9.1f   (%.1f GFLOP as run, %.1f direct; ours / that %.2f)'
                      % (arch, part + ' at FP32 peak', at_peak, run, direct,
                         clock.ms('%s %s' % (arch, part)) / at_peak))
        total = clock.ms('%s total' % arch)
        print('  %-6s %-28s %9.1f' % (arch, 'frames per second', 1000.0 / total))
    if not args.no_train:
        ours = clock.ms('VGG16 train iteration')
        line = '  %-6s %-28s %9.1f' % ('VGG16', 'end2end training iteration', ours)
        if have_torch:
            theirs = clock.ms('torch train iteration')
            line += ' %9.1f %10.2f' % (theirs, ours / theirs)
        print(line)
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
