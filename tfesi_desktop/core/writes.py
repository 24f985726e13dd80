"""Disk writes in a thread of their own, in the order they were asked for.

A window writes the study's work after every edit and its recent-folders list after every
opening; each write ends with an fsync (core/fileio.py), and on a busy disk one fsync held the
GUI thread 15-60 ms (docs/architecture.md, measured facts). The window hands those writes to
:class:`OrderedWrites` instead: one thread runs them one after the other, so a study's file is
never overwritten by an older state; a write of the same key not yet started is replaced by
the newer one (only the latest state matters). A failure is reported to ``failed`` (in the
writing thread: the caller passes it on to its own thread) and changes nothing else.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable


class OrderedWrites:
    def __init__(self, failed: Callable[[Exception], None]):
        """``failed(error)``: a write raised ``error`` (called in the writing thread)."""
        self._failed = failed
        self._queue: list[tuple[Hashable, Callable[[], object]]] = []
        self._cond = threading.Condition()
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    def submit(self, key: Hashable, write: Callable[[], object]) -> None:
        """Run ``write()`` after the writes asked for before it; replaces a write of the same
        ``key`` that has not started yet."""
        with self._cond:
            for i, (k, _) in enumerate(self._queue):
                if k == key:
                    self._queue[i] = (key, write)
                    break
            else:
                self._queue.append((key, write))
            self._stopping = False
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tfesi-writes",
                                                daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def close(self, timeout: float | None = None) -> bool:
        """:meth:`wait`, then let the thread end (a later :meth:`submit` starts another)."""
        done = self.wait(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        return done

    def pending(self) -> bool:
        with self._cond:
            return bool(self._queue) or self._busy

    def wait(self, timeout: float | None = None) -> bool:
        """Until every write asked for is done (False: ``timeout`` seconds passed first)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue) or self._stopping)
                if not self._queue:  # closed, nothing left to write
                    self._thread = None
                    return
                _, write = self._queue.pop(0)
                self._busy = True
            try:
                write()
            except Exception as e:  # noqa: BLE001 - reported; the thread goes on
                self._failed(e)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
