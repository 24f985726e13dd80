"""Open a study in a real window, draw the manifest's ROI, predict, and save screenshots of the
window after opening, after the ROI and after the prediction (used by the end-to-end test
under Xvfb and to look at the program).

``python -m tfesi_desktop.gui.screenshot OUT_DIR [STUDY MANIFEST] [--maximised]``
(``--maximised``: the window fills the screen, as a user would have it; then a fourth picture
after scrolling away from the ROI's slice)."""

from __future__ import annotations

import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    maximised = "--maximised" in argv
    argv = [a for a in argv if a != "--maximised"]
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    from PySide6.QtWidgets import QApplication

    from ..core.manifest import read_manifest
    from ..core.paths import demo_manifest, demo_study
    from .mainwindow import MainWindow
    from .timing import process_until

    study = argv[1] if len(argv) > 1 else str(demo_study())
    manifest = argv[2] if len(argv) > 2 else str(demo_manifest())
    app = QApplication.instance() or QApplication(sys.argv[:1])
    win = MainWindow()
    if maximised:
        win.showMaximized()
    else:
        win.resize(1400, 900)
        win.show()

    def wait(cond):
        process_until(cond, 60.0, 0.01)

    def settle():
        for _ in range(30):
            app.processEvents()
            time.sleep(0.01)

    win.open_paths([study])
    wait(lambda: win.session.stack() is not None and win.current_values() is not None
         and win.predictor is not None and not win.busy())
    settle()
    win.grab().save(str(out / "1-opened.png"))
    (case,) = read_manifest(manifest)[:1]
    win.panel.auto_check.setChecked(False)
    win.panel.slider.setValue(win.session.stack().find_slice(case.slice_key))
    wait(lambda: win.current_values() is not None and win.canal_of_slice()[0])
    win.session.set_roi(tuple(case.roi))  # what a finished drag does (gui/axial.py)
    win.session.propose_side()
    settle()
    win.grab().save(str(out / "2-roi.png"))
    win.panel.predict_button.click()
    wait(lambda: win.session.result is not None and not win.busy())
    settle()
    win.grab().save(str(out / "3-prediction.png"))
    if maximised:
        for _ in range(3):
            win.nav.step_slice(1)
        wait(lambda: win.current_values() is not None and not win.busy())
        settle()
        win.grab().save(str(out / "4-scrolled-away.png"))
    print(f"probability {win.session.result.prediction.probability:.4f} roi {win.view.roi_rect()} "
          f"platform {app.platformName()}")
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
