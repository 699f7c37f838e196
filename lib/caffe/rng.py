"""Caffe's random draws for the data layers: 32-bit Mersenne Twister outputs (boost::mt19937,
Caffe's rng_t), taken as Caffe takes them.

- caffe_rng_rand(): one raw 32-bit draw from the runtime's stream (caffe.set_random_seed seeds
  it), as Caffe's caffe_rng_rand() draws from its per-thread generator. The data layers take
  their own generators' seeds this way, at setup, in Caffe's order.
- CaffeRNG(seed): a generator of the layer's own (Caffe's Caffe::RNG): rand(n) is Caffe's
  DataTransformer::Rand, `draw % n`; shuffle is caffe::shuffle (Fisher-Yates from the end, each
  index from boost::uniform_int).

numpy's RandomState is the same MT19937 with the same integer seeding (init_genrand), and a
full-range uint32 draw returns the raw output, so a stream seeded alike gives Caffe's numbers
(tests/caffe/test_rng.py checks the C++ standard's check value and, where boost's headers are
installed, boost itself).
"""
import numpy as np

from . import common

_FULL = 1 << 32


def _raw(state):
    return int(state.randint(0, _FULL, dtype=np.uint32))


def caffe_rng_rand():
    """A raw 32-bit draw from the runtime's stream (Caffe's caffe_rng_rand)."""
    return _raw(common.rng())


class CaffeRNG:
    """A boost::mt19937 of a layer's own, seeded with a 32-bit seed."""

    def __init__(self, seed):
        self._state = np.random.RandomState(int(seed) % _FULL)

    def raw(self):
        return _raw(self._state)

    def rand(self, n):
        """A draw in [0, n): the raw draw modulo n (Caffe's Rand(n); n > 0)."""
        return self.raw() % n

    def uniform_int(self, low, high):
        """boost::uniform_int(low, high) on this engine: the 32-bit range split into equal
        buckets, one per value, redrawing past the last whole bucket (no modulo bias)."""
        span = high - low
        if span == 0:
            return low
        if span == _FULL - 1:
            return low + self.raw()
        # The engine's range 2^32 - 1 is the largest uint32, so boost sizes the buckets from
        # it, one larger when the values fill it exactly.
        top = _FULL - 1
        bucket = top // (span + 1)
        if top % (span + 1) == span:
            bucket += 1
        while True:
            value = self.raw() // bucket
            if value <= span:
                return low + value

    def shuffle(self, items):
        """Shuffles the list in place as caffe::shuffle does."""
        for i in range(len(items) - 1, 0, -1):
            j = self.uniform_int(0, i)
            items[i], items[j] = items[j], items[i]

    def get_state(self):
        return self._state.get_state()

    def set_state(self, state):
        self._state.set_state(state)
