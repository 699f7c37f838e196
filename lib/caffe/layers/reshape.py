"""Reshape: a new shape for the same data (no copy); the top shares data and diff with the bottom.

reshape_param.shape: 0 copies the bottom dimension at that position, -1 (at most once) is
inferred from the count. axis/num_axes choose the run of bottom axes the new shape replaces
(default: all of them)."""
from ..layer import PasslessLayer, register
from ._checks import count_between, layer_error


@register('Reshape')
class ReshapeLayer(PasslessLayer):
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def setup(self, bottom, top):
        if top[0] is bottom[0]:
            raise layer_error(self, 'cannot run in place')
        self.dims = [int(d) for d in self.layer_param.reshape_param.shape.dim]
        self.copy_axes = [i for i, d in enumerate(self.dims) if d == 0]
        inferred = [i for i, d in enumerate(self.dims) if d == -1]
        if len(inferred) > 1:
            raise layer_error(self, 'reshape_param.shape %s has more than one -1' % self.dims)
        if any(d < -1 for d in self.dims):
            raise layer_error(self, 'reshape_param.shape %s: dimensions must be >= -1'
                              % self.dims)
        self.inferred_axis = inferred[0] if inferred else None

    def _top_shape(self, shape):
        p = self.layer_param.reshape_param
        ndim = len(shape)
        start = p.axis if p.axis >= 0 else ndim + p.axis + 1
        if not 0 <= start <= ndim:
            raise layer_error(self, 'reshape_param.axis %d out of range for a bottom of shape %s'
                              % (p.axis, shape))
        if p.num_axes < -1:
            raise layer_error(self, 'reshape_param.num_axes must be >= 0, or -1 for all')
        end = ndim if p.num_axes == -1 else start + p.num_axes
        if end > ndim:
            raise layer_error(self, 'reshape_param.axis + num_axes = %d is out of range for a '
                              'bottom of shape %s' % (end, shape))
        new = list(shape[:start]) + list(self.dims) + list(shape[end:])
        for i in self.copy_axes:
            if start + i >= ndim:
                raise layer_error(self, 'reshape_param.shape has a 0 at position %d but the '
                                  'bottom %s has no axis %d to copy' % (i, shape, start + i))
            new[start + i] = shape[start + i]
        count = count_between(shape, 0, None)
        if self.inferred_axis is not None:
            known = count_between(new, 0, start + self.inferred_axis)
            known *= count_between(new, start + self.inferred_axis + 1, None)
            if known == 0 or count % known:
                raise layer_error(self, 'cannot infer the -1 dimension: bottom count %d is not a '
                                  'multiple of the other dimensions\' product %d'
                                  % (count, known))
            new[start + self.inferred_axis] = count // known
        if count_between(new, 0, None) != count:
            raise layer_error(self, 'new shape %s has %d elements, the bottom %s has %d'
                              % (tuple(new), count_between(new, 0, None), shape, count))
        return tuple(new)

    def reshape(self, bottom, top):
        # The new shape is parsed again only when the bottom's shape changes.
        shape = bottom[0].shape
        if getattr(self, '_shapes', (None,))[0] != shape:
            self._shapes = (shape, self._top_shape(shape))
        if top[0].shape != self._shapes[1]:
            top[0].reshape(self._shapes[1])
        top[0].share_data(bottom[0])
        top[0].share_diff(bottom[0])
