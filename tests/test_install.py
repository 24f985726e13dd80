"""What a user or a packager meets when installing: per-OS folders, the one sentence for a
missing extra, logging options, --version and --json on both programs."""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tfesi_desktop.core import paths

REPO = Path(__file__).resolve().parents[1]


def _run(code_or_args, *, env_home, block=(), timeout=120):
    """Run the CLI (a list of arguments) or the window's entry point in a fresh interpreter in
    which the modules named in ``block`` cannot be imported, as after `pip install .` without
    the extra that brings them."""
    blocker = "".join(f"sys.modules[{m!r}] = None\n" for m in block)
    code = f"import sys\n{blocker}{code_or_args}"
    env = {"PATH": "/usr/bin:/bin", "TFESI_HOME": str(env_home), "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


def test_config_data_and_cache_are_three_folders_where_the_os_expects_them(tmp_path,
                                                                          monkeypatch):
    monkeypatch.delenv("TFESI_HOME", raising=False)
    for var, sub in (("XDG_DATA_HOME", "d"), ("XDG_CONFIG_HOME", "c"), ("XDG_CACHE_HOME", "k")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    assert paths.data_dir() == tmp_path / "d" / "tfesi-desktop"
    assert paths.config_dir() == tmp_path / "c" / "tfesi-desktop"
    assert paths.cache_dir() == tmp_path / "k" / "tfesi-desktop"
    monkeypatch.setenv("TFESI_HOME", str(tmp_path / "home"))
    assert paths.data_dir() == tmp_path / "home"
    assert {paths.config_dir(), paths.cache_dir()} == {tmp_path / "home" / "config",
                                                       tmp_path / "home" / "cache"}


def test_an_earlier_versions_data_folder_is_sorted_once_without_losing_anything(tmp_path,
                                                                                monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("TFESI_HOME", str(home))
    (home / "studies" / "1.2.3").mkdir(parents=True)  # a retrieved study (cache)
    (home / "studies" / "1.2.3" / "a.dcm").write_bytes(b"x")
    (home / "studies" / "abc.json").write_text("{}")  # saved work: stays data
    (home / "settings.ini").write_text("[w]\n")
    (home / "pacs_nodes.json").write_text("{}")
    (home / "trusted-keys").mkdir()
    (home / "trusted-keys" / "k.pub").write_text("key")
    (home / "config").mkdir()
    (home / "config" / "pacs_nodes.json").write_text('{"newer": 1}')  # never overwritten

    moved = paths.migrate_once()
    assert (home / "config" / "settings.ini").read_text() == "[w]\n"
    assert (home / "config" / "trusted-keys" / "k.pub").read_text() == "key"
    assert (home / "cache" / "studies" / "1.2.3" / "a.dcm").read_bytes() == b"x"
    assert (home / "studies" / "abc.json").exists()
    assert json.loads((home / "config" / "pacs_nodes.json").read_text()) == {"newer": 1}
    assert (home / "pacs_nodes.json").exists()  # left where it was, not lost
    assert len(moved) == 3
    assert paths.migrate_once() == []  # once


def test_a_missing_extra_is_one_sentence_with_the_command(tmp_path):
    r = _run("from tfesi_desktop.gui.app import main; sys.exit(main(['--demo']))",
             env_home=tmp_path, block=("PySide6",))
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "error: the desktop program needs the optional 'gui' dependencies (PySide6 is not "
        "installed); install them with: pip install 'tfesi-desktop[gui]'"]
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\n")
    r = _run(f"from tfesi_desktop.cli import main; sys.exit(main(['train', {str(manifest)!r}, "
             f"'--out', {str(tmp_path / 'b')!r}, '--init', 'random']))",
             env_home=tmp_path, block=("keras", "tensorflow"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    assert "pip install 'tfesi-desktop[train]'" in r.stderr.strip().splitlines()[-1]


def test_a_missing_module_that_no_extra_brings_is_still_reported_as_a_bug(tmp_path):
    r = _run("from tfesi_desktop.cli import main; sys.exit(main(['info', '.']))",
             env_home=tmp_path, block=("pydicom",))
    assert r.returncode == 1 and "internal error" in r.stderr and "pip install" not in r.stderr


def test_version_on_both_programs(tmp_path):
    from tfesi_desktop import __version__

    for code, prog in (("from tfesi_desktop.cli import main; main(['--version'])", "tfesi"),
                       ("from tfesi_desktop.gui.app import main; main(['--version'])",
                        "tfesi-desktop")):
        r = _run(code, env_home=tmp_path)
        assert r.returncode == 0 and r.stdout.strip() == f"{prog} {__version__}"


@pytest.fixture
def echo_scp():
    """A Verification SCP on loopback (pynetdicom), the port it listens on."""
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title="ECHOSCP")
    ae.add_supported_context(Verification)
    server = ae.start_server(("127.0.0.1", 0), block=False)
    yield server.server_address[1]
    server.shutdown()


@pytest.mark.parametrize("flags, network_log", [([], False), (["-vv"], True)])
def test_the_network_log_joins_at_debug_only(tmp_path, echo_scp, flags, network_log):
    r = _run(f"from tfesi_desktop.cli import main; sys.exit(main({flags!r} + ['pacs', 'echo', "
             f"'--pacs', 'ECHOSCP@127.0.0.1:{echo_scp}']))", env_home=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    assert ("pynetdicom" in r.stderr) is network_log, r.stderr
    if network_log:  # the association, PDU by PDU, as pynetdicom's own tools print it
        assert "A-ASSOCIATE-RQ" in r.stderr or "Association" in r.stderr


def test_quiet_prints_no_progress(tmp_path):
    from tfesi_desktop.core.paths import demo_study

    loud = _run(f"from tfesi_desktop.cli import main; sys.exit(main(['info', "
                f"{str(demo_study())!r}]))", env_home=tmp_path)
    quiet = _run(f"from tfesi_desktop.cli import main; sys.exit(main(['-q', 'info', "
                 f"{str(demo_study())!r}]))", env_home=tmp_path)
    assert loud.returncode == quiet.returncode == 0
    assert "reading headers" in loud.stderr and quiet.stderr == ""
    assert quiet.stdout == loud.stdout


def test_report_prints_json_when_asked(tmp_path, capsys):
    import csv

    from tfesi_desktop.cli import main
    from tfesi_desktop.core.paths import demo_manifest, demo_study

    with demo_manifest().open() as f:
        (row,) = csv.DictReader(f)
    out = tmp_path / "r.pdf"
    roi = ",".join(row[k] for k in ("roi_x", "roi_y", "roi_w", "roi_h"))
    rc = main(["report", str(demo_study()), "--slice", row["sop_instance_uid"], "--roi", roi,
               "--side", row["side"], "--out", str(out), "--dicom", "--json"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["written"]["report"] == str(out) and out.exists()
    assert Path(printed["written"]["encapsulated_pdf"]).exists()
    assert 0 < printed["probability"] < 1


def test_metadata_a_packager_needs():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert meta["license"] == "Apache-2.0" and (REPO / "LICENSE").read_text().strip()
    assert "Apache License" in (REPO / "LICENSE").read_text()[:200]
    assert any(c.startswith("Topic :: Scientific/Engineering :: Medical")
               for c in meta["classifiers"])
    assert meta["gui-scripts"]["tfesi-desktop"] == "tfesi_desktop.gui.app:main"
    assert "tfesi-desktop" not in meta["scripts"]
    # ranges, not pins, for what users install (the lock file pins for CI)
    runtime = meta["dependencies"] + meta["optional-dependencies"]["gui"]
    assert not [d for d in runtime if "==" in d], runtime
    locked = dict(line.split("==") for line in
                  (REPO / "requirements.lock").read_text().splitlines() if "==" in line)
    for dep in runtime:
        name = dep.split(">")[0].split("<")[0].split("!")[0].split("=")[0].strip().lower()
        assert name in locked, f"{name} is not in requirements.lock"


def _study(root: Path, name: str, size: int, age_days: float) -> Path:
    import os
    import time

    p = root / name
    (p / "series").mkdir(parents=True)
    (p / "series" / "a.dcm").write_bytes(b"\0" * size)
    t = time.time() - age_days * 86400
    os.utime(p, (t, t))
    return p


def test_the_cache_keeps_its_limit_oldest_first_and_never_the_study_just_retrieved(tmp_path):
    from tfesi_desktop.core.pacs.eviction import cached_studies, clear, evict

    root = tmp_path / "studies"
    old = _study(root, "1.1", 4000, 30)
    mid = _study(root, "1.2", 4000, 10)
    new = _study(root, "1.3", 4000, 0)
    (root / ".incoming-x").mkdir()  # a retrieval in progress is not a cached study
    assert [s.path for s in cached_studies(root)] == [old, mid, new]
    assert evict(root, limit=9000, keep=new) == [old]
    assert evict(root, limit=100, keep=new) == [mid] and new.exists()
    assert clear(root, older_than_days=1) == (0, 0)
    assert clear(root) == (1, 4000) and not new.exists() and (root / ".incoming-x").exists()


def test_cache_commands(tmp_path, monkeypatch, capsys):
    from tfesi_desktop.cli import main

    monkeypatch.setenv("TFESI_HOME", str(tmp_path))
    monkeypatch.setenv("TFESI_CACHE_LIMIT_GB", "0.5")
    _study(tmp_path / "cache" / "studies", "1.9", 1000, 5)
    assert main(["cache", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["studies"] == 1 and info["bytes"] == 1000 and info["limit_bytes"] == 2**29
    assert main(["cache", "clear"]) == 0
    assert "removed 1 retrieved studies" in capsys.readouterr().out
    monkeypatch.setenv("TFESI_CACHE_LIMIT_GB", "lots")
    assert main(["cache", "info"]) == 2


def test_predicting_and_reporting_need_no_training_extra(tmp_path):
    """What `pip install .` without extras must carry: the predict and report path imports
    neither TensorFlow nor scikit-learn nor scikit-image nor matplotlib (the 'train' extra)."""
    import csv

    from tfesi_desktop.core.paths import demo_manifest, demo_study

    with demo_manifest().open() as f:
        (row,) = csv.DictReader(f)
    roi = ",".join(row[k] for k in ("roi_x", "roi_y", "roi_w", "roi_h"))
    args = ["report", str(demo_study()), "--slice", row["sop_instance_uid"], "--roi", roi,
            "--side", row["side"], "--out", str(tmp_path / "r.pdf"), "--sr",
            str(tmp_path / "sr.dcm"), "--sc", str(tmp_path / "sc.dcm")]
    r = _run(f"from tfesi_desktop.cli import main\nassert main({args!r}) == 0\n"
             "print(' '.join(sys.modules))", env_home=tmp_path)
    assert r.returncode == 0, r.stderr
    mods = set(r.stdout.split())
    assert "tfesi_desktop.core.report" in mods  # it did write the report
    for extra_only in ("tensorflow", "keras", "sklearn", "skimage", "matplotlib", "PySide6"):
        assert extra_only not in mods, extra_only
