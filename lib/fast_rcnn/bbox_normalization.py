"""Folding the box-target normalization into bbox_pred, and back.

The detector learns normalized targets ((t - mean) / std, paper Sec. 3.1.2 and the release), so
the weights a snapshot saves have the normalization folded into bbox_pred (outputs * std + mean):
a test net then needs no means or stds. Resuming training puts back the arrays as trained,
saved beside the snapshot (fast_rcnn.train_state): unfolding in floating point would not give
back the same bits.
"""
import numpy as np


class BBoxNormalization:
    """The means and stds (one of each per bbox_pred output) of the regression targets of a net
    whose bbox_pred layer (weights, biases) learns normalized targets."""

    def __init__(self, means, stds, num_outputs):
        means = np.asarray(means, dtype=np.float64).ravel()
        stds = np.asarray(stds, dtype=np.float64).ravel()
        if stds.size == 4 and num_outputs != 4:
            means, stds = np.tile(means, num_outputs // 4), np.tile(stds, num_outputs // 4)
        if stds.size != num_outputs or means.size != num_outputs:
            raise ValueError('bbox_pred has %d outputs but the target statistics have %d '
                             'values (num_classes in the prototxt vs the dataset?)'
                             % (num_outputs, stds.size))
        self.means, self.stds = means, stds

    def fold(self, params):
        """Makes bbox_pred's params (weights, biases) predict un-normalized targets; returns
        copies of the arrays as they were."""
        weights, biases = params[:2]
        saved = (weights.data.copy(), biases.data.copy())
        weights.data[...] = weights.data * self._per_output(self.stds, weights.data.ndim)
        biases.data[...] = biases.data * self.stds + self.means
        return saved

    def unfold(self, params):
        """The inverse of fold, in place: a deployable snapshot's bbox_pred made to predict
        normalized targets again, to measure or train from (floating point makes it exact only
        to rounding; resuming a run restores the saved arrays instead)."""
        weights, biases = params[:2]
        weights.data[...] = weights.data / self._per_output(self.stds, weights.data.ndim)
        biases.data[...] = (biases.data - self.means) / self.stds

    @staticmethod
    def restore(params, arrays):
        """Puts back the (weights, biases) arrays fold returned."""
        weights, biases = params[:2]
        weights.data[...] = arrays[0]
        biases.data[...] = arrays[1]

    @staticmethod
    def _per_output(values, ndim):
        return values.reshape((-1,) + (1,) * (ndim - 1))
