"""Net: a NetParameter turned into a graph of layers, with pycaffe's Python interface.

Construction follows Caffe's Net::Init: upgrade old formats, keep the layers whose include/exclude
rules match the NetState, insert Split layers where one top feeds several bottoms, set up layers
in order (in-place tops reuse the bottom's Blob), assign loss weights, share named parameters,
and work out which layers and blobs need a backward pass.
"""
import collections

import numpy as np

from . import common, io
from .blob import Blob
from .common import CaffeError
from .layer import TEST, TRAIN, layer_class
from .proto import caffe_pb2


# NetState filtering ----------------------------------------------------------------------------

def _state_meets_rule(state, rule):
    if rule.HasField('phase') and rule.phase != state.phase:
        return False
    if rule.HasField('min_level') and state.level < rule.min_level:
        return False
    if rule.HasField('max_level') and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    if any(s not in stages for s in rule.stage):
        return False
    if any(s in stages for s in rule.not_stage):
        return False
    return True


def filter_net(param, state):
    """The layers of `param` that the NetState keeps (Caffe's FilterNet)."""
    kept = caffe_pb2.NetParameter()
    kept.CopyFrom(param)
    del kept.layer[:]
    for layer in param.layer:
        if layer.include and layer.exclude:
            raise CaffeError('layer %r has both include and exclude rules' % layer.name)
        if layer.include:
            keep = any(_state_meets_rule(state, r) for r in layer.include)
        else:
            keep = not any(_state_meets_rule(state, r) for r in layer.exclude)
        if keep:
            kept.layer.add().CopyFrom(layer)
    return kept


# Split insertion --------------------------------------------------------------------------------

def split_blob_name(layer_name, blob_name, top_index, split_index):
    return '%s_%s_%d_split_%d' % (blob_name, layer_name, top_index, split_index)


def insert_splits(param):
    """Where one top is read by several bottoms (or read and also weighted as a loss), a Split
    layer gives each reader its own copy, so the readers' gradients add up in the Split's
    backward instead of overwriting each other."""
    last_top = {}                              # blob name -> (layer index, top index)
    readers = collections.Counter()            # (layer index, top index) -> number of reads
    source_of = {}                             # (layer index, bottom index) -> (layer, top)
    loss_weight = {}
    for i, layer in enumerate(param.layer):
        for j, name in enumerate(layer.bottom):
            if name not in last_top:
                raise CaffeError('layer %r (%s) reads bottom %r, which no earlier layer produces'
                                 % (layer.name, layer.type, name))
            source_of[i, j] = last_top[name]
            readers[last_top[name]] += 1
        for j, name in enumerate(layer.top):
            last_top[name] = (i, j)
            w = layer.loss_weight[j] if j < len(layer.loss_weight) else 0.0
            if w:
                loss_weight[i, j] = w
                readers[i, j] += 1

    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    del out.layer[:]
    next_split = collections.Counter()
    for i, layer in enumerate(param.layer):
        new = out.layer.add()
        new.CopyFrom(layer)
        for j, name in enumerate(layer.bottom):
            src = source_of[i, j]
            if readers[src] > 1:
                new.bottom[j] = split_blob_name(param.layer[src[0]].name, name, src[1],
                                                next_split[src])
                next_split[src] += 1
        for j, name in enumerate(layer.top):
            if readers[i, j] <= 1:
                continue
            split = out.layer.add(name='%s_%s_%d_split' % (name, layer.name, j), type='Split')
            split.bottom.append(name)
            w = loss_weight.get((i, j), 0.0)
            for k in range(readers[i, j]):
                split.top.append(split_blob_name(layer.name, name, j, k))
                if w:
                    split.loss_weight.append(w if k == 0 else 0.0)
            if w:
                # The loss is now counted on the split's first top, which nobody reads.
                del new.loss_weight[:]
                next_split[i, j] += 1
    return out


# The net ----------------------------------------------------------------------------------------

