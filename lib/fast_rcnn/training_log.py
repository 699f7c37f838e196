"""Training progress: a line on the terminal every `display` iterations (losses averaged over the
window, learning rate, time per iteration, ETA) and one JSON object per iteration in a .jsonl
file beside the snapshots, for tools/plot_training.py and other programs:

  {"iter": 20, "lr": 0.001, "losses": {"rpn_cls_loss": 0.31, ...}, "sec_per_iter": 0.12}
"""
import json
import os

from caffe.io import atomic_write, naming_file


class TrainingReporter:
    """Reports the iterations of one training run; a resumed run (start_iter > 0) keeps the log's
    lines up to start_iter and continues it."""

    def __init__(self, loss_names, max_iters, display, log_path=None, start_iter=0, quiet=False):
        self.loss_names = list(loss_names)
        self.max_iters = max_iters
        self.display = max(int(display), 1)
        self.start_iter = start_iter
        self.log_path = log_path
        self.quiet = quiet   # no terminal lines (data-parallel ranks other than 0)
        self._log = _open_log(log_path, start_iter) if log_path else None
        self._sums = dict.fromkeys(self.loss_names, 0.0)
        self._window_iters, self._window_time = 0, 0.0
        self._total_iters, self._total_time = 0, 0.0

    def iteration(self, it, losses, lr, seconds):
        """Records iteration `it` (losses: {name: value}, lr, its wall time)."""
        self._window_iters += 1
        self._window_time += seconds
        self._total_iters += 1
        self._total_time += seconds
        for name in self.loss_names:
            self._sums[name] += losses[name]
        if self._log is not None:
            record = {'iter': it, 'lr': lr, 'losses': {n: losses[n] for n in self.loss_names},
                      'sec_per_iter': seconds}
            try:
                self._log.write(json.dumps(record) + '\n')
                self._log.flush()
            except OSError as e:
                named = naming_file(e, self.log_path)
                if named is e:
                    raise
                raise named from e
        if not self.quiet and (it % self.display == 0 or it == self.max_iters
                               or it == self.start_iter + 1):
            self._print(it, lr)

    def _print(self, it, lr):
        eta = self._total_time / self._total_iters * (self.max_iters - it)
        parts = ', '.join('%s = %.4f' % (name, self._sums[name] / self._window_iters)
                          for name in self.loss_names)
        print('Iteration %d/%d: %s, lr = %g, %.3f s/iter, ETA %s'
              % (it, self.max_iters, parts, lr, self._window_time / self._window_iters,
                 format_seconds(eta)), flush=True)
        self._sums = dict.fromkeys(self.loss_names, 0.0)
        self._window_iters, self._window_time = 0, 0.0

    def close(self):
        if self._log is not None:
            self._log.close()
            self._log = None


def _open_log(path, start_iter):
    """Opens path for appending; on a resume, first drops the lines past start_iter (iterations
    the interrupted run made after its last snapshot), so the log tells one story."""
    if start_iter > 0 and os.path.isfile(path):
        kept = []
        with open(path) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut short by the interruption
                if isinstance(record, dict) and record.get('iter', 0) <= start_iter:
                    kept.append(json.dumps(record) + '\n')
        atomic_write(path, ''.join(kept).encode())
    elif start_iter == 0 and os.path.exists(path):
        os.remove(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return open(path, 'a')


def format_seconds(seconds):
    """h:mm:ss"""
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return '%d:%02d:%02d' % (h, m, s)
