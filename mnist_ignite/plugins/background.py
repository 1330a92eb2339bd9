"""One worker thread for a plugin's slow, non-essential work, off the training loop.

Drawing a figure (~0.1 s), sending to a dashboard or a tracking server: a training step must never
wait for it, and it must never stop training. :class:`Background` runs such calls in order on one
thread; the first failure warns once, naming the plugin (or calls the plugin's own ``on_error``),
and the run goes on. At the end of the run :meth:`Background.close` gives the queue a bounded
time to drain. In a notebook, ``inline=True`` runs the calls on the caller's thread, where
``IPython.display`` reaches the cell.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from mnist_ignite.log import warn

__all__ = ["Background"]


class Background:
    """A plugin's worker thread (see the module docstring).

    Args:
        owner: the plugin's name, for the warning.
        inline: run every call at once on the caller's thread (a notebook's display needs it).
        stop_on_error: after the first failure, drop every later call (a tracker that lost its server).
        on_error: called with ``(what, error)`` on a failure instead of the default one warning.
    """

    def __init__(
        self,
        owner: str,
        *,
        inline: bool = False,
        stop_on_error: bool = False,
        on_error: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        self.owner, self.inline, self.stop_on_error = owner, inline, stop_on_error
        self.on_error = on_error or self._warn
        self.failed = False
        self.pending = 0  # calls submitted and not finished
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None if inline else self._new_pool()

    def _new_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.owner)

    def _warn(self, what: str, err: BaseException) -> None:
        # the first line that says something: a client's errors can run to pages
        reason = next((line.strip() for line in str(err).splitlines() if line.strip()), "")[:300]
        self.warn_once(f"{self.owner}: {what} failed ({type(err).__name__}: {reason}); training goes on")

    def warn_once(self, message: str) -> None:
        """``message`` as a warning, the first time only."""
        with self._lock:
            if self.failed:
                return
            self.failed = True
        warn(message)

    def submit(self, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``call(*args, **kwargs)`` after everything submitted before it; ``what`` names it in a warning."""
        if self.failed and self.stop_on_error:
            return

        def run() -> None:
            try:
                call(*args, **kwargs)
            except Exception as err:  # this work must never stop training
                self.on_error(what, err)
                self.failed = True

        def finished(_: object = None) -> None:  # run, failed or dropped by close()
            with self._lock:
                self.pending -= 1

        with self._lock:
            self.pending += 1
        if self._pool is None:
            run()
            finished()
        else:
            self._pool.submit(run).add_done_callback(finished)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far has run (at most ``timeout`` seconds); True when it has."""
        if self._pool is None:
            return True
        done: Future[None] = self._pool.submit(lambda: None)
        try:
            done.result(timeout=timeout)
            return True
        except FutureTimeout:
            return False

    def close(self, timeout: float | None = None) -> bool:
        """Drain (bounded by ``timeout``), then stop the thread; what has not run by then is dropped."""
        if self._pool is None:
            return True
        drained = self.drain(timeout)
        self._pool.shutdown(wait=drained, cancel_futures=not drained)
        self._pool = self._new_pool()  # a closed worker still takes calls (a plugin may flush again)
        return drained
