"""Background work for the GUI: a QRunnable that runs one function in the thread pool, reports
progress, can be cancelled, and hands its result or error back as signals.

Connect the signals to slots of QObjects that live in the GUI thread (bound methods of the main
window), never to plain functions or lambdas: those would run in the worker thread
(docs/architecture.md, measured facts:
a hang once, a segfault once).
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections import deque

from PySide6.QtCore import QEvent, QObject, QRunnable, QThreadPool, QTimer, Signal, Slot

from ..core.errors import Cancelled, TfesiError

log = logging.getLogger(__name__)
# workers queued or running: kept alive here, not only by their owner, so that a window closed
# (quit at once, not waiting for them) never deletes the signals a running worker emits
_ALIVE: set = set()


class WorkerSignals(QObject):
    progress = Signal(int, int)  # done, total
    result = Signal(object)
    error = Signal(str)  # a sentence for the user
    cancelled = Signal()
    finished = Signal()


class Worker(QRunnable):
    """Runs ``fn(*args, progress=..., cancel=..., **kwargs)`` when ``pass_control`` is set,
    else ``fn(*args, **kwargs)``."""

    def __init__(self, fn, *args, pass_control: bool = False, **kwargs):
        super().__init__()
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.pass_control = pass_control
        self.signals = WorkerSignals()
        self._cancel = threading.Event()
        self.setAutoDelete(False)  # the owner keeps a reference while it runs
        _ALIVE.add(self)

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self) -> None:
        try:
            if self.pass_control:
                out = self.fn(*self.args, progress=self._progress,
                              cancel=self._cancel.is_set, **self.kwargs)
            else:
                out = self.fn(*self.args, **self.kwargs)
        except Cancelled:
            self._emit("cancelled")
        except Exception as e:  # noqa: BLE001 - never let a worker take the program down
            self._emit("error", error_sentence(e))
        else:
            if not self._cancel.is_set():
                self._emit("result", out)
            else:
                self._emit("cancelled")
        finally:
            self._emit("finished")
            _ALIVE.discard(self)

    def _progress(self, done: int, total: int) -> None:
        self._emit("progress", done, total)

    def _emit(self, name: str, *args) -> None:
        """Emit, unless the program is ending: the window quits without waiting for its
        workers, and then nobody listens (their signals are gone)."""
        try:
            getattr(self.signals, name).emit(*args)
        except RuntimeError:
            pass


def error_sentence(e: Exception) -> str:
    """What a failed job tells the user: a TfesiError's sentence; anything else is logged."""
    if isinstance(e, TfesiError):
        return str(e)
    log.error("worker failed: %s", "".join(traceback.format_exception_only(e)).strip())
    return f"Unexpected error ({type(e).__name__}): {e}"


def start(worker: Worker, pool: QThreadPool | None = None) -> Worker:
    (pool or QThreadPool.globalInstance()).start(worker)
    return worker


class LaterLane(QObject):
    """The workers that can wait (the canal searches, first of them; the series' window
    levels, the Frames of Reference, the sagittal and its canal, the prefetched neighbours,
    the thumbnails): started one at a time, and not while a series' first slice is still to
    be painted. Beside the first slice's decode and the
    window's own work of showing it they took the GUI thread's GIL (two or three workers: a
    third of it) and stalled the opening of a study over 50 ms (docs/architecture.md,
    "Measured facts"). ``start(worker)`` puts one in the thread pool."""

    HOLD_MS = 400  # the longest a first slice holds them back (a slice that never decodes)

    def __init__(self, start, parent=None):
        super().__init__(parent)
        self._start = start
        self._queue: deque[Worker] = deque()
        self._running: Worker | None = None
        self._held = False
        self._pausing = 0  # workers the physician waits for (a prediction) running
        self._watched = None
        self._timer = QTimer(self, singleShot=True, interval=self.HOLD_MS)
        self._timer.timeout.connect(self.release)

    def add(self, worker: Worker, first: bool = False) -> None:
        """Queue ``worker``; ``first``: before those queued (what the physician waits for)."""
        worker.signals.finished.connect(self._finished)
        if first:
            self._queue.appendleft(worker)
        else:
            self._queue.append(worker)
        self._next()

    def pause_for(self, worker: Worker) -> None:
        """Start none while ``worker`` (a prediction, started at once) runs: beside it they
        slowed the result."""
        self._pausing += 1
        worker.signals.finished.connect(self._pauser_done)

    @Slot()
    def _pauser_done(self) -> None:
        self._pausing -= 1
        self._next()

    def hold(self) -> None:
        """Until :meth:`release` (or :data:`HOLD_MS`): a series' first slice is to be shown."""
        self._held = True
        self._timer.start()

    def release_after_paint(self, widget) -> None:
        """Release once ``widget`` has painted (at once when it is not on the screen)."""
        if not self._held:
            return
        if not widget.isVisible():
            self.release()
            return
        if self._watched is not widget:
            widget.installEventFilter(self)
            self._watched = widget

    def eventFilter(self, obj, ev):
        if obj is self._watched and ev.type() == QEvent.Type.Paint:
            obj.removeEventFilter(self)
            self._watched = None
            QTimer.singleShot(0, self.release)  # after the paint, not inside it
        return False

    @Slot()
    def release(self) -> None:
        self._held = False
        self._timer.stop()
        if self._watched is not None:
            self._watched.removeEventFilter(self)
            self._watched = None
        self._next()

    def clear(self) -> None:
        """The window closes: what waits never starts."""
        self._queue.clear()

    @Slot()
    def _finished(self) -> None:
        self._running = None  # only the one started can have finished
        self._next()

    def _next(self) -> None:
        if self._held or self._pausing or self._running is not None or not self._queue:
            return
        self._running = self._queue.popleft()
        self._start(self._running)
