"""Structure-aware mutators for inputs that are protobuf messages (prototxt text or binary
files), given to atheris as its custom mutator.

Byte-level mutation of a prototxt mostly yields syntax errors, and of a .caffemodel mostly wire
errors: the parser rejects them before any of the runtime's own code runs. These mutators parse
the input as the message, change it the way a confused user or a buggy writer would (a field
set to an edge value, a field added or removed, a repeated entry duplicated or dropped, a name
swapped for another name in the file), and write it back; one input in ten (and any input that
does not parse) gets atheris's byte-level mutation instead, so the parsers' error paths are
fuzzed too.
"""
import math
import random

from google.protobuf import text_format
from google.protobuf.descriptor import FieldDescriptor as FD

_INT_EDGES = [0, 1, -1, 2, 3, 4, 5, 7, 8, 16, 64, 255, 256, 1000, 65535, 2 ** 31 - 1, -2 ** 31]
_UINT_EDGES = [0, 1, 2, 3, 4, 5, 7, 8, 16, 64, 255, 256, 1000, 65535, 2 ** 31 - 1, 2 ** 31,
               2 ** 32 - 1]
_FLOAT_EDGES = [0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 0.1, 1e-8, 1e8, 3.4e38, -3.4e38, math.inf,
                -math.inf, math.nan]
_RANGES = {
    FD.CPPTYPE_INT32: (-2 ** 31, 2 ** 31 - 1), FD.CPPTYPE_UINT32: (0, 2 ** 32 - 1),
    FD.CPPTYPE_INT64: (-2 ** 63, 2 ** 63 - 1), FD.CPPTYPE_UINT64: (0, 2 ** 64 - 1),
}


def _strings(message, out):
    for field, value in message.ListFields():
        values = value if field.is_repeated else [value]
        for v in values:
            if field.cpp_type == FD.CPPTYPE_MESSAGE:
                _strings(v, out)
            elif field.cpp_type == FD.CPPTYPE_STRING and isinstance(v, str):
                out.add(v)
    return out


class _Mutation:
    def __init__(self, rng, vocabulary):
        self.rng = rng
        self.vocabulary = sorted(vocabulary)

    def value(self, field, current=None):
        """A new value for a scalar field: an edge value, a neighbour of the current one, or
        (strings) another string of the message or the vocabulary."""
        rng, kind = self.rng, field.cpp_type
        if kind == FD.CPPTYPE_BOOL:
            return not current if current is not None else rng.random() < 0.5
        if kind == FD.CPPTYPE_ENUM:
            return rng.choice(field.enum_type.values).number
        if kind in (FD.CPPTYPE_FLOAT, FD.CPPTYPE_DOUBLE):
            if current is not None and rng.random() < 0.3:
                return current * rng.choice([-1, 0.5, 2, 10]) + rng.choice([0, 1e-3, -1])
            return rng.choice(_FLOAT_EDGES)
        if kind == FD.CPPTYPE_STRING:
            if field.type == FD.TYPE_BYTES:
                return bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 3, 12, 48])))
            return rng.choice(self.vocabulary or ['']) if rng.random() < 0.9 else \
                rng.choice(['', 'x', 'data', 'Python', '\u00e9'])
        low, high = _RANGES[kind]
        if current is not None and rng.random() < 0.4:
            return min(max(current + rng.choice([-2, -1, 1, 2, 3]), low), high)
        edges = _UINT_EDGES if low == 0 else _INT_EDGES
        return min(max(rng.choice(edges), low), high)

    def pick_message(self, message):
        """A message somewhere in the tree (the root more often than any one leaf)."""
        while self.rng.random() < 0.7:
            children = []
            for field, value in message.ListFields():
                if field.cpp_type == FD.CPPTYPE_MESSAGE:
                    children.extend(value if field.is_repeated else [value])
            if not children:
                break
            message = self.rng.choice(children)
        return message

    def mutate(self, message):
        target = self.pick_message(message)
        fields = list(target.DESCRIPTOR.fields)
        present = [f for f, _ in target.ListFields()]
        rng = self.rng
        if present and rng.random() < 0.6:
            field = rng.choice(present)
        else:
            field = rng.choice(fields)
        action = rng.random()
        if field.is_repeated:
            values = getattr(target, field.name)
            if len(values) and action < 0.25:
                del values[rng.randrange(len(values))]
            elif field.cpp_type == FD.CPPTYPE_MESSAGE:
                if len(values) and action < 0.6:
                    values.add().CopyFrom(values[rng.randrange(len(values))])
                else:
                    self.fill(values.add())
            elif len(values) and action < 0.6:
                i = rng.randrange(len(values))
                values[i] = self.value(field, values[i])
            else:
                values.append(self.value(field))
        elif field.cpp_type == FD.CPPTYPE_MESSAGE:
            if target.HasField(field.name) and action < 0.3:
                target.ClearField(field.name)
            else:
                self.fill(getattr(target, field.name))
        elif target.HasField(field.name) and action < 0.2:
            target.ClearField(field.name)
        else:
            setattr(target, field.name, self.value(field, getattr(target, field.name)))

    def fill(self, message):
        """Marks a sub-message present and sets a field or two in it."""
        message.SetInParent()
        scalars = [f for f in message.DESCRIPTOR.fields if f.cpp_type != FD.CPPTYPE_MESSAGE]
        for field in self.rng.sample(scalars, min(len(scalars), self.rng.choice([0, 1, 2]))):
            if field.is_repeated:
                getattr(message, field.name).append(self.value(field))
            else:
                setattr(message, field.name, self.value(field))


class _ProtoMutator:
    """Called by atheris as custom_mutator(data, max_size, seed) -> bytes."""
    byte_level_share = 0.1

    def __init__(self, message_class, vocabulary=()):
        self.message_class = message_class
        self.vocabulary = set(vocabulary)

    def __call__(self, data, max_size, seed):
        import atheris  # only when fuzzing: replaying the corpora needs no atheris
        rng = random.Random(seed)
        message = self.parse(data) if rng.random() >= self.byte_level_share else None
        if message is None:
            return atheris.Mutate(data, max_size)
        mutation = _Mutation(rng, _strings(message, set(self.vocabulary)))
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            try:
                mutation.mutate(message)
            except (ValueError, TypeError):  # a value the field's type refuses: try another
                continue
        out = self.serialize(message)
        return out if len(out) <= max_size else atheris.Mutate(data, max_size)


class TextProto(_ProtoMutator):
    """Inputs in protobuf text format (prototxt)."""

    def parse(self, data):
        try:
            return text_format.Parse(data.decode('utf-8'), self.message_class())
        except Exception:  # anything unparseable falls back to byte-level mutation
            return None

    def serialize(self, message):
        return text_format.MessageToString(message).encode('utf-8')


class BinaryProto(_ProtoMutator):
    """Inputs in protobuf binary format (.caffemodel, .solverstate, .binaryproto)."""

    def parse(self, data):
        message = self.message_class()
        try:
            message.MergeFromString(data)   # a message missing required fields is mutated too
        except Exception:  # anything unparseable falls back to byte-level mutation
            return None
        return message

    def serialize(self, message):
        return message.SerializePartialToString()
