import types

import utils.timer
from utils.timer import Timer


def test_totals_and_average(monkeypatch):
    # A fake clock: the test checks the bookkeeping, not real time.
    ticks = iter([10.0, 12.0, 20.0, 24.0])
    clock = types.SimpleNamespace(perf_counter=lambda: next(ticks))
    monkeypatch.setattr(utils.timer, 'time', clock)
    timer = Timer()
    timer.tic()
    assert timer.toc() == 2.0
    timer.tic()
    assert timer.toc(average=False) == 4.0
    assert timer.calls == 2 and timer.total_time == 6.0 and timer.average_time == 3.0
    assert timer.diff == 4.0
