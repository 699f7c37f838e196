"""RoIDataLayer: the training net's input layer; feeds minibatches drawn from a roidb.

Tops, with cfg.TRAIN.HAS_RPN: data, im_info, gt_boxes. Otherwise: data, rois, labels and, with
cfg.TRAIN.BBOX_REG, bbox_targets, bbox_inside_weights, bbox_outside_weights.
param_str: num_classes (required). The trainer calls set_roidb(roidb) before the first forward.
"""
import numpy as np

import caffe
from fast_rcnn.config import cfg
from roi_data_layer.minibatch import MinibatchSettings, get_minibatch
from rpn.layer_io import parse_param_str


def top_names(has_rpn, bbox_reg):
    """The layer's tops, in order, for a net with an RPN (ground truth in) or without one
    (sampled RoIs in, with box targets when bbox_reg)."""
    if has_rpn:
        return ['data', 'im_info', 'gt_boxes']
    names = ['data', 'rois', 'labels']
    if bbox_reg:
        names += ['bbox_targets', 'bbox_inside_weights', 'bbox_outside_weights']
    return names


def shuffled_order(widths, heights, ims_per_batch, aspect_grouping):
    """A random order of the images in which every run of ims_per_batch (from the start) is one
    minibatch. With aspect_grouping, a minibatch holds only landscape (w >= h) or only portrait
    images where the counts allow, so the padded blob wastes little; leftover images of the two
    kinds are mixed in the last minibatches.
    """
    widths = np.asarray(widths)
    heights = np.asarray(heights)
    if not aspect_grouping or ims_per_batch == 1:
        return np.random.permutation(widths.size)
    horizontal = widths >= heights
    batches, leftover = [], []
    for group in (np.where(horizontal)[0], np.where(~horizontal)[0]):
        whole, rest = _whole_batches(np.random.permutation(group), ims_per_batch)
        batches += whole
        leftover.append(rest)
    mixed, rest = _whole_batches(np.concatenate(leftover), ims_per_batch)
    batches += mixed
    batches = [batches[i] for i in np.random.permutation(len(batches))]
    # An incomplete last minibatch stays at the end, where the epoch ends before it.
    return np.concatenate(batches + [rest]).astype(np.intp)


def _whole_batches(inds, size):
    """Splits inds into runs of `size`; returns (list of runs, the shorter remainder)."""
    whole = inds.size - inds.size % size
    return [inds[i:i + size] for i in range(0, whole, size)], inds[whole:]


class RoIDataLayer(caffe.Layer):

    def setup(self, bottom, top):
        params = parse_param_str(self, {}, required=('num_classes',))
        self._num_classes = params['num_classes']
        if cfg.TRAIN.USE_PREFETCH:
            raise caffe.CaffeError('RoIDataLayer %r: cfg.TRAIN.USE_PREFETCH is not supported; '
                                   'minibatches are made in the training process (set it False)'
                                   % self.name)
        self._settings = settings = MinibatchSettings.from_cfg(cfg)
        names = top_names(settings.has_rpn, settings.bbox_reg)
        if len(top) != len(names):
            raise caffe.CaffeError('RoIDataLayer %r has %d tops, but with TRAIN.HAS_RPN %s and '
                                   'TRAIN.BBOX_REG %s it produces %d: %s'
                                   % (self.name, len(top), settings.has_rpn, settings.bbox_reg,
                                      len(names), ', '.join(names)))
        self._aspect_grouping = bool(cfg.TRAIN.ASPECT_GROUPING)
        self._name_to_top = {name: i for i, name in enumerate(names)}
        self._roidb = None
        self._perm = np.zeros(0, dtype=np.intp)
        self._cur = 0

        # Shapes until the first minibatch arrives (the largest image the scales allow).
        k = 4 * self._num_classes
        initial = {'data': (settings.ims_per_batch, 3, max(settings.scales), settings.max_size),
                   'im_info': (settings.ims_per_batch, 3),
                   'gt_boxes': (1, 5 if settings.ims_per_batch == 1 else 6),
                   'rois': (1, 5), 'labels': (1,),
                   'bbox_targets': (1, k), 'bbox_inside_weights': (1, k),
                   'bbox_outside_weights': (1, k)}
        for name, i in self._name_to_top.items():
            top[i].reshape(*initial[name])

    def set_roidb(self, roidb):
        """Sets the roidb to draw minibatches from and starts a new shuffled epoch."""
        if not roidb:
            raise caffe.CaffeError('RoIDataLayer %r: the roidb is empty' % self.name)
        if len(roidb) < self._settings.ims_per_batch:
            raise caffe.CaffeError('RoIDataLayer %r: the roidb has %d images, fewer than '
                                   'cfg.TRAIN.IMS_PER_BATCH (%d)'
                                   % (self.name, len(roidb), self._settings.ims_per_batch))
        self._roidb = roidb
        self._shuffle_roidb_inds()

    def get_state(self):
        """Where the layer is in its epoch: (shuffled order, cursor), for snapshots."""
        return {'perm': self._perm.copy(), 'cur': self._cur}

    def set_state(self, state):
        """Continues from a get_state() of a run on the same roidb."""
        perm = np.asarray(state['perm'], dtype=np.intp)
        if self._roidb is None or (perm.size and perm.max() >= len(self._roidb)):
            raise caffe.CaffeError('RoIDataLayer %r: the saved position is for a roidb of '
                                   'another size (%d images now)'
                                   % (self.name, len(self._roidb or ())))
        self._perm, self._cur = perm, int(state['cur'])

    def _shuffle_roidb_inds(self):
        self._perm = shuffled_order([e['width'] for e in self._roidb],
                                    [e['height'] for e in self._roidb],
                                    self._settings.ims_per_batch, self._aspect_grouping)
        self._cur = 0

    def _get_next_minibatch_inds(self):
        n = self._settings.ims_per_batch
        if self._cur + n > len(self._perm):
            self._shuffle_roidb_inds()
        inds = self._perm[self._cur:self._cur + n]
        self._cur += n
        return inds

    def _get_next_minibatch(self):
        return get_minibatch([self._roidb[i] for i in self._get_next_minibatch_inds()],
                             self._num_classes, self._settings)

    def reshape(self, bottom, top):
        # The tops take each minibatch's shapes in forward.
        pass

    def forward(self, bottom, top):
        if self._roidb is None:
            raise caffe.CaffeError('RoIDataLayer %r: call set_roidb(roidb) before forward'
                                   % self.name)
        blobs = self._get_next_minibatch()
        for name, i in self._name_to_top.items():
            blob = blobs[name]
            top[i].reshape(*blob.shape)
            top[i].data[...] = blob

    def backward(self, top, propagate_down, bottom):
        pass
