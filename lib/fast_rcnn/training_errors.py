"""What stops a training run: a setup that cannot work, a loss that is no longer finite, or a
stop request (SIGINT/SIGTERM) honoured after a snapshot."""
import signal


class TrainingError(RuntimeError):
    """A training setup that cannot work (no data layer, inconsistent config, bad snapshot)."""


class LossNotFinite(TrainingError):
    """A loss became NaN or Inf: the weights are spoiled, so no snapshot is written. The run
    diverged at `iteration` (the losses' values at that iteration in `losses`); `last_snapshot`
    is the last model written before it, or None."""

    def __init__(self, message, iteration, losses, last_snapshot):
        super().__init__(message)
        self.iteration = iteration
        self.losses = losses
        self.last_snapshot = last_snapshot

    def __reduce__(self):
        return (LossNotFinite, (str(self), self.iteration, self.losses, self.last_snapshot))


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM arrived: the iteration under way was finished and a snapshot written.
    exit_code is the shell's convention for death by that signal (130 SIGINT, 143 SIGTERM)."""

    def __init__(self, signum, iteration, model_path, state_path):
        self.signum = signum
        self.iteration = iteration
        self.exit_code = 128 + int(signum)
        self.model_path = model_path
        self.state_path = state_path
        super().__init__('interrupted by %s at iteration %d; snapshot written to %s; resume '
                         'with --restore %s' % (signal.Signals(signum).name, iteration,
                                                 model_path, state_path))

    def __reduce__(self):
        # Crosses process boundaries (alt-opt runs each step in its own process).
        return (TrainingInterrupted, (self.signum, self.iteration, self.model_path,
                                      self.state_path))
