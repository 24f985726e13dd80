"""Nothing left behind (issue 21, item 7): the temporary files of a report write and the
staging folder of a retrieval killed with kill -9 are removed at the next start, in the folder
the user chose and in the study cache alike; a write under way in a live process is kept."""

from __future__ import annotations

import os
import subprocess
import sys

from tfesi_desktop.cli import main
from tfesi_desktop.core.fileio import TEMP_MARK, clean_after_killed_runs, sweep_stale
from tfesi_desktop.core.pacs.cache import STAGING_PREFIX, study_cache_dir


def _killed(code: str) -> None:
    r = subprocess.run([sys.executable, "-c", "import os, signal\n" + code
                        + "\nos.kill(os.getpid(), signal.SIGKILL)"],
                       capture_output=True, env=os.environ.copy())
    assert r.returncode == -9, r.stderr.decode()


def _left(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir()
                  if TEMP_MARK in p.name or p.name.startswith(STAGING_PREFIX))


def test_a_killed_report_write_is_cleaned_at_the_next_start(tmp_path, capsys):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "report.pdf").write_bytes(b"%PDF old")
    _killed("from tfesi_desktop.core.fileio import write_atomically\n"
            "def half(f):\n"
            "    f.write(b'%PDF-1.4 trunc'); f.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
            f"write_atomically({str(reports / 'report.pdf')!r}, half, private=False)")
    assert len(_left(reports)) == 1  # a truncated PDF, as the campaign found
    assert main(["model", "list"]) == 0  # any command: the next start
    assert _left(reports) == []
    assert (reports / "report.pdf").read_bytes() == b"%PDF old"


def test_a_killed_retrieval_is_cleaned_in_the_folder_chosen_and_in_the_cache(tmp_path):
    out = tmp_path / "chosen" / "study"
    cached = study_cache_dir("1.2.3.4")
    for target in (out, cached):
        _killed("from tfesi_desktop.core.pacs.cache import Staging\n"
                f"s = Staging({str(target)!r})\n"
                "s.write('1.2.3', '1.2.3.4.5', b'DICM' * 100)")
    assert len(_left(out.parent)) == 1 and len(_left(cached.parent)) == 1
    assert clean_after_killed_runs() == 2
    assert _left(out.parent) == [] and _left(cached.parent) == []
    assert not out.exists() and not cached.exists()


def test_a_live_process_keeps_its_temporaries(tmp_path):
    mine = tmp_path / f".report.pdf{TEMP_MARK}{os.getpid()}-00ff"
    mine.write_bytes(b"being written")
    parent = tmp_path / f"{STAGING_PREFIX}{os.getppid()}-abc"  # our parent process: alive
    parent.mkdir()
    legacy = tmp_path / f".x{TEMP_MARK}0123456789abcdef"  # no process id, young: kept
    legacy.write_bytes(b"x")
    assert sweep_stale(tmp_path) == 0
    assert mine.exists() and parent.exists() and legacy.exists()
    os.utime(legacy, (0, 0))  # no process id and old: removed
    assert sweep_stale(tmp_path) == 1 and not legacy.exists()
