"""Stop requests during training: SIGINT and SIGTERM let the iteration under way finish, then the
trainer snapshots and stops (fast_rcnn.solver_wrapper)."""
import signal
import threading


class StopRequests:
    """While active, SIGINT and SIGTERM only record that a stop was asked for (signum); the
    training loop finishes its iteration, snapshots and stops. Outside the main thread signal
    handlers cannot be set, and it does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum is not None:
            # A second request: the user means it; stop now (the last snapshot is intact).
            raise KeyboardInterrupt
        self.signum = signum
        print('\n%s received: finishing this iteration, then writing a snapshot (send it '
              'again to stop at once)' % signal.Signals(signum).name, flush=True)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False
