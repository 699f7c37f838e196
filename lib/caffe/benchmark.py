"""caffe.Timer, as pycaffe exposes Caffe's Timer: start(), stop(), and `ms`, the milliseconds
between the last start and stop."""
import time

from . import common


class Timer:
    """Caffe's Timer semantics: start() while running and stop() while stopped do nothing;
    reading `ms` stops a running timer first; a timer never started reads 0 (Caffe also logs a
    warning). In GPU mode the device is synchronized at start and stop, so the time covers the
    queued device work, as Caffe's CUDA-event timer does."""

    def __init__(self):
        self._running = False
        self._has_run = False
        self._start = self._stop = 0.0

    def _sync(self):
        if common.mode() == common.GPU:
            from . import gpu
            gpu.synchronize()

    def start(self):
        if not self._running:
            self._sync()
            self._start = time.perf_counter()
            self._running = True
            self._has_run = True

    def stop(self):
        if self._running:
            self._sync()
            self._stop = time.perf_counter()
            self._running = False

    @property
    def ms(self):
        if not self._has_run:
            common.logger.warning('Timer has never been run before reading time.')
            return 0.0
        if self._running:
            self.stop()
        return (self._stop - self._start) * 1000.0

    @property
    def seconds(self):
        return self.ms / 1000.0
