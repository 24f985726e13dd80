"""One writer per study, with two processes (docs/architecture.md, invariant 9): the second
window on a study is read-only and says so, loses none of the first one's edits, and can edit
once the first has closed the study; a killed first process leaves no lock behind."""

import json
import os
import subprocess
import sys
import textwrap

from tfesi_desktop.core.commands import open_study
from tfesi_desktop.core.paths import demo_study
from tfesi_desktop.core.session import Session, StateStore

FIRST = textwrap.dedent("""
    import sys
    from tfesi_desktop.core.commands import open_study
    from tfesi_desktop.core.paths import demo_study
    from tfesi_desktop.core.session import Session, StateStore
    s = Session(StateStore(sys.argv[1]))
    s.open(open_study(demo_study()).scan)
    assert not s.read_only()
    s.set_roi((100, 90, 40, 40))
    print("ready", flush=True)
    sys.stdin.readline()          # the second process has tried its edits
    s.set_side("right")           # one more edit while the other one watches
    if sys.argv[2] == "kill":
        import os, signal
        os.kill(os.getpid(), signal.SIGKILL)
    s.close()
    print("closed", flush=True)
    sys.stdin.readline()
""")


def _first(folder, how="close"):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.Popen([sys.executable, "-c", FIRST, str(folder), how], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, env=env)
    assert p.stdout.readline().strip() == "ready"
    return p


def test_a_second_process_is_read_only_and_loses_nothing(tmp_path):
    folder = tmp_path / "studies"
    first = _first(folder)
    try:
        said = []
        s = Session(StateStore(folder))
        s.subscribe(lambda what: said.append(s.refusal) if what == "refused" else None)
        s.open(open_study(demo_study()).scan)
        assert s.read_only() and any("open in another" in n for n in s.notes)
        assert s.selection.roi == (100, 90, 40, 40)  # what the first saved, shown
        # looking is allowed; changing is refused with a sentence, and nothing is written
        other = s.stack().slices[0].key
        assert s.set_slice(other) and s.selection.view_key == other
        before = s.store.file(s.study_uid).read_bytes()
        assert not s.set_level("C7") and not s.set_roi((1, 1, 30, 30)) and not s.undo()
        assert said and "read-only here" in said[-1]
        first.stdin.write("go\n")
        first.stdin.flush()
        assert first.stdout.readline().strip() == "closed"
        assert s.store.file(s.study_uid).read_bytes() != before  # the first one's side
        # the first has closed the study: the next edit loads what it saved, then edits work
        assert not s.set_level("C7") and "has closed" in said[-1]
        assert not s.read_only() and s.selection.side == "right"
        assert s.set_level("C7")
        saved = json.loads(s.store.file(s.study_uid).read_text())
        (sel,) = [x for x in saved["selections"] if x["roi"]]
        assert sel["roi"] == [100, 90, 40, 40] and sel["side"] == "right"
        assert sel["level"] == "C7"  # both windows' edits kept
        s.close()
    finally:
        first.stdin.write("\n")
        first.stdin.close()
        first.wait(timeout=30)
        first.stdout.close()


def test_a_killed_writer_leaves_no_lock(tmp_path):
    folder = tmp_path / "studies"
    first = _first(folder, "kill")
    first.stdin.write("go\n")
    first.stdin.flush()
    first.wait(timeout=30)
    first.stdin.close()
    first.stdout.close()
    s = Session(StateStore(folder))
    s.open(open_study(demo_study()).scan)
    assert not s.read_only() and s.selection.side == "right"
    assert s.set_level("C6")
    s.close()


def test_a_read_only_study_without_an_roi_can_still_be_scrolled(tmp_path):
    folder = tmp_path / "studies"
    a, b = Session(StateStore(folder)), Session(StateStore(folder))
    a.open(open_study(demo_study()).scan)
    b.open(open_study(demo_study()).scan)  # the same process: the lock holds as well
    assert b.read_only() and b.selection.roi is None
    key = b.stack().slices[0].key
    assert b.set_slice(key) and b.selection.view_key == key
    assert a.selection.view_key != key
    a.close()
    b.close()