class Net:
    """pycaffe's Net: Net(prototxt, phase), Net(prototxt, weights, phase),
    Net(prototxt, phase=..., weights=..., level=..., stages=[...])."""

    def __init__(self, network_file, *args, phase=None, weights=None, level=0, stages=None):
        if len(args) == 1:
            phase = args[0] if phase is None else phase
        elif len(args) == 2:
            weights, phase = args
        elif len(args) > 2:
            raise TypeError('Net(network_file, [weights,] phase)')
        if phase is None:
            raise TypeError('Net needs a phase (caffe.TRAIN or caffe.TEST)')
        if isinstance(network_file, caffe_pb2.NetParameter):
            param = network_file
            self._source = param.name or '<NetParameter>'
        else:
            param = io.read_prototxt(network_file, caffe_pb2.NetParameter())
            self._source = network_file
        state = caffe_pb2.NetState()
        if param.HasField('state'):
            state.CopyFrom(param.state)
        state.phase = phase
        state.level = level
        state.stage.extend(stages or [])
        self._init(param, state)
        if weights is not None:
            self.copy_from(weights)

    # Construction -------------------------------------------------------------------------------
    def _init(self, param, state):
        try:
            param = io.upgrade_net(param)
        except CaffeError as e:
            raise CaffeError('%s: %s' % (self._source, e))
        self.phase = state.phase
        self.name = param.name
        self._param = filter_net(param, state)
        self.force_backward = param.force_backward
        try:
            expanded = insert_splits(self._param)
        except CaffeError as e:
            raise CaffeError('%s: %s' % (self._source, e))

        self.blobs = collections.OrderedDict()
        self.layers = []
        self._layer_names = []
        self.bottom_vecs, self.top_vecs = [], []
        self.bottom_names, self.top_names = collections.OrderedDict(), collections.OrderedDict()
        self.inputs, self._input_set = [], set()
        self._bottom_need_backward = []
        self._layer_need_backward = []
        self._loss_weights = []            # per layer: list of (top index, weight)
        self.learnable_params, self.params_lr, self.params_weight_decay = [], [], []
        self._param_owner = {}              # ParamSpec name -> (blob, lr_mult, decay_mult)
        self.params = collections.OrderedDict()
        blob_need_backward = {}
        available = collections.OrderedDict()   # blobs produced and not (yet) read: the outputs

        for lp in expanded.layer:
            if lp.name in self.bottom_names:
                raise CaffeError('%s: two layers are named %r' % (self._source, lp.name))
            layer = layer_class(lp)(lp, self.phase)
            bottom = [self.blobs[b] for b in lp.bottom]
            for b in lp.bottom:
                available.pop(b, None)
            top = []
            for name in lp.top:
                if name in lp.bottom:          # in place: the top is the bottom's Blob
                    top.append(self.blobs[name])
                    continue
                blob = Blob()
                self.blobs[name] = blob
                top.append(blob)
                if lp.type == 'Input':
                    self.inputs.append(name)
            if lp.propagate_down and len(lp.propagate_down) != len(lp.bottom):
                raise CaffeError('%s: layer %r has %d propagate_down entries for %d bottoms'
                                 % (self._source, lp.name, len(lp.propagate_down),
                                    len(lp.bottom)))
            bottom_nb = [blob_need_backward.get(b, False) and
                         (not lp.propagate_down or lp.propagate_down[j])
                         for j, b in enumerate(lp.bottom)]
            need_backward = any(bottom_nb)

            layer.setup(bottom, top)
            layer.reshape(bottom, top)
            need_backward |= self._setup_params(layer, lp)

            weights = list(lp.loss_weight)
            if not weights and layer.default_loss_weight and top:
                weights = [layer.default_loss_weight]
            if len(weights) > len(top):
                raise CaffeError('%s: layer %r has %d loss_weight values for %d tops'
                                 % (self._source, lp.name, len(weights), len(top)))
            self._loss_weights.append([(j, w) for j, w in enumerate(weights) if w])
            for name in lp.top:
                blob_need_backward[name] = need_backward
                available[name] = True

            self.layers.append(layer)
            self._layer_names.append(lp.name)
            self.bottom_vecs.append(bottom)
            self.top_vecs.append(top)
            self.bottom_names[lp.name] = list(lp.bottom)
            self.top_names[lp.name] = list(lp.top)
            self._bottom_need_backward.append(bottom_nb)
            self._layer_need_backward.append(need_backward)
            if len(layer.blobs):
                self.params[lp.name] = layer.blobs

        self.outputs = list(available)
        self._prune_backward()
        if self.force_backward:
            self._force_backward()
        self.layer_dict = collections.OrderedDict(zip(self._layer_names, self.layers))

    def _setup_params(self, layer, lp):
        """Registers the layer's parameter blobs as learnable (or shares them by ParamSpec name);
        returns whether any of them is learned (lr_mult != 0)."""
        if len(lp.param) > len(layer.blobs):
            raise CaffeError('%s: layer %r has %d param specs but %d parameter blobs'
                             % (self._source, lp.name, len(lp.param), len(layer.blobs)))
        learned = []
        for i, blob in enumerate(layer.blobs):
            spec = lp.param[i] if i < len(lp.param) else caffe_pb2.ParamSpec()
            owner = self._param_owner.get(spec.name) if spec.name else None
            if owner is not None:
                owner_blob, lr, decay = owner
                if owner_blob.shape != blob.shape:
                    raise CaffeError('%s: layer %r shares param %r of shape %s with a blob of '
                                     'shape %s' % (self._source, lp.name, spec.name,
                                                   owner_blob.shape, blob.shape))
                layer.blobs[i] = owner_blob
                learned.append(lr != 0)
                continue
            self.learnable_params.append(blob)
            self.params_lr.append(spec.lr_mult)
            self.params_weight_decay.append(spec.decay_mult)
            if spec.name:
                self._param_owner[spec.name] = (blob, spec.lr_mult, spec.decay_mult)
            learned.append(spec.lr_mult != 0)
        layer.param_propagate_down = learned
        return any(learned)

    def _prune_backward(self):
        """Backward runs only through layers that lead to a loss and have something below them
        that needs a gradient (Caffe's pass from the last layer to the first)."""
        under_loss, skip = set(), set()
        for i in reversed(range(len(self.layers))):
            lp_tops = self.top_names[self._layer_names[i]]
            weighted = {j for j, _ in self._loss_weights[i]}
            contributes = any(j in weighted or t in under_loss for j, t in enumerate(lp_tops))
            skip_all = all(t in skip for t in lp_tops) if lp_tops else True
            if self._layer_need_backward[i] and skip_all:
                self._layer_need_backward[i] = False
                self._bottom_need_backward[i] = [False] * len(self._bottom_need_backward[i])
            if not contributes:
                self._layer_need_backward[i] = False
            for j, b in enumerate(self.bottom_names[self._layer_names[i]]):
                if contributes:
                    under_loss.add(b)
                else:
                    self._bottom_need_backward[i][j] = False
                if not self._bottom_need_backward[i][j]:
                    skip.add(b)

    def _force_backward(self):
        for i, layer in enumerate(self.layers):
            self._layer_need_backward[i] = True
            self._bottom_need_backward[i] = [True] * len(self.bottom_vecs[i])
            layer.param_propagate_down = [True] * len(layer.blobs)

    # pycaffe interface --------------------------------------------------------------------------
    @property
    def _layer_index(self):
        return {name: i for i, name in enumerate(self._layer_names)}

    def _index(self, name, default):
        if name is None:
            return default
        try:
            return self._layer_index[name]
        except KeyError:
            raise CaffeError('net %r has no layer %r' % (self.name, name))

    def reshape(self):
        for layer, bottom, top in zip(self.layers, self.bottom_vecs, self.top_vecs):
            layer.reshape(bottom, top)

    def forward_from_to(self, start=0, end=None):
        """Runs layers start..end (inclusive) and returns their weighted loss."""
        end = len(self.layers) - 1 if end is None else end
        loss = 0.0
        for i in range(start, end + 1):
            layer, bottom, top = self.layers[i], self.bottom_vecs[i], self.top_vecs[i]
            layer.reshape(bottom, top)
            layer.forward(bottom, top)
            for j, w in self._loss_weights[i]:
                loss += w * float(np.sum(top[j].cpu_data(), dtype=np.float64))
        return loss

    def backward_from_to(self, start=None, end=0):
        start = len(self.layers) - 1 if start is None else start
        for i in range(start, end - 1, -1):
            if not self._layer_need_backward[i]:
                continue
            layer, bottom, top = self.layers[i], self.bottom_vecs[i], self.top_vecs[i]
            for j, w in self._loss_weights[i]:
                top[j].diff[...] = w
            wanted = self._bottom_need_backward[i]
            nd = layer.non_differentiable_bottoms
            propagate = [w and j not in nd for j, w in enumerate(wanted)]
            layer.backward(top, propagate, bottom)
            for j in nd:
                if j < len(bottom) and wanted[j]:
                    bottom[j].diff[...] = 0

    def forward(self, blobs=None, start=None, end=None, **kwargs):
        """Sets input blobs from keyword arrays, runs forward, returns {output name: array}
        (the outputs are the end layer's tops when `end` is given)."""
        for name, value in kwargs.items():
            if name not in self.blobs:
                raise CaffeError('net %r has no blob %r' % (self.name, name))
            value = np.asarray(value, dtype=np.float32)
            if self.blobs[name].shape != value.shape:
                self.blobs[name].reshape(value.shape)
            self.blobs[name].data[...] = value
        start_i = self._index(start, 0)
        end_i = self._index(end, len(self.layers) - 1)
        self.forward_from_to(start_i, end_i)
        outputs = self.top_names[self._layer_names[end_i]] if end is not None else self.outputs
        names = list(outputs) + [b for b in (blobs or []) if b not in outputs]
        return {name: self.blobs[name].data for name in names}

    def backward(self, diffs=None, start=None, end=None, **kwargs):
        """Sets output diffs from keyword arrays, runs backward, returns {input name: diff}."""
        start_i = self._index(start, len(self.layers) - 1)
        end_i = self._index(end, 0)
        for name, value in kwargs.items():
            if name not in self.blobs:
                raise CaffeError('net %r has no blob %r' % (self.name, name))
            self.blobs[name].diff[...] = value
        self.backward_from_to(start_i, end_i)
        inputs = self.bottom_names[self._layer_names[end_i]] if end is not None else self.inputs
        names = list(inputs) + [b for b in (diffs or []) if b not in inputs]
        return {name: self.blobs[name].diff for name in names}

    def forward_backward(self):
        loss = self.forward_from_to()
        self.backward_from_to()
        return loss

    def clear_param_diffs(self):
        if common.mode() == common.GPU:
            from . import gpu
            for blob in self.learnable_params:
                gpu.zero(blob.mutable_gpu_diff())
            return
        for blob in self.learnable_params:
            blob.diff[...] = 0

    @property
    def blob_loss_weights(self):
        weights = collections.OrderedDict((name, 0.0) for name in self.blobs)
        for i, pairs in enumerate(self._loss_weights):
            for j, w in pairs:
                weights[self.top_names[self._layer_names[i]][j]] = w
        return weights

    # Weights ------------------------------------------------------------------------------------
    def copy_from(self, weights_file):
        """Copies parameters from a .caffemodel into the layers of the same name (Caffe's
        CopyTrainedLayersFrom: source layers missing from this net are ignored)."""
        source = io.read_binary(weights_file, caffe_pb2.NetParameter(), what='weights file')
        self.copy_from_param(source, weights_file)
        # Test-time caches are keyed by the weights a net was loaded with (fast_rcnn.test).
        self.weights_file = weights_file

    def copy_from_param(self, source, origin='<NetParameter>'):
        source = io.upgrade_net(source)
        layers = self.layer_dict
        for src in source.layer:
            target = layers.get(src.name)
            if target is None or not src.blobs:
                continue
            if len(src.blobs) != len(target.blobs):
                raise CaffeError('%s: layer %r has %d parameter blobs, the net %s expects %d'
                                 % (origin, src.name, len(src.blobs), self._source,
                                    len(target.blobs)))
            for k, (proto, blob) in enumerate(zip(src.blobs, target.blobs)):
                shape = io.blobproto_shape(proto)
                if shape != blob.shape and not io.legacy_shape_matches(proto, blob.shape):
                    raise CaffeError('%s: layer %r param %d has shape %s, the net %s expects %s'
                                     % (origin, src.name, k, shape, self._source, blob.shape))
                blob.data[...] = io.blobproto_to_array(proto).reshape(blob.shape)

    def to_proto(self, write_diff=False):
        """The net's layers (as written in the prototxt, without inserted splits) with their
        parameter blobs: what `save` writes and Caffe reads."""
        out = caffe_pb2.NetParameter()
        out.name = self.name
        layers = self.layer_dict
        for lp in self._param.layer:
            new = out.layer.add()
            new.CopyFrom(lp)
            del new.blobs[:]
            layer = layers.get(lp.name)
            for blob in (layer.blobs if layer is not None else []):
                new.blobs.append(io.array_to_blobproto(
                    blob.data, blob.diff if write_diff else None))
        return out

    def save(self, filename):
        io.write_binary(filename, self.to_proto())

    def __repr__(self):
        return '<Net %r: %d layers, phase %s>' % (self.name, len(self.layers),
                                                  'TRAIN' if self.phase == TRAIN else 'TEST')


__all__ = ['Net', 'TRAIN', 'TEST', 'filter_net', 'insert_splits']
