"""RoIDataLayer: the training net's input layer; feeds minibatches drawn from a roidb.

Tops, with has_rpn: data, im_info, gt_boxes. Otherwise: data, rois, labels and, with bbox_reg,
bbox_targets, bbox_inside_weights, bbox_outside_weights.
param_str: num_classes (required); how minibatches are made, the fields of
roi_data_layer.minibatch.MinibatchSettings (scales, max_size, pixel_means, has_rpn, bbox_reg,
ims_per_batch, inside_weights, and the RoI sampling rule's batch_size, fg_fraction, fg_thresh,
bg_thresh_hi, bg_thresh_lo; defaults: the class's); aspect_grouping (default true). The trainer
calls set_roidb(roidb) before the first forward.

Data-parallel training (caffe.solver_count() N > 1): every rank draws the same shuffled order
from a random stream of its own, seeded alike on all ranks (set_roidb's shuffle_seed), and rank r
takes minibatch r of each run of N; the cursor then moves past all N. The ranks together read at
each iteration what one process reads in N iterations (or N passes of iter_size).
"""
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import caffe
from roi_data_layer import minibatch
from roi_data_layer.minibatch import MinibatchSettings, get_minibatch
from utils.param_str import layer_name, layer_params, settings_from_params, settings_keys


def top_names(has_rpn, bbox_reg):
    """The layer's tops, in order, for a net with an RPN (ground truth in) or without one
    (sampled RoIs in, with box targets when bbox_reg)."""
    if has_rpn:
        return ['data', 'im_info', 'gt_boxes']
    names = ['data', 'rois', 'labels']
    if bbox_reg:
        names += ['bbox_targets', 'bbox_inside_weights', 'bbox_outside_weights']
    return names


def shuffled_order(widths, heights, ims_per_batch, aspect_grouping, rng=np.random):
    """A random order of the images in which every run of ims_per_batch (from the start) is one
    minibatch. With aspect_grouping, a minibatch holds only landscape (w >= h) or only portrait
    images where the counts allow, so the padded blob wastes little; leftover images of the two
    kinds are mixed in the last minibatches. rng: numpy's global stream or a RandomState.
    """
    widths = np.asarray(widths)
    heights = np.asarray(heights)
    if not aspect_grouping or ims_per_batch == 1:
        return rng.permutation(widths.size)
    horizontal = widths >= heights
    batches, leftover = [], []
    for group in (np.where(horizontal)[0], np.where(~horizontal)[0]):
        whole, rest = _whole_batches(rng.permutation(group), ims_per_batch)
        batches += whole
        leftover.append(rest)
    mixed, rest = _whole_batches(np.concatenate(leftover), ims_per_batch)
    batches += mixed
    batches = [batches[i] for i in rng.permutation(len(batches))]
    # An incomplete last minibatch stays at the end, where the epoch ends before it.
    return np.concatenate(batches + [rest]).astype(np.intp)


def _whole_batches(inds, size):
    """Splits inds into runs of `size`; returns (list of runs, the shorter remainder)."""
    whole = inds.size - inds.size % size
    return [inds[i:i + size] for i in range(0, whole, size)], inds[whole:]


