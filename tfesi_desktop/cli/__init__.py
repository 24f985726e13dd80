"""The ``tfesi`` command line. It calls the same core functions as the desktop program.

Every expected failure prints ``error: <sentence>`` on stderr and exits with status 2; nothing
prints a traceback unless ``TFESI_DEBUG=1`` is set.

Each module of this package registers its subcommands (``register(sub)``) and imports only the
leaf :mod:`.common`, never this entry point (tests/test_cli_imports.py); what a command needs
beyond that (pydicom, LiteRT, TensorFlow) it imports when it runs.
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from ..app_options import add_logging_options, configure_logging, missing_extra
from ..core.errors import TfesiError
from . import clinical, common, data, evaluate, model, pacs, predict, sites
from .common import Parser as _Parser
from .common import one_line as _one_line
from .common import safe_terminal
from .model import TRAIN_VARIANTS

__all__ = ["main", "build_parser", "TRAIN_VARIANTS"]


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tfesi", description="TFESI Desktop command line: read cervical MRI "
                "studies, predict TFESI outcome, train and validate models. Research software, "
                "not for clinical decisions on its own.")
    p.add_argument("--version", action="version", version=f"tfesi {__version__}")
    add_logging_options(p)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    # in the order `tfesi --help` lists them
    data.register(sub)  # info, synth
    predict.register(sub)  # predict, report
    model.register_train(sub)
    pacs.register_cache(sub)
    model.register_model(sub)
    evaluate.register(sub)  # evaluate, study
    model.register_bench(sub)
    sites.register(sub)  # federate, site-check
    pacs.register(sub)
    clinical.register(sub)  # fuse, clinical-study
    return p


def main(argv: list[str] | None = None) -> int:
    with safe_terminal():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args, "tfesi")
    common.QUIET = bool(args.quiet)
    from ..core.fileio import clean_after_killed_runs
    from ..core.paths import migrate_once

    migrate_once()  # settings and the PACS cache of earlier versions to their own folders
    clean_after_killed_runs()  # what a killed earlier run left (core/fileio.py)
    try:
        return int(args.func(args) or 0)
    except TfesiError as e:
        print(f"error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except OSError as e:  # a file system refusal (permissions, a full disk): expected, exit 2
        if os.environ.get("TFESI_DEBUG"):
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {_one_line(f'{where}{e.strerror or e}')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the last line of defence: no traceback for users
        if os.environ.get("TFESI_DEBUG"):
            raise
        if isinstance(e, ModuleNotFoundError) and (sentence := missing_extra(e)):
            print(f"error: {sentence}", file=sys.stderr)  # an optional extra is not installed
            return 2
        print(f"error: internal error ({type(e).__name__}: {e}). Run again with TFESI_DEBUG=1 "
              "for details, and please report it.", file=sys.stderr)
        return 1
