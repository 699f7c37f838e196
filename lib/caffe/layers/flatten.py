"""Flatten: axes axis..end_axis (flatten_param, default 1 and -1) become one; the top shares
data and diff with the bottom (no copy), as Caffe's ShareData / ShareDiff."""
from ..layer import PasslessLayer, register
from ._checks import canonical_axis, count_between, layer_error


@register('Flatten')
class FlattenLayer(PasslessLayer):
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def setup(self, bottom, top):
        if top[0] is bottom[0]:
            raise layer_error(self, 'cannot run in place')

    def reshape(self, bottom, top):
        p = self.layer_param.flatten_param
        shape = bottom[0].shape
        start = canonical_axis(self, bottom[0], p.axis, 'flatten_param.axis')
        end = canonical_axis(self, bottom[0], p.end_axis, 'flatten_param.end_axis')
        # Caffe's count(axis, end_axis + 1): an empty range (end_axis = axis - 1) counts 1 and
        # adds an axis of size 1; a reversed one is an error.
        if end + 1 < start:
            raise layer_error(self, 'flatten_param.end_axis %d comes before axis %d for a bottom '
                              'of shape %s' % (p.end_axis, p.axis, shape))
        new = shape[:start] + (count_between(shape, start, end + 1),) + shape[end + 1:]
        top[0].reshape(new)
        top[0].share_data(bottom[0])
        top[0].share_diff(bottom[0])
