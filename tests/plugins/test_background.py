"""A plugin's worker thread: calls in order off the loop, one warning for failures, a bounded close."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from mnist_ignite.plugins.background import Background


@pytest.fixture()
def worker() -> Iterator[Background]:
    background = Background("plots")
    yield background
    background.close(timeout=5)


def test_calls_run_in_order_on_one_thread_that_is_not_the_callers(worker: Background) -> None:
    seen: list[tuple[int, str]] = []
    for i in range(20):
        worker.submit(f"call {i}", lambda i=i: seen.append((i, threading.current_thread().name)))
    assert worker.drain(timeout=5) and worker.pending == 0
    assert [i for i, _ in seen] == list(range(20))
    names = {name for _, name in seen}
    assert len(names) == 1 and names != {threading.current_thread().name} and names.pop().startswith("plots")


def test_inline_runs_each_call_at_once_on_the_callers_thread() -> None:
    """In a notebook: ``IPython.display`` reaches the cell only from its own thread."""
    inline = Background("plots", inline=True)
    seen: list[str] = []
    inline.submit("draw", lambda: seen.append(threading.current_thread().name))
    assert seen == [threading.current_thread().name] and inline.pending == 0
    assert inline.drain(timeout=0) and inline.close(timeout=0)


def test_the_first_failure_warns_once_and_the_work_goes_on(
    worker: Background, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(message: str) -> None:
        raise RuntimeError(message)

    done: list[int] = []
    worker.submit("drawing metrics.png", fail, "disk full\nand a page of details " + "x" * 400)
    worker.submit("drawing lr.png", fail, "again")
    worker.submit("drawing loss.png", done.append, 3)
    assert worker.drain(timeout=5)
    assert done == [3] and worker.failed
    assert capsys.readouterr().err == (
        "mnist-ignite: warning: plots: drawing metrics.png failed (RuntimeError: disk full); training goes on\n"
    )


def test_stop_on_error_drops_later_calls_and_on_error_replaces_the_warning(capsys: pytest.CaptureFixture[str]) -> None:
    """A tracker that lost its server: one report through its own ``on_error``, then nothing more is sent."""
    errors: list[tuple[str, str]] = []
    tracker = Background("mlflow", stop_on_error=True, on_error=lambda what, err: errors.append((what, str(err))))
    sent: list[int] = []
    tracker.submit("log_metric", lambda: 1 / 0)
    assert tracker.drain(timeout=5)
    tracker.submit("log_metric", sent.append, 2)
    assert tracker.drain(timeout=5) and tracker.close(timeout=5)
    assert errors == [("log_metric", "division by zero")] and sent == []
    assert capsys.readouterr().err == ""


def test_close_gives_up_after_its_timeout_and_the_worker_still_takes_calls() -> None:
    worker = Background("visdom")
    release = threading.Event()
    dropped: list[int] = []
    worker.submit("a send that hangs", release.wait, 10)
    worker.submit("a send queued behind it", dropped.append, 1)
    started = time.monotonic()
    assert worker.drain(timeout=0.05) is False
    assert worker.close(timeout=0.05) is False
    assert time.monotonic() - started < 2  # bounded: the run ends even if the server never answers
    release.set()
    later: list[int] = []
    worker.submit("a flush after close", later.append, 2)
    assert worker.close(timeout=5) and later == [2] and dropped == []  # what had not started was dropped
