"""``tfesi-desktop [PATH] [--demo] [--model BUNDLE]``: start the desktop program."""

from __future__ import annotations

import argparse
import sys
import time

from .. import __version__
from ..app_options import add_logging_options, configure_logging, missing_extra

_T0 = time.perf_counter()


def build_parser():
    p = argparse.ArgumentParser(prog="tfesi-desktop", description="TFESI Desktop: predict the "
                                "outcome of a cervical transforaminal epidural steroid injection "
                                "from an axial T2 MRI.")
    p.add_argument("paths", nargs="*", help="study folder, DICOMDIR, ZIP or DICOM files")
    p.add_argument("--demo", action="store_true", help="open the bundled demonstration study")
    p.add_argument("--model", help="model bundle (default: the installed or demo model)")
    p.add_argument("--self-test", action="store_true",
                   help="load the model, predict on the demo study, write a report, exit")
    p.add_argument("--version", action="version", version=f"tfesi-desktop {__version__}")
    add_logging_options(p)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args, "tfesi-desktop")
    if args.self_test:
        from ..selftest import self_test

        return self_test(args.model)
    import gc

    gc.disable()  # until the model is loaded (gui/startup.py, point 3)
    try:
        from PySide6.QtWidgets import QApplication

        from .mainwindow import MainWindow
    except ModuleNotFoundError as e:  # installed without the 'gui' extra: one sentence
        if (sentence := missing_extra(e)) is None:
            raise
        print(f"error: {sentence}", file=sys.stderr)
        return 2
    from ..core.fileio import clean_after_killed_runs
    from ..core.paths import demo_study, migrate_once

    migrate_once()  # settings and the PACS cache now have folders of their own
    # what a killed earlier run left half-written, in the private folder and wherever it wrote
    # (reports, retrievals); the files it was writing are intact (write_atomically)
    clean_after_killed_runs()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("TFESI Desktop")
    app.setOrganizationName("TFESI")
    win = MainWindow(model_path=args.model)
    win.show()
    paths = args.paths or ([str(demo_study())] if args.demo else [])
    if paths:
        win.open_paths(paths)
    print(f"window shown {time.perf_counter() - _T0:.2f} s after start", file=sys.stderr)
    rc = app.exec()
    # the window saved everything when it closed (the study's work, the settings): end now,
    # without waiting for workers still decoding or the interpreter's slow teardown of Qt,
    # pyqtgraph and the model runtime (quit in well under half a second)
    import logging
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(rc)


if __name__ == "__main__":
    sys.exit(main())
