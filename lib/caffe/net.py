"""Net: a NetParameter turned into a graph of layers, with pycaffe's Python interface.

Construction follows Caffe's Net::Init: upgrade old formats, keep the layers whose include/exclude
rules match the NetState, insert Split layers where one top feeds several bottoms, set up layers
in order (in-place tops reuse the bottom's Blob), assign loss weights, share named parameters,
and work out which layers and blobs need a backward pass.
"""
import collections
import itertools
import os

import numpy as np

from . import common, io
from .blob import Blob
from .common import CaffeError
from .layer import TEST, TRAIN, Phase, layer_class
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
    Net(prototxt, phase=..., weights=..., level=..., stages=[...]); a NetParameter may stand for
    the prototxt. Net.from_param(param) builds one from a NetParameter that carries its NetState,
    as Caffe's Net(const NetParameter&) (what the solver uses)."""

    def __init__(self, network_file, *args, phase=None, weights=None, level=0, stages=None):
        if len(args) == 1:
            phase = args[0] if phase is None else phase
        elif len(args) == 2:
            weights, phase = args
        elif len(args) > 2:
            raise TypeError('Net(network_file, [weights,] phase)')
        if phase is None:
            raise TypeError('Net needs a phase (caffe.TRAIN or caffe.TEST)')
        phase = Phase(phase)
        if isinstance(network_file, caffe_pb2.NetParameter):
            param = caffe_pb2.NetParameter()
            param.CopyFrom(network_file)
            source = network_file.name or '<NetParameter>'
        else:
            param = io.read_prototxt(network_file, caffe_pb2.NetParameter())
            source = network_file
        # pycaffe checks both files before building anything.
        if weights is not None and not os.path.isfile(weights):
            raise io.not_found(weights, 'weights file')
        # Caffe's Net(file, phase, level, stages): the phase and level replace the file's
        # NetState's, the stages add to its own.
        param.state.phase = phase
        param.state.level = level
        param.state.stage.extend(stages or [])
        self._construct(param, source)
        if weights is not None:
            self.copy_from(weights)

    @classmethod
    def from_param(cls, param, source=None):
        """A Net of `param` in the NetState param.state holds (phase TEST when unset, as in
        caffe.proto), as Caffe's Net(const NetParameter&). `source` names the net in errors
        (default: the net's name)."""
        net = cls.__new__(cls)
        net._construct(param, source or param.name or '<NetParameter>')
        return net

    # Construction -------------------------------------------------------------------------------
    def _construct(self, param, source):
        self.source = source
        try:
            param = io.upgrade_net(param)
            self.phase = Phase(param.state.phase)
            self.name = param.name
            self._param = filter_net(param, param.state)
            expanded = insert_splits(self._param)
        except CaffeError as e:
            raise CaffeError('%s: %s' % (source, e)) from None
        self.force_backward = param.force_backward
        self._reset()
        blob_need_backward = {}
        available = set()     # blobs produced and not (yet) read: Caffe's std::set of outputs
        for lp in expanded.layer:
            try:
                self._append_layer(lp, blob_need_backward, available)
            except CaffeError as e:
                # The file goes in front, and the layer where its error does not name it (a
                # filler's error, say).
                message = str(e)
                if message.startswith(str(source)):
                    raise
                if repr(lp.name) not in message:
                    message = '%s layer %r: %s' % (lp.type, lp.name, message)
                raise CaffeError('%s: %s' % (source, message)) from None
        # Caffe keeps the available blobs in a std::set<string>: the outputs come out sorted.
        self.outputs = sorted(available)
        self._prune_backward()
        if self.force_backward:
            self._force_backward()
        for layer, need in zip(self.layers, self._layer_need_backward):
            layer.need_backward = need
        self.layer_dict = collections.OrderedDict(zip(self._layer_names, self.layers))

    def _reset(self):
        self.blobs = collections.OrderedDict()
        self.layers = []
        self._layer_names = []
        self.bottom_vecs, self.top_vecs = [], []
        self.bottom_names, self.top_names = collections.OrderedDict(), collections.OrderedDict()
        # Per layer index: Caffe lets two layers share a name (BVLC's mnist_autoencoder.prototxt
        # has two named "loss"); the name-keyed dicts above keep the later one, as pycaffe's.
        self._bottoms_of, self._tops_of = [], []
        self.inputs = []
        self._bottom_need_backward = []
        self._layer_need_backward = []
        self._loss_weights = []            # per layer: list of (top index, weight)
        self._loss_counts = {}             # (layer, top) -> count when its diff got the weight
        self._param_shared = []            # per layer: per param blob, owned by another layer
        self.learnable_params, self.params_lr, self.params_weight_decay = [], [], []
        self._param_owner = {}              # ParamSpec name -> (blob, lr_mult, decay_mult)
        self.params = collections.OrderedDict()
        self._hooks = {'before_forward': [], 'after_forward': [],
                       'before_backward': [], 'after_backward': []}

    def _append_layer(self, lp, blob_need_backward, available):
        """Creates, connects and sets up one layer (one step of Caffe's Net::Init loop)."""
        layer = layer_class(lp)(lp, self.phase)
        bottom = [self.blobs[b] for b in lp.bottom]
        available.difference_update(lp.bottom)
        top = self._create_tops(lp, layer)
        bottom_nb = self._bottoms_needing_backward(lp, blob_need_backward)
        layer.check_blob_counts(bottom, top)
        layer.setup(bottom, top)
        layer.reshape(bottom, top)
        need_backward = any(bottom_nb) | self._setup_params(layer, lp)
        index = len(self.layers)
        self._loss_weights.append(self._setup_loss_weights(index, layer, lp, top))
        for name in lp.top:
            blob_need_backward[name] = need_backward
        available.update(lp.top)

        self.layers.append(layer)
        self._layer_names.append(lp.name)
        self.bottom_vecs.append(bottom)
        self.top_vecs.append(top)
        self.bottom_names[lp.name] = list(lp.bottom)
        self.top_names[lp.name] = list(lp.top)
        self._bottoms_of.append(list(lp.bottom))
        self._tops_of.append(list(lp.top) + ['(automatic)'] * (len(top) - len(lp.top)))
        self._bottom_need_backward.append(bottom_nb)
        self._layer_need_backward.append(need_backward)
        if len(layer.blobs):
            self.params[lp.name] = layer.blobs

    def _create_tops(self, lp, layer):
        top = []
        names = list(lp.top)
        if layer.auto_top_blobs:
            # Caffe's AutoTopBlobs (loss layers): a layer given fewer tops than it needs gets
            # anonymous ones, named "(automatic)", that no other layer can read and that are not
            # outputs; their loss still counts.
            needed = max(layer.min_top_blobs or 0, layer.exact_num_top_blobs or 0)
            names += ['(automatic)'] * (needed - len(names))
        for name in names:
            if name in lp.bottom:          # in place: the top is the bottom's Blob
                top.append(self.blobs[name])
                continue
            blob = Blob()
            self.blobs[name] = blob
            top.append(blob)
            if lp.type == 'Input':
                self.inputs.append(name)
        return top

    def _bottoms_needing_backward(self, lp, blob_need_backward):
        if lp.propagate_down and len(lp.propagate_down) != len(lp.bottom):
            raise CaffeError('%s: layer %r has %d propagate_down entries for %d bottoms'
                             % (self.source, lp.name, len(lp.propagate_down), len(lp.bottom)))
        return [blob_need_backward.get(b, False) and
                (not lp.propagate_down or lp.propagate_down[j])
                for j, b in enumerate(lp.bottom)]

    def _setup_loss_weights(self, index, layer, lp, top):
        """The layer's (top index, loss weight) pairs. As Caffe's Layer::SetLossWeights, each
        weighted top's diff holds its weight from here on: backward reads it from there, so
        setting a loss top's diff before backward() rescales that loss."""
        weights = list(lp.loss_weight)
        if not weights and layer.default_loss_weight and top:
            weights = [layer.default_loss_weight]
        if len(weights) > len(top):
            raise CaffeError('%s: layer %r has %d loss_weight values for %d tops'
                             % (self.source, lp.name, len(weights), len(top)))
        pairs = [(j, w) for j, w in enumerate(weights) if w]
        for j, w in pairs:
            self._fill_loss_weight(index, j, top[j], w)
        return pairs

    def _fill_loss_weight(self, index, j, blob, weight):
        blob.diff[...] = weight
        self._loss_counts[index, j] = blob.count

    def _setup_params(self, layer, lp):
        """Registers the layer's parameter blobs as learnable (or shares them by ParamSpec name);
        returns whether any of them is learned (lr_mult != 0)."""
        if len(lp.param) > len(layer.blobs):
            raise CaffeError('%s: layer %r has %d param specs but %d parameter blobs'
                             % (self.source, lp.name, len(lp.param), len(layer.blobs)))
        learned, shared = [], []
        for i, blob in enumerate(layer.blobs):
            spec = lp.param[i] if i < len(lp.param) else caffe_pb2.ParamSpec()
            owner = self._param_owner.get(spec.name) if spec.name else None
            shared.append(owner is not None)
            if owner is not None:
                owner_blob, lr, decay = owner
                if owner_blob.shape == blob.shape:
                    layer.blobs[i] = owner_blob
                elif spec.share_mode == caffe_pb2.ParamSpec.PERMISSIVE and \
                        owner_blob.count == blob.count:
                    # Caffe's PERMISSIVE share_mode: only the counts must agree; the layer
                    # keeps its shape over the owner's data and diff.
                    view = Blob(blob.shape)
                    view.share_data(owner_blob)
                    view.share_diff(owner_blob)
                    layer.blobs[i] = view
                else:
                    raise CaffeError('%s: layer %r shares param %r of shape %s with a blob of '
                                     'shape %s%s' % (self.source, lp.name, spec.name,
                                                     owner_blob.shape, blob.shape,
                                                     '' if spec.share_mode else
                                                     ' (share_mode PERMISSIVE needs only equal '
                                                     'counts)'))
                learned.append(lr != 0)
                continue
            self.learnable_params.append(blob)
            self.params_lr.append(spec.lr_mult)
            self.params_weight_decay.append(spec.decay_mult)
            if spec.name:
                self._param_owner[spec.name] = (blob, spec.lr_mult, spec.decay_mult)
            learned.append(spec.lr_mult != 0)
        layer.param_propagate_down = learned
        self._param_shared.append(shared)
        return any(learned)

    def _prune_backward(self):
        """Backward runs only through layers that lead to a loss and have something below them
        that needs a gradient (Caffe's pass from the last layer to the first)."""
        under_loss, skip = set(), set()
        for i in reversed(range(len(self.layers))):
            lp_tops = self._tops_of[i]
            weighted = {j for j, _ in self._loss_weights[i]}
            contributes = any(j in weighted or t in under_loss for j, t in enumerate(lp_tops))
            skip_all = all(t in skip for t in lp_tops) if lp_tops else True
            if self._layer_need_backward[i] and skip_all:
                self._layer_need_backward[i] = False
                self._bottom_need_backward[i] = [False] * len(self._bottom_need_backward[i])
            if not contributes:
                self._layer_need_backward[i] = False
            for j, b in enumerate(self._bottoms_of[i]):
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

    # Layer-wise hooks (pycaffe's net.before_forward(fn) ...: fn(layer index)) --------------------
    def before_forward(self, fn):
        """fn(i) runs before layer i's forward, for each layer forward runs."""
        self._hooks['before_forward'].append(fn)

    def after_forward(self, fn):
        """fn(i) runs after layer i's forward."""
        self._hooks['after_forward'].append(fn)

    def before_backward(self, fn):
        """fn(i) runs before layer i's backward, for every layer in the backward range (as in
        Caffe, also for layers that need no backward)."""
        self._hooks['before_backward'].append(fn)

    def after_backward(self, fn):
        """fn(i) runs after layer i's backward (every layer in the range, as before_backward)."""
        self._hooks['after_backward'].append(fn)

    def _run_hooks(self, kind, i):
        for fn in self._hooks[kind]:
            fn(i)

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
            # pycaffe looks the name up with list.index, which raises ValueError.
            raise ValueError('net %r has no layer %r' % (self.name, name)) from None

    @property
    def _blob_names(self):
        return list(self.blobs)

    @property
    def _blob_loss_weights(self):
        return list(self.blob_loss_weights.values())

    def _reshape_layer(self, i):
        layer, bottom, top = self.layers[i], self.bottom_vecs[i], self.top_vecs[i]
        layer.reshape(bottom, top)
        # A top whose size changed has a new, zeroed diff. Caffe's Blob would keep the weight
        # when shrinking and lose it when growing; no net relies on a loss top changing size,
        # so the weight is written again.
        for j, w in self._loss_weights[i]:
            if top[j].count != self._loss_counts[i, j]:
                self._fill_loss_weight(i, j, top[j], w)

    def reshape(self):
        for i in range(len(self.layers)):
            self._reshape_layer(i)

    def forward_from_to(self, start=0, end=None):
        """Runs layers start..end (inclusive) and returns their loss: for each weighted top,
        the dot product of its data and its diff (which holds the loss weight), as Caffe's
        Layer::Forward computes it."""
        end = len(self.layers) - 1 if end is None else end
        loss = 0.0
        for i in range(start, end + 1):
            self._run_hooks('before_forward', i)
            self._reshape_layer(i)
            top = self.top_vecs[i]
            self.layers[i].forward(self.bottom_vecs[i], top)
            for j, _ in self._loss_weights[i]:
                loss += float(np.dot(top[j].cpu_data().ravel().astype(np.float64),
                                     top[j].cpu_diff().ravel().astype(np.float64)))
            self._run_hooks('after_forward', i)
        return loss

    def backward_from_to(self, start=None, end=0):
        start = len(self.layers) - 1 if start is None else start
        for i in range(start, end - 1, -1):
            self._run_hooks('before_backward', i)
            if self._layer_need_backward[i]:
                self._backward_layer(i)
            self._run_hooks('after_backward', i)

    def _backward_layer(self, i):
        layer, bottom, top = self.layers[i], self.bottom_vecs[i], self.top_vecs[i]
        wanted = self._bottom_need_backward[i]
        nd = layer.non_differentiable_bottoms
        propagate = [w and j not in nd for j, w in enumerate(wanted)]
        layer.backward(top, propagate, bottom)
        for j in nd:
            if j < len(bottom) and wanted[j]:
                bottom[j].diff[...] = 0

    # pycaffe's names for the two passes.
    def _forward(self, start, end):
        return self.forward_from_to(start, end)

    def _backward(self, start, end):
        self.backward_from_to(start, end)

    def forward(self, blobs=None, start=None, end=None, **kwargs):
        """Sets input blobs from keyword arrays, runs forward, returns {output name: array}
        (the outputs are the end layer's tops when `end` is given). An unknown start or end
        layer raises ValueError, as in pycaffe."""
        start_i = self._index(start, 0)
        end_i = self._index(end, len(self.layers) - 1)
        for name, value in kwargs.items():
            if name not in self.blobs:
                raise CaffeError('net %r has no blob %r' % (self.name, name))
            value = np.asarray(value, dtype=np.float32)
            if self.blobs[name].shape != value.shape:
                self.blobs[name].reshape(value.shape)
            self.blobs[name].data[...] = value
        self.forward_from_to(start_i, end_i)
        outputs = self._tops_of[end_i] if end is not None else self.outputs
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
        inputs = self._bottoms_of[end_i] if end is not None else self.inputs
        names = list(inputs) + [b for b in (diffs or []) if b not in inputs]
        return {name: self.blobs[name].diff for name in names}

    def forward_backward(self):
        loss = self.forward_from_to()
        self.backward_from_to()
        return loss

    # Whole data sets in batches (pycaffe's forward_all / forward_backward_all) -----------------
    def _batch_size(self):
        # pycaffe takes the batch size from the net's first blob.
        return next(iter(self.blobs.values())).shape[0]

    def _batches(self, arrays):
        """{name: array of N items} in batches of the net's batch size; the last batch padded
        with zeros. Yields nothing for no arrays."""
        if not arrays:
            return
        lengths = {name: len(a) for name, a in arrays.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError('arrays of different lengths: %s' % lengths)
        n = next(iter(lengths.values()))
        size = self._batch_size()
        for begin in range(0, n, size):
            batch = {}
            for name, a in arrays.items():
                part = np.asarray(a[begin:begin + size], dtype=np.float32)
                if len(part) < size:
                    pad = np.zeros((size - len(part),) + part.shape[1:], dtype=np.float32)
                    part = np.concatenate([part, pad])
                batch[name] = part
            yield batch

    @staticmethod
    def _collect(chunks, n):
        """Concatenates per-batch arrays and drops the padding past the n real items."""
        return {name: np.concatenate(parts)[:n] if n is not None else np.concatenate(parts)
                for name, parts in chunks.items()}

    def forward_all(self, blobs=None, **kwargs):
        """Runs forward over inputs of any length in batches of the net's batch size (the last
        padded, the padding's outputs dropped); returns {output name: all outputs}."""
        names = list(self.outputs) + [b for b in (blobs or []) if b not in self.outputs]
        chunks = {name: [] for name in names}
        batches = list(self._batches(kwargs)) or [{}]
        for batch in batches:
            out = self.forward(blobs=blobs, **batch)
            for name in names:
                chunks[name].append(out[name].copy())
        n = len(next(iter(kwargs.values()))) if kwargs else None
        return self._collect(chunks, n)

    def forward_backward_all(self, blobs=None, diffs=None, **kwargs):
        """forward_all and backward together: keyword arrays named after inputs feed forward,
        those named after outputs are the top diffs for backward. Returns (outputs, diffs)."""
        out_names = list(self.outputs) + [b for b in (blobs or []) if b not in self.outputs]
        diff_names = list(self.inputs) + [d for d in (diffs or []) if d not in self.inputs]
        fwd = {k: v for k, v in kwargs.items() if k in self.inputs}
        bwd = {k: v for k, v in kwargs.items() if k in self.outputs}
        unknown = set(kwargs) - set(fwd) - set(bwd)
        if unknown:
            raise ValueError('forward_backward_all: %s are neither inputs %s nor outputs %s'
                             % (sorted(unknown), self.inputs, self.outputs))
        outs = {name: [] for name in out_names}
        grads = {name: [] for name in diff_names}
        pairs = itertools.zip_longest(self._batches(fwd), self._batches(bwd), fillvalue={})
        for f, b in list(pairs) or [({}, {})]:
            out = self.forward(blobs=blobs, **f)
            grad = self.backward(diffs=diffs, **b)
            for name in out_names:
                outs[name].append(out[name].copy())
            for name in diff_names:
                grads[name].append(grad[name].copy())
        n = len(next(iter(kwargs.values()))) if kwargs else None
        return self._collect(outs, n), self._collect(grads, n)

    def set_input_arrays(self, data, labels):
        """Gives the net's first layer, a MemoryData layer, the arrays it emits batch by batch:
        data (N, channels, height, width) and labels (N,) or (N, 1, 1, 1), float32 and
        C-contiguous, N a multiple of the batch size. The arrays are used in place, not copied
        (pycaffe keeps a reference, Caffe reads their memory)."""
        from .layers.memory_data import MemoryDataLayer
        if not self.layers or not isinstance(self.layers[0], MemoryDataLayer):
            raise CaffeError('set_input_arrays may only be called if the first layer is a '
                             'MemoryDataLayer')
        labels = np.asarray(labels)
        if labels.ndim == 1:
            labels = np.ascontiguousarray(labels[:, np.newaxis, np.newaxis, np.newaxis])
        self.layers[0].reset(data, labels)
        self._input_arrays = (data, labels)

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
                weights[self._tops_of[i][j]] = w
        return weights

    # Weights ------------------------------------------------------------------------------------
    def copy_from(self, weights_file):
        """Copies parameters from a .caffemodel (or an HDF5 file, told by its signature, as
        Caffe's CopyTrainedLayersFrom does) into the layers of the same name; source layers
        missing from this net are ignored. Returns the names of the layers copied (pycaffe
        returns None; callers may tell a file that shares no layer with the net)."""
        from . import hdf5
        if hdf5.is_hdf5(weights_file):
            copied = hdf5.copy_from_hdf5(self, weights_file)
        else:
            source = io.read_binary(weights_file, caffe_pb2.NetParameter(), what='weights file')
            copied = self.copy_from_param(source, weights_file)
        return copied

    def copy_from_param(self, source, origin='<NetParameter>'):
        """Copies the blobs of a NetParameter used as weights (upgraded as Caffe upgrades a
        weights file: a bare `input` list, as Caffe's ToProto writes it, is dropped). Returns the
        names of the layers copied."""
        try:
            source = io.upgrade_weights(source)
        except CaffeError as e:
            raise CaffeError('%s: %s' % (origin, e)) from None
        layers = self.layer_dict
        copied, values = [], []
        # Every blob is checked and converted before any is written: a bad file leaves the net
        # as it was.
        for src in source.layer:
            target = layers.get(src.name)
            if target is None or not src.blobs:
                continue
            if len(src.blobs) != len(target.blobs):
                raise CaffeError('%s: layer %r has %d parameter blobs, the net %s expects %d'
                                 % (origin, src.name, len(src.blobs), self.source,
                                    len(target.blobs)))
            for k, (proto, blob) in enumerate(zip(src.blobs, target.blobs)):
                try:
                    shape = io.blobproto_shape(proto)
                    if shape != blob.shape and not io.legacy_shape_matches(proto, blob.shape):
                        raise CaffeError('has shape %s, the net %s expects %s'
                                         % (shape, self.source, blob.shape))
                    values.append((blob, io.blob_values(proto).reshape(blob.shape)))
                except CaffeError as e:
                    raise CaffeError('%s: layer %r param %d %s' % (origin, src.name, k, e)) \
                        from None
            copied.append(src.name)
        for blob, array in values:
            blob.data[...] = array
        return copied

    def share_with(self, other):
        """Makes this net's parameters use the data of the same-named layers' parameters in
        `other` (Caffe's ShareTrainedLayersWith: data only, diffs stay separate; layers of other
        that this net lacks are skipped)."""
        layers = self.layer_dict
        for name, source in other.layer_dict.items():
            target = layers.get(name)
            if target is None:
                continue
            if len(target.blobs) != len(source.blobs):
                raise CaffeError('share_with: incompatible number of blobs for layer %r (%d in '
                                 '%s, %d in %s)' % (name, len(source.blobs), other.source,
                                                    len(target.blobs), self.source))
            for k, (blob, src) in enumerate(zip(target.blobs, source.blobs)):
                if blob.shape != src.shape:
                    raise CaffeError('share_with: cannot share param %d of layer %r: shape %s '
                                     'in %s, %s here' % (k, name, src.shape, other.source,
                                                         blob.shape))
                blob.share_data(src)

    def to_proto(self, write_diff=False):
        """The net as Caffe's Net::ToProto writes it: its name, its input blob names as `input`
        entries (no dims), and its layers (as written in the prototxt, without inserted splits)
        with their parameter blobs. What `save` writes and Caffe reads."""
        out = caffe_pb2.NetParameter()
        out.name = self.name
        out.input.extend(self.inputs)
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

    def save_hdf5(self, filename, write_diff=False):
        """The parameters as Caffe's Net::ToHDF5 writes them: /data/<layer>/<k> (and /diff/...
        with write_diff); a parameter shared from another layer is written only by its owner."""
        from . import hdf5
        hdf5.save_hdf5(self, filename, write_diff)

    def load_hdf5(self, filename):
        """Copies parameters from a file save_hdf5 (or Caffe's ToHDF5) wrote."""
        from . import hdf5
        hdf5.copy_from_hdf5(self, filename)

    def __repr__(self):
        return '<Net %r: %d layers, phase %s>' % (self.name, len(self.layers), self.phase)


__all__ = ['Net', 'TRAIN', 'TEST', 'filter_net', 'insert_splits']
