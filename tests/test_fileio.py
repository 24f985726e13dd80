"""write_atomically and private_dir: exclusive temporary files, no symlink following, cleanup,
permissions."""

import os
import stat
import sys

import pytest

from tfesi_desktop.core.errors import TfesiError
from tfesi_desktop.core.fileio import TEMP_MARK, private_dir, write_atomically

posix = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if TEMP_MARK in p.name]


def test_writes_bytes_and_replaces(tmp_path):
    f = tmp_path / "a.txt"
    write_atomically(f, b"one", private=False)
    write_atomically(f, b"two", private=False)
    assert f.read_bytes() == b"two"
    assert _leftovers(tmp_path) == []


def test_writes_through_a_callable(tmp_path):
    f = tmp_path / "b.bin"
    write_atomically(f, lambda fh: fh.write(b"xyz"), private=False)
    assert f.read_bytes() == b"xyz"


def test_failure_in_callable_keeps_old_file_and_leaves_nothing(tmp_path):
    f = tmp_path / "c.txt"
    f.write_bytes(b"old")

    def boom(fh):
        fh.write(b"half")
        raise ValueError("stop")

    with pytest.raises(ValueError):
        write_atomically(f, boom, private=False)
    assert f.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(TfesiError, match="does not exist"):
        write_atomically(tmp_path / "nope" / "x.png", b"1", private=False)


def test_directory_target_is_a_clear_error(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(TfesiError, match="folder"):
        write_atomically(tmp_path / "d", b"1", private=False)
    assert _leftovers(tmp_path) == []


@posix
def test_a_planted_symlink_is_not_written_through(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    # the old scheme's predictable name, and a symlink as the target itself
    (tmp_path / "r.dcm.partial").symlink_to(victim)
    write_atomically(tmp_path / "r.dcm", b"new", private=True)
    assert victim.read_bytes() == b"precious"
    link = tmp_path / "s.dcm"
    link.symlink_to(victim)
    write_atomically(link, b"new", private=True)
    assert victim.read_bytes() == b"precious"
    assert not link.is_symlink() and link.read_bytes() == b"new"


@posix
def test_private_modes(tmp_path):
    old = os.umask(0o022)
    try:
        f = tmp_path / "new" / "deeper" / "state.json"
        write_atomically(f, b"{}", private=True)
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
        assert stat.S_IMODE(f.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
        # replacing a world-readable file makes it private
        g = tmp_path / "old.json"
        g.write_bytes(b"x")
        os.chmod(g, 0o644)
        write_atomically(g, b"y", private=True)
        assert stat.S_IMODE(g.stat().st_mode) == 0o600
        h = tmp_path / "public.png"
        write_atomically(h, b"z", private=False)
        assert stat.S_IMODE(h.stat().st_mode) == 0o644
    finally:
        os.umask(old)


@posix
def test_private_dir_tightens_and_refuses_symlinks(tmp_path):
    d = tmp_path / "p"
    d.mkdir(mode=0o755)
    private_dir(d)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    (tmp_path / "l").symlink_to(d)
    with pytest.raises(TfesiError, match="symbolic link"):
        private_dir(tmp_path / "l")
    (tmp_path / "f").write_text("x")
    with pytest.raises(TfesiError):
        private_dir(tmp_path / "f")


@posix
def test_unwritable_folder_is_a_clear_error(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    d = tmp_path / "ro"
    d.mkdir()
    (d / "x").write_bytes(b"old")
    os.chmod(d, 0o500)
    try:
        with pytest.raises(TfesiError, match="nothing was changed"):
            write_atomically(d / "x", b"new", private=False)
        assert (d / "x").read_bytes() == b"old"
    finally:
        os.chmod(d, 0o700)


@posix
def test_private_write_leaves_an_existing_folder_alone(tmp_path):
    d = tmp_path / "documents"
    d.mkdir()
    os.chmod(d, 0o755)
    write_atomically(d / "report.pdf", b"%PDF", private=True)
    assert stat.S_IMODE(d.stat().st_mode) == 0o755
    assert stat.S_IMODE((d / "report.pdf").stat().st_mode) == 0o600


@posix
def test_a_killed_write_leaves_its_file_intact_and_its_temporary_is_removed_later(tmp_path):
    """kill -9 in the middle of a write: the target keeps its old content; the temporary file
    left behind is removed at the next start once it is an hour old, and nothing else is (a
    younger temporary of a write under way, other files, a link's target)."""
    import subprocess
    import time

    from tfesi_desktop.core.fileio import remove_stale_temporaries

    state = tmp_path / "state"
    state.mkdir()
    (state / "study.json").write_text("old")
    code = ("import os, signal, sys\n"
            "from tfesi_desktop.core.fileio import write_atomically\n"
            "def half(f):\n"
            "    f.write(b'new, half wri'); f.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
            f"write_atomically({str(state / 'study.json')!r}, half, private=True)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert r.returncode == -9
    assert (state / "study.json").read_text() == "old"
    (stale,) = _leftovers(state)
    hour_ago = time.time() - 3700
    os.utime(state / stale, (hour_ago, hour_ago))
    deeper = tmp_path / "a" / "b"
    deeper.mkdir(parents=True)
    (deeper / f".x{TEMP_MARK}old").write_text("x")
    os.utime(deeper / f".x{TEMP_MARK}old", (hour_ago, hour_ago))
    (state / f".y{TEMP_MARK}young").write_text("a write under way")
    outside = tmp_path.parent / f"outside-{tmp_path.name}{TEMP_MARK}keep"
    outside.write_text("not ours")
    os.utime(outside, (hour_ago, hour_ago))
    (state / f".z{TEMP_MARK}link").symlink_to(outside)

    assert remove_stale_temporaries(tmp_path) == 2
    assert sorted(_leftovers(state)) == sorted([f".y{TEMP_MARK}young", f".z{TEMP_MARK}link"])
    assert _leftovers(deeper) == [] and outside.read_text() == "not ours"
    assert (state / "study.json").read_text() == "old"
    outside.unlink()
