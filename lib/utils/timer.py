"""Wall-clock timing of repeated calls (per-image detection time, per-iteration training time)."""
import time


class Timer:
    """tic() starts a measurement, toc() ends it; keeps the total and the average over calls."""

    def __init__(self):
        self.total_time = 0.
        self.calls = 0
        self.start_time = 0.
        self.diff = 0.
        self.average_time = 0.

    def tic(self):
        self.start_time = time.perf_counter()

    def toc(self, average=True):
        """Ends a measurement; returns the average over all calls, or this call's time."""
        self.diff = time.perf_counter() - self.start_time
        self.total_time += self.diff
        self.calls += 1
        self.average_time = self.total_time / self.calls
        return self.average_time if average else self.diff
