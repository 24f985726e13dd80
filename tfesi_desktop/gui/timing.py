"""GUI timings for ``tfesi bench`` and the tests: the time from process start to a shown
window, the GUI thread's longest stall (a 5 ms QTimer heartbeat) while the model loads, the demo
study opens and a prediction runs, and the time from the click to the shown result.

Run as ``python -m tfesi_desktop.gui.timing`` (prints one JSON object)."""

from __future__ import annotations

import json
import sys
import time

T0 = time.perf_counter()


def process_until(cond, limit: float = 30.0, pause: float = 0.001) -> None:
    """Run the Qt event loop until ``cond()`` holds (TimeoutError after ``limit`` s)."""
    from PySide6.QtWidgets import QApplication

    end = time.perf_counter() + limit
    while not cond():
        if time.perf_counter() > end:
            raise TimeoutError("the window did not get there in time")
        QApplication.processEvents()
        time.sleep(pause)


def _process_age() -> float:
    """Seconds since this process started (Linux; to line the stalls up with a profiler's)."""
    import os

    with open("/proc/self/stat") as f:
        start = int(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
    with open("/proc/uptime") as f:
        return float(f.read().split()[0]) - start


def measure(detail: bool = False) -> dict:
    """The figures; with ``detail``, also every stall over 30 ms as (ms, its end in seconds from
    process start, the phase: open, slice, predict, scroll, the CPU ms the GUI thread and the
    whole process used in it: a stall the process hardly used the CPU in was the machine's)."""
    import gc

    gc.disable()  # as the program starts (gui/app.py); on again once the model is loaded
    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from ..core.manifest import read_manifest
    from ..core.paths import demo_manifest, demo_study

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from .mainwindow import MainWindow

    win = MainWindow()
    win.show()
    app.processEvents()
    shown = time.perf_counter() - T0

    clock = QElapsedTimer()
    clock.start()
    gaps = []
    last = [clock.elapsed()]
    phase = ["open"]
    long_ones = []  # (ms, seconds since process start, phase, GUI thread's CPU ms, process's)
    cpu = [time.thread_time(), time.process_time()]

    def beat():
        now = clock.elapsed()
        gaps.append(now - last[0])
        c = time.thread_time(), time.process_time()
        if gaps[-1] > 30:
            long_ones.append((gaps[-1], round(time.perf_counter() - T0, 3), phase[0],
                              round((c[0] - cpu[0]) * 1000), round((c[1] - cpu[1]) * 1000)))
        last[0] = now
        cpu[:] = c

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(beat)
    timer.start()

    wait = process_until
    win.panel.auto_check.setChecked(False)
    win.open_paths([str(demo_study())])
    wait(lambda: win.predictor is not None and win.session.stack() is not None
         and win.current_values() is not None and not win.busy())
    (case,) = read_manifest(demo_manifest())
    phase[0] = "slice"
    win.panel.slider.setValue(win.session.stack().find_slice(case.slice_key))
    wait(lambda: win.current_values() is not None and win.canal_of_slice()[0])
    win.session.set_roi(tuple(case.roi))  # what a finished drag does (gui/axial.py)
    win.session.propose_side()
    win.session.set_side(case.side)
    phase[0] = "predict"
    t = time.perf_counter()
    win.panel.predict_button.click()
    wait(lambda: win.session.result is not None)
    app.processEvents()
    shown_result = time.perf_counter() - t
    wait(lambda: not win.busy())
    # scrolling both views with the cross-reference lines updated: every axial slice down and
    # up, then every sagittal slice, each step shown before the next (as a wheel would)
    first = list(gaps)
    phase[0] = "scroll"
    gaps.clear()
    last[0] = clock.elapsed()
    n = len(win.session.stack().slices)
    for i in list(range(n)) + list(range(n - 1, -1, -1)):
        win.panel.slider.setValue(i)
        wait(lambda: win.axial.shown == win.session.selection.view_key and not win.busy())
    loc = win.localizer
    if loc.stack is not None:
        for i in range(len(loc.stack.slices)):
            loc.set_index(i)
            wait(lambda: loc._shown == loc.stack.slices[loc.index].key and not win.busy())
    timer.stop()
    scroll = list(gaps)
    gaps[:] = first + scroll
    out = {"window_shown_s": round(shown, 3),
           "gui_longest_stall_ms": int(max(gaps) if gaps else 0),
           "gui_longest_stall_open_predict_ms": int(max(first) if first else 0),
           "gui_scroll_longest_stall_ms": int(max(scroll) if scroll else 0),
           "gui_heartbeats": len(gaps),
           "prediction_shown_after_click_ms": round(shown_result * 1000, 1),
           "probability": round(win.session.result.prediction.probability, 6)}
    if detail:
        out["stalls_over_30ms"] = long_ones
        out["t0_after_process_start_s"] = _process_age() - (time.perf_counter() - T0)
    win.close()
    return out


if __name__ == "__main__":
    print(json.dumps(measure(detail="--detail" in sys.argv[1:])))