class ImagePrefetch:
    """Reads the next minibatch's images in a background thread while the net computes the
    current one, as Caffe's data layers prefetch in a thread of their own. Reading, decoding
    and, with a single scale, mean subtraction and scaling move there (cv2 lets go of the GIL
    meanwhile); everything that draws random numbers (scales, RoI sampling, the next shuffle)
    stays in the training thread, in its order, so a seeded run gives the same numbers with or
    without it. A read's error is raised when its minibatch is taken, as it would have been
    without the prefetch."""

    def __init__(self):
        self._pool = None
        self._pending = None

    def start(self, roidb, inds, settings):
        """Starts reading the images of roidb[inds] (minibatch.read_ahead)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix='roidb-prefetch')
        entries = [roidb[i] for i in inds]
        self._pending = (roidb, tuple(inds),
                         self._pool.submit(minibatch.read_ahead, entries, settings))

    def take(self, roidb, inds):
        """The images of roidb[inds]: the prefetched ones if they are those, else None."""
        pending, self._pending = self._pending, None
        if pending is None or pending[0] is not roidb or pending[1] != tuple(inds):
            return None
        return pending[2].result()

    def cancel(self):
        self._pending = None


class RoIDataLayer(caffe.Layer):

    def setup(self, bottom, top):
        params = layer_params(self, dict(settings_keys(MinibatchSettings), aspect_grouping=True),
                              required=('num_classes',))
        self._num_classes = params['num_classes']
        try:
            # How minibatches are made (MinibatchSettings); the trainer reads it too.
            self.settings = settings = settings_from_params(MinibatchSettings, params,
                                                            layer_name(self))
        except ValueError as e:
            raise caffe.CaffeError(str(e)) from None
        names = top_names(settings.has_rpn, settings.bbox_reg)
        if len(top) != len(names):
            raise caffe.CaffeError('RoIDataLayer %r has %d tops, but with has_rpn %s and '
                                   'bbox_reg %s it produces %d: %s'
                                   % (self.name, len(top), settings.has_rpn, settings.bbox_reg,
                                      len(names), ', '.join(names)))
        self._aspect_grouping = params['aspect_grouping']
        if not isinstance(self._aspect_grouping, bool):
            raise caffe.CaffeError('RoIDataLayer %r: aspect_grouping should be true or false, '
                                   'got %r' % (self.name, self._aspect_grouping))
        self._name_to_top = {name: i for i, name in enumerate(names)}
        self._roidb = None
        self._perm = np.zeros(0, dtype=np.intp)
        self._cur = 0
        self._rank, self._ranks = 0, 1
        self._shuffle_rng = np.random
        self._prefetch = ImagePrefetch()

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

    def set_roidb(self, roidb, shuffle_seed=None):
        """Sets the roidb to draw minibatches from and starts a new shuffled epoch. The order
        comes from numpy's global random stream, or, given shuffle_seed, from a stream of the
        layer's own; data-parallel ranks (caffe.solver_count() > 1) need the same shuffle_seed
        on every rank, so that they share the order and each reads its own part of it."""
        self._rank, self._ranks = caffe.solver_rank(), caffe.solver_count()
        if not roidb:
            raise caffe.CaffeError('RoIDataLayer %r: the roidb is empty' % self.name)
        needed = self.settings.ims_per_batch * self._ranks
        if len(roidb) < needed:
            raise caffe.CaffeError('RoIDataLayer %r: the roidb has %d images, fewer than '
                                   'ims_per_batch (%d) x %d solver(s)'
                                   % (self.name, len(roidb), self.settings.ims_per_batch,
                                      self._ranks))
        if self._ranks > 1 and shuffle_seed is None:
            raise caffe.CaffeError('RoIDataLayer %r: with %d data-parallel solvers the ranks must '
                                   'share one shuffled order: pass the same shuffle_seed to '
                                   'set_roidb on every rank' % (self.name, self._ranks))
        self._shuffle_rng = np.random if shuffle_seed is None else \
            np.random.RandomState(int(shuffle_seed) % 2 ** 32)
        self._roidb = roidb
        self._prefetch.cancel()
        self._shuffle_roidb_inds()

    def get_state(self):
        """Where the layer is in its epoch: (shuffled order, cursor, and the state of its own
        shuffling stream, if it has one), for snapshots."""
        own = self._shuffle_rng is not np.random
        return {'perm': self._perm.copy(), 'cur': self._cur,
                'shuffle_rng': self._shuffle_rng.get_state() if own else None}

    def set_state(self, state):
        """Continues from a get_state() of a run on the same roidb."""
        perm = np.asarray(state['perm'], dtype=np.intp)
        if self._roidb is None or (perm.size and perm.max() >= len(self._roidb)):
            raise caffe.CaffeError('RoIDataLayer %r: the saved position is for a roidb of '
                                   'another size (%d images now)'
                                   % (self.name, len(self._roidb or ())))
        self._perm, self._cur = perm, int(state['cur'])
        self._prefetch.cancel()
        if state.get('shuffle_rng') is not None and self._shuffle_rng is not np.random:
            self._shuffle_rng.set_state(state['shuffle_rng'])

    def _shuffle_roidb_inds(self):
        self._perm = shuffled_order([e['width'] for e in self._roidb],
                                    [e['height'] for e in self._roidb],
                                    self.settings.ims_per_batch, self._aspect_grouping,
                                    self._shuffle_rng)
        self._cur = 0

    def _get_next_minibatch_inds(self):
        """This rank's images of the next run of solver_count minibatches."""
        inds = self._upcoming_inds()
        if inds is None:
            self._shuffle_roidb_inds()
            inds = self._upcoming_inds()
        self._cur += self.settings.ims_per_batch * self._ranks
        return inds

    def _upcoming_inds(self):
        """This rank's images of the next minibatch if the current order holds it (no new
        shuffle, so no random draw, is needed to know them), else None."""
        n = self.settings.ims_per_batch
        if self._cur + n * self._ranks > len(self._perm):
            return None
        start = self._cur + self._rank * n
        return self._perm[start:start + n]

    def _get_next_minibatch(self):
        inds = self._get_next_minibatch_inds()
        images = self._prefetch.take(self._roidb, inds)
        blobs = get_minibatch([self._roidb[i] for i in inds], self._num_classes, self.settings,
                              images)
        upcoming = self._upcoming_inds()
        if upcoming is not None:
            self._prefetch.start(self._roidb, upcoming, self.settings)
        return blobs

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
