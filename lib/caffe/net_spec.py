"""pycaffe's net_spec: a net written in Python, turned into a NetParameter.

    from caffe import layers as L, params as P
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 32, 32]))
    n.conv1 = L.Convolution(n.data, num_output=8, kernel_size=3)
    n.pool1 = L.Pooling(n.conv1, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    print(n.to_proto())

Naming follows pycaffe, which scripts rely on to find their blobs again: a top takes the name it
is assigned to in the NetSpec, else its layer type and a per-type count ("Convolution1"); a
layer takes the name of its first top (its own assigned name for an in-place layer, whose tops
are its bottoms). Keyword arguments ending in "param" go on the LayerParameter; the others go
into the type's own *_param message when that message has the field, else on the
LayerParameter (loss_weight, include, ...). Two special keywords: ntop (number of tops,
default 1) and in_place.
"""
import collections

from .proto import caffe_pb2


def _param_fields():
    """Layer type -> its *_param field, read off the schema as pycaffe does: the message type
    ConvolutionParameter of field convolution_param gives 'Convolution' -> 'convolution_param'
    (so a type sharing another's message, such as Deconvolution, has no entry)."""
    fields = {}
    for field in caffe_pb2.LayerParameter.DESCRIPTOR.fields:
        message = field.message_type
        if field.name.endswith('_param') and message is not None and \
                message.name.endswith('Parameter'):
            fields[message.name[:-len('Parameter')]] = field.name
    return fields


_PARAM_FIELDS = _param_fields()


def assign_proto(message, name, value):
    """Sets field `name` of a protobuf message from Python values: dicts fill sub-messages,
    lists (or tuples) fill repeated fields (a list of dicts adds one message per dict), and a
    single value given for a repeated field becomes a one-element list."""
    field = getattr(message, name)
    repeated = hasattr(field, 'extend')
    if repeated and not isinstance(value, (list, tuple)):
        value = [value]
    if isinstance(value, (list, tuple)):
        if value and isinstance(value[0], dict):
            for item in value:
                entry = field.add()
                for key, sub in item.items():
                    assign_proto(entry, key, sub)
        else:
            field.extend(value)
    elif isinstance(value, dict):
        for key, sub in value.items():
            assign_proto(field, key, sub)
    else:
        setattr(message, name, value)


class Top:
    """One output blob of a layer description (the n-th top of `fn`)."""

    def __init__(self, fn, n):
        self.fn, self.n = fn, n

    def to_proto(self):
        """A NetParameter with every layer needed to compute this top."""
        return to_proto(self)

    def _to_proto(self, layers, names, autonames):
        return self.fn._to_proto(layers, names, autonames)


class Function:
    """A layer description: its type, its inputs (Tops of other layers) and its parameters."""

    def __init__(self, type_name, inputs, params):
        self.type_name = type_name
        for i, top in enumerate(inputs):
            if not isinstance(top, Top):
                # pycaffe's exact words, which its own test matches.
                raise TypeError('%s input %d is not a Top (type is %s)'
                                % (type_name, i, type(top)))
        self.inputs = tuple(inputs)
        self.params = dict(params)
        self.ntop = self.params.pop('ntop', 1)
        self.in_place = self.params.pop('in_place', False)
        self.tops = tuple(Top(self, n) for n in range(self.ntop))

    def _auto_name(self, autonames):
        autonames[self.type_name] += 1
        return '%s%d' % (self.type_name, autonames[self.type_name])

    def _top_name(self, top, names, autonames):
        if top not in names:
            names[top] = top.fn._auto_name(autonames)
        return names[top]

    def _layer_name(self, names, autonames):
        if self not in names:
            names[self] = (self._top_name(self.tops[0], names, autonames) if self.tops
                           else self._auto_name(autonames))
        return names[self]

    def _to_proto(self, layers, names, autonames):
        if self in layers:
            return
        bottoms = []
        for top in self.inputs:
            top._to_proto(layers, names, autonames)
            bottoms.append(layers[top.fn].top[top.n])
        layer = caffe_pb2.LayerParameter(type=self.type_name)
        layer.bottom.extend(bottoms)
        if self.in_place:
            layer.top.extend(bottoms)
        else:
            layer.top.extend(self._top_name(top, names, autonames) for top in self.tops)
        layer.name = self._layer_name(names, autonames)
        for key, value in self.params.items():
            if key.endswith('param'):
                assign_proto(layer, key, value)
                continue
            try:
                assign_proto(getattr(layer, _PARAM_FIELDS[self.type_name]), key, value)
            except (AttributeError, KeyError):
                assign_proto(layer, key, value)
        layers[self] = layer


def to_proto(*tops):
    """A NetParameter with every layer needed to compute the given Tops (automatic names)."""
    layers = collections.OrderedDict()
    autonames = collections.Counter()
    for top in tops:
        top._to_proto(layers, {}, autonames)
    net = caffe_pb2.NetParameter()
    net.layer.extend(layers.values())
    return net


class NetSpec:
    """Tops assigned as attributes (or items) by name; to_proto() gives the NetParameter with
    every layer needed for them, the tops named as assigned."""

    def __init__(self):
        super().__setattr__('tops', collections.OrderedDict())

    def __setattr__(self, name, value):
        self.tops[name] = value

    def __getattr__(self, name):
        try:
            return self.tops[name]
        except KeyError:
            raise AttributeError('NetSpec has no top %r' % name) from None

    def __setitem__(self, name, value):
        self.tops[name] = value

    def __getitem__(self, name):
        return self.tops[name]

    def __delitem__(self, name):
        del self.tops[name]

    def keys(self):
        return list(self.tops.keys())

    def vals(self):
        return list(self.tops.values())

    def to_proto(self):
        names = {top: name for name, top in self.tops.items()}
        layers = collections.OrderedDict()
        autonames = collections.Counter()
        for top in self.tops.values():
            top._to_proto(layers, names, autonames)
        net = caffe_pb2.NetParameter()
        net.layer.extend(layers.values())
        return net


class Layers:
    """`caffe.layers` as net_spec uses it: Layers().Convolution(bottom, kernel_size=3) describes
    a layer and returns its Top (its Function when ntop=0, a tuple of Tops when ntop > 1)."""

    def __getattr__(self, type_name):
        if type_name.startswith('__'):
            raise AttributeError(type_name)

        def layer(*inputs, **params):
            fn = Function(type_name, inputs, params)
            if fn.ntop == 0:
                return fn
            return fn.tops[0] if fn.ntop == 1 else fn.tops
        layer.__name__ = type_name
        return layer


class Parameters:
    """`caffe.params`: Parameters().Pooling.MAX is caffe_pb2.PoolingParameter.MAX."""

    def __getattr__(self, type_name):
        if type_name.startswith('__'):
            raise AttributeError(type_name)
        message = getattr(caffe_pb2, type_name + 'Parameter', None)
        if message is None:
            raise AttributeError('caffe.proto has no message %sParameter' % type_name)
        return message


layers = Layers()
params = Parameters()

__all__ = ['NetSpec', 'Top', 'Function', 'Layers', 'Parameters', 'layers', 'params', 'to_proto',
           'assign_proto']
